//! E01 evidence files against libewf's own tools: images made by `ewfacquire` (compression
//! none, fast and best, cut into 1 MiB segments so that there are several) from the sample
//! and the Windows 7 fixture read through rehost as `ewfexport` exports them (the whole disk
//! and every file of every volume), `inspect` and `check` say of them what they say of the
//! raw disk, the stored MD5 and SHA-1 are shown and `volumes --verify` holds the media to
//! them, conversion and fix `--output` give what qemu-img finds identical to the raw, and
//! damaged segment files are errors that say what is wrong, never panics.

mod common;

use common::ewf::{
    bytes_of, fixed_only_into_new_images, open_error, qemu_compare, raw_disk, report, same_files,
    sums, verify,
};
use common::{have_tool, rehost_command, run};
use rehost::disk::{self, ReadAt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether libewf's tools and qemu-img are here (in CI they must be).
fn tools() -> bool {
    have_tool("ewfacquire") && have_tool("ewfexport") && have_tool("qemu-img")
}

/// `ewfacquire` of `raw` into `dir/stem.E01` (and further segments of 1 MiB), with
/// `compression` (none, fast, best) and an SHA-1 beside the MD5.
fn acquire(raw: &Path, dir: &Path, stem: &str, compression: &str) -> PathBuf {
    let target = dir.join(stem);
    run(Command::new("ewfacquire")
        .args([
            "-u",
            "-q",
            "-c",
            compression,
            "-S",
            "1MiB",
            "-d",
            "sha1",
            "-t",
        ])
        .arg(&target)
        .arg(raw));
    target.with_extension("E01")
}

/// `ewfexport` of an evidence file to a raw image in `dir`: the oracle.
fn export(e01: &Path, dir: &Path) -> PathBuf {
    let stem = format!("{}-exported", e01.file_stem().unwrap().to_string_lossy());
    let target = dir.join(&stem);
    run(Command::new("ewfexport")
        .args(["-u", "-q", "-f", "raw", "-t"])
        .arg(&target)
        .arg(e01));
    dir.join(format!("{stem}.raw"))
}

/// The segment files of the evidence file `e01`, in order.
fn segments(e01: &Path) -> Vec<PathBuf> {
    (1..)
        .map_while(|n| disk::ewf::segment_path(e01, n).filter(|s| s.is_file()))
        .collect()
}

#[test]
fn evidence_files_read_as_ewfexport_exports_them() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["sample", "win7"] {
        let raw = raw_disk(name, dir.path());
        let original = std::fs::read(&raw).unwrap();
        for compression in ["none", "fast", "best"] {
            let e01 = acquire(
                &raw,
                dir.path(),
                &format!("{name}-{compression}"),
                compression,
            );
            let segs = segments(&e01);
            if compression == "none" {
                assert!(segs.len() >= 4, "{e01:?}: {} segments", segs.len());
            }
            let exported = std::fs::read(export(&e01, dir.path())).unwrap();
            assert!(
                exported == original,
                "ewfexport of {e01:?} is not the raw disk"
            );
            let d = disk::open(&e01, &Default::default()).unwrap();
            assert_eq!(d.info().format, disk::Format::E01);
            let variant = d.info().variant.clone().unwrap();
            assert!(
                variant.starts_with(&format!("E01, {} segment", segs.len())),
                "{variant}"
            );
            assert_eq!(d.size(), exported.len() as u64);
            // In odd pieces, across chunk and segment boundaries.
            let mut ours = vec![0u8; exported.len()];
            let mut at = 0usize;
            let mut step = 1usize;
            while at < ours.len() {
                let n = (7919 * step % 150_000 + 1).min(ours.len() - at);
                d.read_at(at as u64, &mut ours[at..at + n]).unwrap();
                at += n;
                step += 1;
            }
            assert!(
                ours == exported,
                "{e01:?} reads other bytes than ewfexport's"
            );
            let files = same_files(&e01, &raw);
            assert!(files > 10, "{e01:?}: {files} files compared");
            eprintln!(
                "{name} {compression}: {} segments, {files} files equal",
                segs.len()
            );
        }
    }
}

#[test]
fn inspect_and_check_say_of_the_evidence_file_what_they_say_of_the_raw_disk() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk("win7", dir.path());
    let e01 = acquire(&raw, dir.path(), "win7", "fast");
    let check = [
        "check",
        "-t",
        "hyperv-gen1",
        "-t",
        "kvm-sata",
        "-t",
        "kvm-virtio-blk",
    ];
    assert_eq!(report(&["inspect"], &e01), report(&["inspect"], &raw));
    let ours = report(&check, &e01);
    assert_eq!(ours, report(&check, &raw));
    assert!(ours.contains("msahci"), "{ours}");
}

