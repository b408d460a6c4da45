//! A qcow2 image whose L2 entry names one of its own metadata clusters (an L2 table, the L1
//! table, the refcount table) as the data of a guest cluster, with the COPIED flag: a write
//! in place into that guest cluster is refused before anything is written, naming what the
//! cluster holds, and the file is left as it was (the metadata's refcount of one would
//! otherwise have let the guest data overwrite it).

mod common;

use common::{have_tool, sample_as, sha256_file};
use rehost::disk::{self, WriteAt};
use std::path::Path;

const COPIED: u64 = 1 << 63;

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn data_named_at_metadata_is_refused_unchanged() {
    if !have_tool("qemu-img") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clean = sample_as(tmp.path(), "clean.qcow2", "qcow2", "");
    let bytes = std::fs::read(&clean).unwrap();
    let l1 = be64(&bytes, 40) as usize;
    let refcount_table = be64(&bytes, 48);
    let l2 = (be64(&bytes, l1) & 0x00ff_ffff_ffff_fe00) as usize;
    assert_ne!(be64(&bytes, l2), 0, "guest cluster 0 (the MBR) is stored");
    for (target, what) in [
        (l2 as u64, "an L2 table"),
        (l1 as u64, "the L1 table"),
        (refcount_table, "the refcount table"),
    ] {
        let image = tmp.path().join("damaged.qcow2");
        let mut b = bytes.clone();
        b[l2..l2 + 8].copy_from_slice(&(target | COPIED).to_be_bytes());
        std::fs::write(&image, &b).unwrap();
        let before = sha256_file(&image);
        let s = disk::open_for_write(&image, &disk::WriteOptions::in_place()).unwrap();
        s.overlay().write_at(0x1be, &[0x80]).unwrap();
        let err = s
            .commit(&disk::CommitOptions {
                observer: None,
                seed: Some(1),
                vmdk_adapter: None,
            })
            .map(|_| ())
            .expect_err("a write over metadata was committed")
            .to_string();
        assert!(
            err.contains(what) && err.contains("nothing was written"),
            "{what}: {err}"
        );
        assert_eq!(sha256_file(&image), before, "{what}: the image changed");
        assert!(!Path::new(&format!("{}.rehost-undo", image.display())).exists());
    }
}
