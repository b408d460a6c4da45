//! qcow2 images written in place that QEMU left dirty (lazy refcounts, the image not
//! closed) or that hold internal snapshots, held to qemu-img and qemu-io.
//!
//! Dirty images are made from the README's sample: converted with `lazy_refcounts=on`
//! (64 KiB clusters, 512-byte clusters, extended L2 entries, 8-bit refcounts, compressed
//! clusters, internal snapshots), written by `qemu-io` and left with its `abort`, so that
//! the dirty bit is set and `qemu-img check` finds the refcounts stale. rehost's fix in
//! place (or a write through the library) rebuilds the refcounts as part of its commit:
//! afterwards `qemu-img check` finds no error and no leak, the dirty bit is clear,
//! `qemu-img compare` finds the image equal to the same fix on a raw copy, each snapshot
//! still reads as before, and `undo` gives back the dirty file byte for byte. A dirty image
//! whose metadata is damaged, or that holds persistent bitmaps, is refused unchanged.
//!
//! Images with internal snapshots (`qemu-img snapshot -c`) are written by copy on write:
//! the same checks, and `qemu-img convert -l snapshot.name=...` of every snapshot equals
//! its raw image from before the write.

mod common;

use common::{have_tool, qemu_img, rehost_command, root, run, sha256_file};
use rehost::disk::{self, WriteAt};
use std::path::Path;
use std::process::Command;

/// The sample's free tail (past its one partition), where qemu-io writes.
const TAIL: u64 = 3_670_016;

/// `qemu-img check --output=json`: its error, corruption and leak counts.
fn check_counts(image: &str) -> (u64, u64, u64) {
    let out = Command::new("qemu-img")
        .args(["check", "-f", "qcow2", "--output=json", image])
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{image}: {e}: {out:?}"));
    let n = |k: &str| json.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    (n("check-errors"), n("corruptions"), n("leaks"))
}

fn assert_check_clean(image: &str) {
    assert_eq!(check_counts(image), (0, 0, 0), "{image}: qemu-img check");
}

/// Whether the header's dirty bit (incompatible feature bit 0) is set.
fn dirty_bit(image: &str) -> bool {
    let b = std::fs::read(image).unwrap();
    b[79] & 1 != 0
}

/// `qemu-io` runs `commands` on `image`, then aborts (the image left as a crash leaves it).
fn qemu_io_abort(image: &str, commands: &[&str]) {
    let mut cmd = Command::new("qemu-io");
    for c in commands.iter().chain(&["abort"]) {
        cmd.args(["-c", c]);
    }
    let out = cmd.args(["-f", "qcow2", image]).output().unwrap();
    assert!(!out.status.success(), "qemu-io did not abort: {out:?}");
}

fn fix(image: &str, how: &str) -> std::process::Output {
    rehost_command()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["fix", "--target", "hyperv-gen1", how, image])
        .output()
        .unwrap()
}

fn said(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The sample as a qcow2 image at `image`, converted with `opts` (and `-c` when
/// `compressed`).
fn from_sample(image: &str, opts: &str, compressed: bool) {
    let sample = root().join("testdata/sample/sample.vhd");
    let mut args = vec!["convert", "-q", "-f", "vpc", "-O", "qcow2"];
    if compressed {
        args.push("-c");
    }
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    let sample = sample.to_string_lossy().into_owned();
    args.extend([sample.as_str(), image]);
    qemu_img(&args);
}

/// Each snapshot's disk as raw, by name.
fn snapshot_raws(image: &str, names: &[&str], dir: &Path) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| {
            let raw = dir
                .join(format!("{n}.snap.raw"))
                .to_string_lossy()
                .into_owned();
            let _ = std::fs::remove_file(&raw);
            let opt = format!("snapshot.name={n}");
            qemu_img(&["convert", "-q", "-l", &opt, "-O", "raw", image, &raw]);
            (n.to_string(), sha256_file(Path::new(&raw)))
        })
        .collect()
}

/// Fixes `image` in place and a raw copy of it the same way, then holds the image to the
/// raw fix, `qemu-img check`, its snapshots (`snaps`: each snapshot's raw sum before) and
/// undo.
fn fix_and_hold(image: &str, raw: &str, snaps: &[(String, String)], dir: &Path) {
    let before = sha256_file(Path::new(image));
    qemu_img(&["convert", "-q", "-f", "qcow2", "-O", "raw", image, raw]);
    let out = fix(raw, "--in-place");
    assert_eq!(out.status.code(), Some(0), "{raw}: {}", said(&out));
    let out = fix(image, "--in-place");
    assert_eq!(out.status.code(), Some(0), "{image}: {}", said(&out));
    assert_check_clean(image);
    assert!(!dirty_bit(image), "{image}: still dirty");
    let cmp = qemu_img(&["compare", "-f", "qcow2", "-F", "raw", image, raw]);
    assert!(cmp.contains("Images are identical"), "{image}: {cmp}");
    let names: Vec<&str> = snaps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        snapshot_raws(image, &names, dir),
        snaps,
        "{image}: snapshots"
    );
    run(rehost_command().arg("undo").arg(image));
    assert_eq!(sha256_file(Path::new(image)), before, "{image}: undo");
}