/// Where segment `seg`'s chunk `n` (counted in that segment's first table) is stored, and
/// whether it is compressed, read from the table the way the specification lays it out.
fn chunk_in_table(seg: &[u8], n: usize) -> (usize, usize, bool) {
    let table = find_section(seg, "table").unwrap();
    let entries = table + 76 + 24;
    let count = u32_at(seg, table + 76) as usize;
    let base = u64::from_le_bytes(seg[table + 84..table + 92].try_into().unwrap()) as usize;
    let entry = |i: usize| u32_at(seg, entries + 4 * i);
    let start = base + (entry(n) & 0x7fff_ffff) as usize;
    let end = if n + 1 < count {
        base + (entry(n + 1) & 0x7fff_ffff) as usize
    } else {
        table
    };
    (start, end, entry(n) >> 31 == 1)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The offset of the first section of type `kind` in a segment file.
fn find_section(seg: &[u8], kind: &str) -> Option<usize> {
    let mut at = 13usize;
    loop {
        let d = seg.get(at..at + 76)?;
        let name = &d[..16];
        if name.starts_with(kind.as_bytes()) && name[kind.len()] == 0 {
            return Some(at);
        }
        let next = u64::from_le_bytes(d[16..24].try_into().unwrap()) as usize;
        if next <= at {
            return None;
        }
        at = next;
    }
}

#[test]
fn stored_hashes_are_shown_and_verified_and_a_damaged_chunk_fails_the_verification() {
    if !tools() || !have_tool("ewfverify") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk("sample", dir.path());
    let (md5, sha1) = sums(&raw);
    for compression in ["none", "fast"] {
        let e01 = acquire(&raw, dir.path(), &format!("s-{compression}"), compression);
        let (r, code) = verify(&e01);
        assert_eq!(code, 0, "{r}");
        let stored = &r["disk"]["stored_hashes"];
        assert_eq!(stored[0]["algorithm"], "MD5");
        assert_eq!(stored[0]["hex"], md5.as_str());
        assert_eq!(stored[1]["algorithm"], "SHA-1");
        assert_eq!(stored[1]["hex"], sha1.as_str());
        assert_eq!(r["verify"]["verified"], true, "{r}");
        assert_eq!(r["verify"]["computed"]["md5"], md5.as_str());
        let text = String::from_utf8(run(rehost_command()
            .args(["volumes", "--verify"])
            .arg(&e01)))
        .unwrap();
        assert!(text.contains(&format!("stored MD5: {md5}")), "{text}");
        assert!(
            text.contains(&format!("verify: SHA-1 {sha1} match")),
            "{text}"
        );

        // One byte of a chunk in the last segment changed: libewf's verifier and rehost's
        // both fail.
        let last = segments(&e01).pop().unwrap();
        let mut seg = std::fs::read(&last).unwrap();
        let (start, end, compressed) = chunk_in_table(&seg, 1);
        assert_eq!(compressed, compression != "none");
        seg[(start + end) / 2] ^= 0x5a;
        std::fs::write(&last, &seg).unwrap();
        let theirs = Command::new("ewfverify")
            .args(["-q"])
            .arg(&e01)
            .output()
            .unwrap();
        assert!(
            !theirs.status.success(),
            "ewfverify accepted the damaged chunk"
        );
        let (r, code) = verify(&e01);
        assert_eq!(code, 1, "{r}");
        assert_eq!(r["verify"]["verified"], false, "{r}");
        let error = r["verify"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("chunk") && error.contains("ewf"), "{r}");
        let text = String::from_utf8_lossy(
            &rehost_command()
                .args(["volumes", "--verify"])
                .arg(&e01)
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        assert!(text.contains("verify: FAILED"), "{text}");
    }

    // A stored MD5 that is not the media's (its section's checksum kept right): MISMATCH.
    let e01 = acquire(&raw, dir.path(), "s-wrong", "fast");
    let last = segments(&e01).pop().unwrap();
    let mut seg = std::fs::read(&last).unwrap();
    let hash = find_section(&seg, "hash").unwrap() + 76;
    seg[hash] ^= 1;
    let sum = disk::ewf::adler32(&seg[hash..hash + 32]);
    seg[hash + 32..hash + 36].copy_from_slice(&sum.to_le_bytes());
    if let Some(d) = find_section(&seg, "digest").map(|d| d + 76) {
        seg[d] ^= 1;
        let sum = disk::ewf::adler32(&seg[d..d + 76]);
        seg[d + 76..d + 80].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(&last, &seg).unwrap();
    let (r, code) = verify(&e01);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["verify"]["checks"][0]["matches"], false, "{r}");
    assert_eq!(r["verify"]["checks"][1]["matches"], true, "{r}");
    let text = String::from_utf8_lossy(
        &rehost_command()
            .args(["volumes", "--verify"])
            .arg(&e01)
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(text.contains("verify: MD5 MISMATCH: stored"), "{text}");
    assert!(text.contains(&format!("computed {md5}")), "{text}");
}

#[test]
fn evidence_is_converted_and_fixed_into_new_images_never_in_place() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk("win7", d);
    let e01 = acquire(&raw, d, "win7", "best");
    let before = bytes_of(&segments(&e01));
    for (format, ext, qemu) in [
        ("vhdx", "vhdx", "vhdx"),
        ("vhd", "vhd", "vpc"),
        ("raw", "raw", "raw"),
    ] {
        let out = d.join(format!("converted.{ext}"));
        let said = String::from_utf8(run(rehost_command()
            .arg("convert")
            .arg(&e01)
            .arg(&out)
            .args(["--output-format", format])))
        .unwrap();
        assert!(said.contains("read back and compared"), "{said}");
        qemu_compare(&raw, "raw", &out, qemu);
    }

    // In place: refused, pointing at --output; fix --output equals the raw disk fixed in
    // place; the evidence unchanged.
    fixed_only_into_new_images(&e01, &segments(&e01), &before, &raw, "read-only", d);
}

#[test]
fn damaged_evidence_files_are_errors_that_say_what_is_wrong() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk("sample", d);
    let fresh = |stem: &str, c: &str| {
        let e01 = acquire(&raw, d, stem, c);
        let segs = segments(&e01);
        (e01, segs)
    };

    // A missing segment: named.
    let (e01, segs) = fresh("missing", "none");
    std::fs::remove_file(&segs[2]).unwrap();
    let e = open_error(&e01);
    assert!(
        e.contains("missing.E03") && e.contains("is missing") && e.contains("segment 3"),
        "{e}"
    );

    // A truncated segment.
    let (e01, segs) = fresh("truncated", "none");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    let e = open_error(&e01);
    assert!(
        e.contains("truncated.E02") && e.contains("truncated"),
        "{e}"
    );

    // A table entry pointing past the end of its file (the entries' checksum made right).
    let (e01, segs) = fresh("past", "fast");
    let mut seg = std::fs::read(&segs[0]).unwrap();
    let table = find_section(&seg, "table").unwrap();
    let count = u32_at(&seg, table + 76) as usize;
    let entries = table + 100;
    seg[entries + 8..entries + 12].copy_from_slice(&0xffff_ff00u32.to_le_bytes());
    let sum = disk::ewf::adler32(&seg[entries..entries + 4 * count]);
    seg[entries + 4 * count..entries + 4 * count + 4].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&segs[0], &seg).unwrap();
    let e = open_error(&e01);
    assert!(e.contains("ewf") && e.contains("table entry"), "{e}");

    // A chunk that inflates beyond the chunk's size: a zlib stream of 64 KiB of zeros (a
    // few dozen bytes) put over the start of a chunk that takes more room.
    let (e01, segs) = fresh("bomb", "fast");
    let mut seg = std::fs::read(&segs[0]).unwrap();
    let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![0u8; 65536], 9);
    let table = find_section(&seg, "table").unwrap();
    let count = u32_at(&seg, table + 76) as usize;
    let slot = (0..count)
        .map(|n| chunk_in_table(&seg, n))
        .find(|&(s, e, c)| c && e - s >= bomb.len())
        .expect("a compressed chunk with room");
    seg[slot.0..slot.0 + bomb.len()].copy_from_slice(&bomb);
    std::fs::write(&segs[0], &seg).unwrap();
    let e = open_error(&e01);
    assert!(e.contains("inflates to more than"), "{e}");

    // A later segment given alone, and an Ex01: said what they are.
    let (_, segs) = fresh("later", "none");
    let e = open_error(&segs[1]);
    assert!(e.contains("segment 2") && e.contains("later.E01"), "{e}");
}

