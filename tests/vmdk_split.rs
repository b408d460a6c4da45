//! VMDKs of several files written in place: a descriptor and its extent files
//! (twoGbMaxExtentSparse as qemu-img makes it; two sparse extents, two flat extents and a
//! vmfs disk of two VMFS extents, each extent made by qemu-img or cut from the raw disk,
//! under a descriptor that names them). The same fix is done in place on a raw copy:
//! `qemu-img compare` finds each VMDK identical to it, `qemu-img check` clean, `check`
//! says the install boots, and `undo` gives back every file byte for byte and removes every
//! journal. A commit stopped at any of its steps, and an undo stopped at any of its, leaves
//! after the next open for writing every file as it was before, or every file as the whole
//! commit left it.

mod common;

use common::{have_tool, qemu_img, rehost_command, root, run, sha256_file};
use rehost::disk::{self, WriteAt};
use std::path::{Path, PathBuf};

/// A descriptor naming `extents` (sectors, type, file) under `create_type`.
fn descriptor(create_type: &str, extents: &[(u64, &str, &str)]) -> String {
    let mut d = format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=1a2b3c4d\n\
         parentCID=ffffffff\ncreateType=\"{create_type}\"\n\n# Extent description\n"
    );
    for (sectors, kind, file) in extents {
        let offset = if *kind == "FLAT" { " 0" } else { "" };
        d.push_str(&format!("RW {sectors} {kind} \"{file}\"{offset}\n"));
    }
    d.push_str("\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"ide\"\n");
    d
}

/// The sample's disk in `dir` as VMDKs of several files: (descriptor, its extent files,
/// whether qemu-img checks it).
fn make_disks(dir: &Path) -> Vec<(PathBuf, Vec<PathBuf>, bool)> {
    let p = |n: &str| dir.join(n);
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let sample = root().join("testdata/sample/sample.vhd");
    let whole = p("whole.raw");
    qemu_img(&[
        "convert",
        "-q",
        "-f",
        "vpc",
        "-O",
        "raw",
        &s(&sample),
        &s(&whole),
    ]);
    let bytes = std::fs::read(&whole).unwrap();
    // Cut at 2 MiB: the NTFS volume, and the fix's writes, lie on both sides.
    let cut = 2 << 20;
    let (a, b) = bytes.split_at(cut);
    let (sa, sb) = ((a.len() / 512) as u64, (b.len() / 512) as u64);
    std::fs::write(p("a.raw"), a).unwrap();
    std::fs::write(p("b.raw"), b).unwrap();
    let mut disks = Vec::new();
    // qemu-img's own split sparse disk.
    let t = p("t.vmdk");
    qemu_img(&[
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "vmdk",
        "-o",
        "subformat=twoGbMaxExtentSparse",
        &s(&whole),
        &s(&t),
    ]);
    disks.push((t, vec![p("t-s001.vmdk")], true));
    // Two sparse extents, each made by qemu-img.
    for (raw, vmdk) in [("a.raw", "m-s001.vmdk"), ("b.raw", "m-s002.vmdk")] {
        qemu_img(&[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "vmdk",
            &s(&p(raw)),
            &s(&p(vmdk)),
        ]);
    }
    let d = descriptor(
        "twoGbMaxExtentSparse",
        &[(sa, "SPARSE", "m-s001.vmdk"), (sb, "SPARSE", "m-s002.vmdk")],
    );
    std::fs::write(p("ms.vmdk"), d).unwrap();
    disks.push((p("ms.vmdk"), vec![p("m-s001.vmdk"), p("m-s002.vmdk")], true));
    // Two flat extents, and a vmfs disk of two VMFS extents.
    for (create, kind, stem) in [("twoGbMaxExtentFlat", "FLAT", "mf"), ("vmfs", "VMFS", "mv")] {
        let (fa, fb) = (format!("{stem}-f001.vmdk"), format!("{stem}-f002.vmdk"));
        std::fs::write(p(&fa), a).unwrap();
        std::fs::write(p(&fb), b).unwrap();
        let d = descriptor(create, &[(sa, kind, &fa), (sb, kind, &fb)]);
        let desc = p(&format!("{stem}.vmdk"));
        std::fs::write(&desc, d).unwrap();
        disks.push((desc, vec![p(&fa), p(&fb)], false));
    }
    for (d, _, _) in &disks {
        let cmp = qemu_img(&["compare", "-f", "vmdk", "-F", "raw", &s(d), &s(&whole)]);
        assert!(cmp.contains("Images are identical"), "{d:?}: {cmp}");
    }
    disks
}