#[test]
fn dirty_images_get_their_refcounts_rebuilt_in_the_fix_in_place() {
    if !have_tool("qemu-img") || !have_tool("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    // (name, creation options, a snapshot taken before the crash)
    for (name, opts, snapshot) in [
        ("lazy", "lazy_refcounts=on", false),
        ("lazy-512", "lazy_refcounts=on,cluster_size=512", false),
        (
            "lazy-512-lost-block",
            "lazy_refcounts=on,cluster_size=512",
            false,
        ),
        ("lazy-extl2", "lazy_refcounts=on,extended_l2=on", false),
        ("lazy-8bit", "lazy_refcounts=on,refcount_bits=8", false),
        ("lazy-snap", "lazy_refcounts=on", true),
    ] {
        let image = d(&format!("{name}.qcow2"));
        from_sample(&image, opts, false);
        let snaps = if snapshot {
            // The tail written (closed cleanly) before the snapshot, so that the crashed
            // writes below copy the clusters it shares on write.
            let out = Command::new("qemu-io")
                .args(["-c", "write -P 0x11 3670016 512k", "-f", "qcow2", &image])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            qemu_img(&["snapshot", "-c", "s1", &image]);
            snapshot_raws(&image, &["s1"], dir.path())
        } else {
            Vec::new()
        };
        // Over the sample's free tail (past its one partition, clusters of zeros).
        qemu_io_abort(
            &image,
            &["write -P 0x5a 3670016 256k", "write -P 0xa5 3997696 64k"],
        );
        assert!(dirty_bit(&image), "{name}: qemu-io left it clean");
        if name.ends_with("lost-block") {
            // The refcount block of the written clusters lost (its table entry zeroed): the
            // rebuild gives them a new one.
            let mut b = std::fs::read(&image).unwrap();
            let table = be64(&b, 48) as usize;
            let entries = u32::from_be_bytes(b[56..60].try_into().unwrap()) as usize * 512 / 8;
            let last = (0..entries)
                .rev()
                .find(|i| be64(&b, table + i * 8) != 0)
                .unwrap();
            assert!(last > 0, "{name}: one refcount block");
            b[table + last * 8..table + last * 8 + 8].fill(0);
            std::fs::write(&image, &b).unwrap();
        }
        let (errors, corruptions, leaks) = check_counts(&image);
        assert!(
            errors + corruptions + leaks > 0,
            "{name}: qemu-img check finds nothing stale"
        );
        // The dry run says the refcounts would be rebuilt, and writes nothing.
        let sum = sha256_file(Path::new(&image));
        let out = fix(&image, "--dry-run");
        assert_eq!(out.status.code(), Some(0), "{name}: {}", said(&out));
        let text = said(&out);
        assert!(
            text.contains("--in-place would also repair the container")
                && text.contains("refcounts are rebuilt")
                && !text.contains("would be refused"),
            "{name}: {text}"
        );
        assert_eq!(
            sha256_file(Path::new(&image)),
            sum,
            "{name}: the dry run wrote"
        );
        fix_and_hold(&image, &d(&format!("{name}.raw")), &snaps, dir.path());
    }
}

/// A dirty image of compressed clusters (several to a host cluster), written through the
/// library where qemu-io wrote (clusters counted once) and past it (new clusters): the
/// rebuilt refcounts are qemu's, so `qemu-img check` is clean.
#[test]
fn compressed_clusters_are_counted_as_qemu_counts_them() {
    if !have_tool("qemu-img") || !have_tool("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    for opts in ["lazy_refcounts=on", "lazy_refcounts=on,cluster_size=4096"] {
        let (image, raw) = (d("c.qcow2"), d("c.raw"));
        let _ = std::fs::remove_file(&image);
        from_sample(&image, opts, true);
        let info = qemu_img(&["check", &image]);
        assert!(
            info.contains("compressed clusters") && !info.contains(" 0.00% compressed"),
            "{info}"
        );
        qemu_io_abort(&image, &["write -P 0x5a 3670016 64k"]);
        assert!(dirty_bit(&image));
        assert_ne!(check_counts(&image), (0, 0, 0), "{opts}: nothing stale");
        let before = sha256_file(Path::new(&image));
        let _ = std::fs::remove_file(&raw);
        qemu_img(&["convert", "-q", "-f", "qcow2", "-O", "raw", &image, &raw]);
        let bytes: Vec<u8> = (0..98_304u32).map(|i| (i % 251) as u8).collect();
        let at = TAIL + 32_768;
        {
            let s =
                disk::open_for_write(Path::new(&image), &disk::WriteOptions::in_place()).unwrap();
            s.overlay().write_at(at, &bytes).unwrap();
            let plan = s.plan(&disk::CommitOptions::default()).unwrap();
            assert!(
                plan.repairs.iter().any(|r| r.contains("rebuilt")),
                "{:?}",
                plan.repairs
            );
            s.commit(&disk::CommitOptions::default()).unwrap();
        }
        let mut r = std::fs::read(&raw).unwrap();
        r[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
        std::fs::write(&raw, &r).unwrap();
        assert_check_clean(&image);
        assert!(!dirty_bit(&image));
        let cmp = qemu_img(&["compare", "-f", "qcow2", "-F", "raw", &image, &raw]);
        assert!(cmp.contains("Images are identical"), "{opts}: {cmp}");
        run(rehost_command().arg("undo").arg(&image));
        assert_eq!(sha256_file(Path::new(&image)), before, "{opts}: undo");
    }
}

/// Reads a big-endian u64 at `at`.
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn dirty_images_that_are_damaged_or_hold_bitmaps_are_refused_unchanged() {
    if !have_tool("qemu-img") || !have_tool("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    // A data cluster the active state names twice: the tail's second cluster's L2 entry
    // made the first's.
    let twice = d("twice.qcow2");
    from_sample(&twice, "lazy_refcounts=on", false);
    qemu_io_abort(&twice, &["write -P 0x5a 3670016 128k"]);
    let mut b = std::fs::read(&twice).unwrap();
    let l2 = (be64(&b, be64(&b, 40) as usize) & 0x00ff_ffff_ffff_fe00) as usize;
    let first = l2 + (TAIL / 65_536) as usize * 8;
    let entry = be64(&b, first);
    assert_ne!(entry, 0);
    b[first + 8..first + 16].copy_from_slice(&entry.to_be_bytes());
    std::fs::write(&twice, &b).unwrap();
    // A snapshot's L1 entry naming an L2 table past the end of the file.
    let past = d("past.qcow2");
    from_sample(&past, "lazy_refcounts=on", false);
    qemu_img(&["snapshot", "-c", "s1", &past]);
    qemu_io_abort(&past, &["write -P 0x5a 3670016 64k"]);
    let mut b = std::fs::read(&past).unwrap();
    let snap_l1 = be64(&b, be64(&b, 64) as usize) as usize;
    let end = (b.len() as u64).div_ceil(65_536) * 65_536 + 16 * 65_536;
    b[snap_l1..snap_l1 + 8].copy_from_slice(&end.to_be_bytes());
    std::fs::write(&past, &b).unwrap();
    // Persistent bitmaps, whose clusters rehost does not count.
    let bitmaps = d("bitmaps.qcow2");
    from_sample(&bitmaps, "lazy_refcounts=on", false);
    qemu_img(&["bitmap", "--add", &bitmaps, "b0"]);
    qemu_io_abort(&bitmaps, &["write -P 0x5a 3670016 64k"]);
    for (image, why) in [
        (&twice, "metadata is damaged: the cluster at"),
        (&past, "metadata is damaged: an L2 table at"),
        (&bitmaps, "persistent bitmaps"),
    ] {
        assert!(dirty_bit(image), "{image}");
        let before = sha256_file(Path::new(image));
        let out = fix(image, "--in-place");
        let text = said(&out);
        assert_ne!(out.status.code(), Some(0), "{image}: {text}");
        assert!(text.contains(why), "{image}: {text}");
        let out = fix(image, "--dry-run");
        let text = said(&out);
        assert!(
            text.contains("--in-place would be refused") && text.contains(why),
            "{image}: {text}"
        );
        assert_eq!(sha256_file(Path::new(image)), before, "{image} changed");
    }
}

#[test]
fn clusters_shared_with_snapshots_are_copied_on_write() {
    if !have_tool("qemu-img") || !have_tool("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let base = d("base.qcow2");
    from_sample(&base, "", false);
    let base_sum = sha256_file(Path::new(&base));
    for (name, opts) in [
        ("snap", ""),
        ("snap-512", "cluster_size=512"),
        ("snap-extl2", "extended_l2=on"),
        ("snap-v2", "compat=0.10"),
        ("snap-two", ""),
        ("snap-child", "child"),
    ] {
        let image = d(&format!("{name}.qcow2"));
        if opts == "child" {
            qemu_img(&[
                "create", "-q", "-f", "qcow2", "-b", &base, "-F", "qcow2", &image,
            ]);
            let out = Command::new("qemu-io")
                .args(["-c", "write -P 0x33 3670016 64k", "-f", "qcow2", &image])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        } else {
            from_sample(&image, opts, false);
        }
        qemu_img(&["snapshot", "-c", "s1", &image]);
        let mut names = vec!["s1"];
        if name == "snap-two" {
            // A second snapshot after a write: some clusters shared by both, some by one.
            let out = Command::new("qemu-io")
                .args(["-c", "write -P 0x77 3670016 128k", "-f", "qcow2", &image])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            qemu_img(&["snapshot", "-c", "s2", &image]);
            names.push("s2");
        }
        let snaps = snapshot_raws(&image, &names, dir.path());
        // A dry run does not say it would be refused.
        let text = said(&fix(&image, "--dry-run"));
        assert!(!text.contains("would be refused"), "{name}: {text}");
        fix_and_hold(&image, &d(&format!("{name}.raw")), &snaps, dir.path());
        assert_eq!(
            sha256_file(Path::new(&base)),
            base_sum,
            "{name}: the base changed"
        );
    }
}

/// A commit stopped before each of its steps (a panic from its observer): the file as the
/// stop left it (before any rollback) is one `qemu-img check` finds no corruption in (at
/// worst leaked clusters), or, for a dirty image, one still marked dirty, which QEMU repairs
/// when it opens it; opening it for writing again rolls it back to its old bytes, or keeps
/// the complete commit. On an image with a snapshot, and on a dirty one with a snapshot.
#[test]
fn a_commit_stopped_at_any_step_leaves_an_image_qemu_accepts() {
    if !have_tool("qemu-img") || !have_tool("qemu-io") {
        return;
    }
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"stopped") {
            quiet(info);
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    for (name, opts) in [("snap", ""), ("dirty-snap", "lazy_refcounts=on")] {
        let pristine = d(&format!("{name}.orig.qcow2"));
        from_sample(&pristine, opts, false);
        qemu_img(&["snapshot", "-c", "s1", &pristine]);
        if name == "dirty-snap" {
            qemu_io_abort(&pristine, &["write -P 0x5a 3670016 64k"]);
            assert!(dirty_bit(&pristine));
        }
        let before = sha256_file(Path::new(&pristine));
        // Over clusters the snapshot shares (the disk's first) and past them (new ones).
        let stage = |image: &str| {
            let s =
                disk::open_for_write(Path::new(image), &disk::WriteOptions::in_place()).unwrap();
            s.overlay().write_at(4096, &[0x77; 70_000]).unwrap();
            s.overlay().write_at(TAIL + 65_536, &[0x88; 4096]).unwrap();
            s
        };
        let done = d(&format!("{name}.done.qcow2"));
        std::fs::copy(&pristine, &done).unwrap();
        stage(&done)
            .commit(&disk::CommitOptions::default())
            .unwrap();
        assert_check_clean(&done);
        let after = sha256_file(Path::new(&done));
        let (image, stopped_copy) = (d(&format!("{name}.qcow2")), d("stopped.qcow2"));
        let (mut stops, mut rolled_back) = (0, 0);
        for at in 0.. {
            // A stop after the journal said complete leaves the commit and its journal.
            let _ = std::fs::remove_file(format!("{image}.rehost-undo"));
            std::fs::copy(&pristine, &image).unwrap();
            let s = stage(&image);
            let observer = move |step: &disk::Step| {
                if step.number == at {
                    panic!("stopped");
                }
            };
            let commit = disk::CommitOptions {
                observer: Some(&observer),
                ..Default::default()
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.commit(&commit)));
            if let Ok(r) = r {
                r.unwrap();
                break;
            }
            stops += 1;
            std::fs::copy(&image, &stopped_copy).unwrap();
            let (errors, corruptions, _) = check_counts(&stopped_copy);
            assert!(
                (errors, corruptions) == (0, 0) || dirty_bit(&stopped_copy),
                "{name}: stopped at step {at}: {errors} errors, {corruptions} corruptions"
            );
            drop(disk::open_for_write(Path::new(&image), &disk::WriteOptions::in_place()).unwrap());
            let now = sha256_file(Path::new(&image));
            if now == before {
                rolled_back += 1;
            } else {
                assert_eq!(now, after, "{name}: step {at} left neither image");
            }
        }
        assert!(
            stops > 5 && rolled_back > 3,
            "{name}: {rolled_back} of {stops}"
        );
        eprintln!("{name}: stopped at each of {stops} steps, {rolled_back} rolled back");
    }
}
