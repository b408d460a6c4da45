//! An extent file of a VMDK of several files, named alone: it opens and reads as the sparse
//! extent it is, but a write in place through it (which would journal it apart from its
//! descriptor, out of step with the set) and an undo of it (which would undo one file of a
//! commit that spans them all) are refused, naming the descriptor, and change nothing; the
//! dry run says the same. Through the descriptor the write and its undo go ahead.

mod common;

use common::{rehost_command, sample_as, sha256_file};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The sample as qemu-img's twoGbMaxExtentSparse VMDK in `dir`: its descriptor, and its
/// files (the extent first).
fn sparse_set(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let desc = sample_as(dir, "d.vmdk", "vmdk", "subformat=twoGbMaxExtentSparse");
    let extent = dir.join("d-s001.vmdk");
    assert!(extent.is_file(), "qemu-img made no extent file d-s001.vmdk");
    (desc.clone(), vec![extent, desc])
}

/// The sample as a VMDK of two flat extents in `dir` (the sample's raw disk, then 1 MiB of
/// zeros): its descriptor, and its files (the first extent first).
fn flat_set(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let first = sample_as(dir, "d-f001.vmdk", "raw", "");
    let second = dir.join("d-f002.vmdk");
    std::fs::write(&second, vec![0u8; 1 << 20]).unwrap();
    let sectors = std::fs::metadata(&first).unwrap().len() / 512;
    let desc = dir.join("d.vmdk");
    std::fs::write(
        &desc,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=1a2b3c4d\nparentCID=ffffffff\n\
             createType=\"twoGbMaxExtentFlat\"\n\nRW {sectors} FLAT \"d-f001.vmdk\" 0\n\
             RW 2048 FLAT \"d-f002.vmdk\" 0\n\nddb.adapterType = \"ide\"\n"
        ),
    )
    .unwrap();
    (desc.clone(), vec![first, second, desc])
}

fn rehost(args: &[&str]) -> Output {
    rehost_command().args(args).output().unwrap()
}

/// Both files' SHA-256 and the journals beside them.
fn state(dir: &Path, files: &[&Path]) -> (Vec<String>, Vec<String>) {
    let sums = files.iter().map(|f| sha256_file(f)).collect();
    let mut journals: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".rehost-undo"))
        .collect();
    journals.sort();
    (sums, journals)
}

#[test]
fn an_extent_alone_is_neither_written_nor_undone_but_its_descriptor_is() {
    if !common::have_tool("qemu-img") {
        return;
    }
    // A sparse extent (which alone reads as a disk of its own) and a flat one (raw bytes).
    for set in [sparse_set, flat_set] {
        let tmp = tempfile::tempdir().unwrap();
        let (desc, files) = set(tmp.path());
        one_set(tmp.path(), &desc, &files);
    }
}

fn one_set(dir: &Path, desc: &Path, files: &[PathBuf]) {
    let extent = &files[0];
    let (d, e) = (desc.to_str().unwrap(), extent.to_str().unwrap());
    let files: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
    let before = state(dir, &files);
    let local = dir.join("note.txt");
    std::fs::write(&local, b"written through an extent alone\n").unwrap();
    let l = local.to_str().unwrap();

    // The extent reads as the disk it holds.
    let out = rehost(&["ls", e, "/"]);
    assert!(out.status.success(), "{out:?}");

    // Written in place alone: refused, naming the descriptor; nothing changed.
    let out = rehost(&["put", e, l, "/note.txt", "--in-place"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is an extent of the VMDK") && err.contains("d.vmdk"),
        "{err}"
    );
    assert_eq!(state(dir, &files), before);

    // The dry run says the same.
    let out = rehost(&["put", e, l, "/note.txt", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--in-place would be refused") && text.contains("d.vmdk"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(dir, &files), before);

    // Through the descriptor the write goes ahead, journaled beside the extent it wrote.
    let out = rehost(&["put", d, l, "/note.txt", "--in-place"]);
    assert!(out.status.success(), "{out:?}");
    let written = state(dir, &files);
    assert_ne!(written.0, before.0);
    let journal = format!(
        "{}.rehost-undo",
        extent.file_name().unwrap().to_string_lossy()
    );
    assert!(written.1.contains(&journal), "{:?}", written.1);
    let out = rehost(&["cat", d, "/note.txt"]);
    assert_eq!(out.stdout, b"written through an extent alone\n", "{out:?}");

    // Undoing the extent alone: refused, naming the descriptor and the command.
    let out = rehost(&["undo", e]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("rehost undo") && err.contains("d.vmdk"),
        "{err}"
    );
    assert_eq!(state(dir, &files), written);

    // Undoing the descriptor gives back every file byte for byte, and no journal is left.
    let out = rehost(&["undo", d]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(state(dir, &files), before);
}