fn sums(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|f| sha256_file(f)).collect()
}

fn journals(dir: &Path) -> Vec<String> {
    let mut j: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".rehost-undo"))
        .collect();
    j.sort();
    j
}

fn fix_in_place(image: &Path) -> std::process::Output {
    rehost_command()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["fix", "--target", "hyperv-gen1", "--in-place"])
        .arg(image)
        .output()
        .unwrap()
}

#[test]
fn split_vmdks_fixed_in_place_equal_the_raw_fix_and_undo() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disks = make_disks(dir.path());
    let raw = dir.path().join("fixed.raw");
    std::fs::copy(dir.path().join("whole.raw"), &raw).unwrap();
    assert_eq!(fix_in_place(&raw).status.code(), Some(0));
    std::fs::remove_file(dir.path().join("fixed.raw.rehost-undo")).unwrap();
    for (desc, extents, checks) in &disks {
        let files: Vec<PathBuf> = std::iter::once(desc.clone())
            .chain(extents.iter().cloned())
            .collect();
        let before = sums(&files);
        // The dry run finds nothing in the way.
        let out = rehost_command()
            .args(["fix", "--target", "hyperv-gen1", "--dry-run"])
            .arg(desc)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(!said.contains("would be refused"), "{desc:?}: {said}");
        let out = fix_in_place(desc);
        assert_eq!(out.status.code(), Some(0), "{desc:?}: {out:?}");
        let after = sums(&files);
        assert_ne!(
            after[0], before[0],
            "{desc:?}: the descriptor's CID is renewed"
        );
        for (i, f) in files.iter().enumerate().skip(1) {
            assert_ne!(
                after[i], before[i],
                "{f:?}: the fix writes into every extent"
            );
        }
        let cmp = qemu_img(&[
            "compare",
            "-f",
            "vmdk",
            "-F",
            "raw",
            desc.to_str().unwrap(),
            raw.to_str().unwrap(),
        ]);
        assert!(cmp.contains("Images are identical"), "{desc:?}: {cmp}");
        if *checks {
            let check = qemu_img(&["check", "-f", "vmdk", desc.to_str().unwrap()]);
            assert!(check.contains("No errors"), "{desc:?}: {check}");
        }
        let check = String::from_utf8(run(rehost_command()
            .args(["check", "-t", "hyperv-gen1"])
            .arg(desc)))
        .unwrap();
        assert!(check.contains("boots"), "{desc:?}: {check}");
        // One journal beside each file written.
        assert_eq!(journals(dir.path()).len(), files.len(), "{desc:?}");
        run(rehost_command().arg("undo").arg(desc));
        assert_eq!(sums(&files), before, "{desc:?}: undo");
        assert!(journals(dir.path()).is_empty(), "{desc:?}");
    }
}