#[test]
fn every_ewf_format_ewfacquire_writes_reads_as_the_raw_disk() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk("sample", d);
    let original = std::fs::read(&raw).unwrap();
    // SMART (its chunks inside the table sections, a short volume section, `.s01`), the
    // EnCase versions, FTK Imager and linen: each as libewf writes it.
    for (format, compression, ext) in [
        ("smart", "fast", "s01"),
        ("encase2", "best", "E01"),
        ("encase5", "fast", "E01"),
        ("encase6", "best", "E01"),
        ("encase7", "fast", "E01"),
        ("ftk", "none", "E01"),
        ("linen6", "fast", "E01"),
    ] {
        let target = d.join(format);
        run(Command::new("ewfacquire")
            .args([
                "-u",
                "-q",
                "-f",
                format,
                "-c",
                compression,
                "-S",
                "1MiB",
                "-t",
            ])
            .arg(&target)
            .arg(&raw));
        let e01 = target.with_extension(ext);
        let disk =
            disk::open(&e01, &Default::default()).unwrap_or_else(|e| panic!("{format}: {e:#}"));
        let mut ours = vec![0u8; original.len()];
        assert_eq!(disk.size(), ours.len() as u64, "{format}");
        disk.read_at(0, &mut ours).unwrap();
        assert!(ours == original, "{format}: other bytes than the raw disk");
        let (r, code) = verify(&e01);
        assert_eq!(
            (code, &r["verify"]["verified"]),
            (0, &serde_json::json!(true)),
            "{format}: {r}"
        );
    }
}