/// The commit's options: the same new CID every time.
fn commit(observer: Option<disk::Observer<'_>>) -> disk::CommitOptions<'_> {
    disk::CommitOptions {
        observer,
        seed: Some(1),
        vmdk_adapter: None,
    }
}

/// Writes into both extents: a grain already stored, grains not yet stored, bytes that
/// do not fill a sector.
fn stage(desc: &Path) -> disk::WriteSession {
    let s = disk::open_for_write(desc, &disk::WriteOptions::in_place()).unwrap();
    let o = s.overlay();
    o.write_at(0x1be, &[0x80]).unwrap();
    o.write_at((2 << 20) - 700, &common::pattern(1400, 5))
        .unwrap();
    o.write_at((3 << 20) + 12345, &common::pattern(200_000, 6))
        .unwrap();
    s
}

#[test]
fn split_commits_and_undos_stopped_anywhere_leave_all_files_before_or_after() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disks = make_disks(dir.path());
    for (desc, extents, _) in disks.iter().skip(1).take(2) {
        let files: Vec<PathBuf> = std::iter::once(desc.clone())
            .chain(extents.iter().cloned())
            .collect();
        let pristine: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let restore = || {
            for (f, b) in files.iter().zip(&pristine) {
                std::fs::write(f, b).unwrap();
            }
            for j in journals(dir.path()) {
                std::fs::remove_file(dir.path().join(j)).unwrap();
            }
        };
        stage(desc).commit(&commit(None)).unwrap();
        let after = sums(&files);
        let before: Vec<String> = {
            restore();
            sums(&files)
        };
        let (mut rolled_back, mut kept) = (0, 0);
        for at in 0.. {
            restore();
            let s = stage(desc);
            let observer = move |step: &disk::Step| {
                if step.number == at {
                    panic!("stopped");
                }
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.commit(&commit(Some(&observer)))
            }));
            if let Ok(done) = r {
                done.unwrap();
                break;
            }
            drop(disk::open_for_write(desc, &disk::WriteOptions::in_place()).unwrap());
            let now = sums(&files);
            if now == before {
                rolled_back += 1;
                assert!(journals(dir.path()).is_empty(), "{desc:?} step {at}");
                continue;
            }
            assert_eq!(now, after, "{desc:?}: step {at} left neither");
            kept += 1;
            disk::undo(desc, None).unwrap();
            assert_eq!(sums(&files), before, "{desc:?}: undo after step {at}");
        }
        assert!(rolled_back > 10 && kept > 0, "{rolled_back} {kept}");
        // An undo stopped anywhere: finished by the next undo.
        let mut stopped = 0;
        for at in 0.. {
            restore();
            stage(desc).commit(&commit(None)).unwrap();
            let observer = move |step: &disk::Step| {
                if step.number == at {
                    panic!("stopped");
                }
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                disk::undo(desc, Some(&observer))
            }));
            if let Ok(done) = r {
                done.unwrap();
                assert_eq!(sums(&files), before, "{desc:?}");
                break;
            }
            stopped += 1;
            // Stopped after its last restore, there is nothing left to undo.
            let _ = disk::undo(desc, None);
            assert_eq!(sums(&files), before, "{desc:?}: undo stopped at step {at}");
            assert!(journals(dir.path()).is_empty(), "{desc:?} step {at}");
        }
        assert!(stopped > 5, "{stopped}");
        eprintln!(
            "{}: commits stopped at {} steps ({rolled_back} rolled back, {kept} kept whole), \
             undos at {stopped}",
            desc.display(),
            rolled_back + kept
        );
    }
}

/// A 5 GiB twoGbMaxExtentSparse disk made by qemu-img (three extent files): writes in
/// each extent and one across the boundary of the first two, committed in place, read
/// back by `qemu-img compare` equal to a sparse raw file given the same bytes, `qemu-img
/// check` clean; undo gives back every file.
#[test]
fn writes_across_qemu_split_extents_equal_the_raw_writes() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let desc = dir.path().join("big.vmdk");
    let raw = dir.path().join("big.raw");
    let size: u64 = 5 << 30;
    let d = desc.to_str().unwrap();
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-o",
        "subformat=twoGbMaxExtentSparse",
        d,
        &size.to_string(),
    ]);
    let files: Vec<PathBuf> = [
        "big.vmdk",
        "big-s001.vmdk",
        "big-s002.vmdk",
        "big-s003.vmdk",
    ]
    .iter()
    .map(|n| dir.path().join(n))
    .collect();
    assert!(
        files.iter().all(|f| f.is_file()),
        "{:?}",
        journals(dir.path())
    );
    let before = sums(&files);
    let writes: Vec<(u64, Vec<u8>)> = vec![
        (1 << 20, common::pattern(5000, 7)),
        ((2 << 30) - 3000, common::pattern(70_000, 8)),
        ((4 << 30) + 12_345, common::pattern(300_000, 9)),
        (size - 512, common::pattern(512, 10)),
    ];
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    let s = disk::open_for_write(&desc, &disk::WriteOptions::in_place()).unwrap();
    for (at, bytes) in &writes {
        f.write_all_at(bytes, *at).unwrap();
        s.overlay().write_at(*at, bytes).unwrap();
    }
    drop(f);
    let report = s.commit(&commit(None)).unwrap();
    assert!(report.journal.is_some());
    let after = sums(&files);
    for i in 0..files.len() {
        assert_ne!(after[i], before[i], "{:?} was not written", files[i]);
    }
    let check = qemu_img(&["check", "-f", "vmdk", d]);
    assert!(check.contains("No errors"), "{check}");
    let cmp = qemu_img(&[
        "compare",
        "-f",
        "vmdk",
        "-F",
        "raw",
        d,
        raw.to_str().unwrap(),
    ]);
    assert!(cmp.contains("Images are identical"), "{cmp}");
    disk::undo(&desc, None).unwrap();
    assert_eq!(sums(&files), before, "undo");
    assert!(journals(dir.path()).is_empty());
}
