//! Disks too small for what their protective MBR promises: a GPT needs LBA 1 and a last
//! LBA of its own, which a disk of a few sectors (or under one 4 KiB sector) does not have.
//! The library and the CLI must give an error or an honest empty layout, never a panic
//! (debug builds check arithmetic overflow).

use rehost::disk::{Memory, ReadAt};
use rehost::volume::{scan, Partitioning};
use rehost::{Ctx, Layer};
use std::process::Command;
use std::sync::Arc;

/// A disk of `size` bytes whose MBR holds one protective entry (type 0xEE) over it all.
fn protective(size: usize) -> Vec<u8> {
    let mut d = vec![0u8; size];
    let o = 446;
    d[o + 4] = 0xEE;
    d[o + 8..o + 12].copy_from_slice(&1u32.to_le_bytes());
    d[o + 12..o + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xAA;
    d
}

#[test]
fn a_protective_mbr_on_disks_of_a_few_sectors() {
    for size in [512usize, 1024, 2048, 4095, 4096, 6144, 8191] {
        for ss in [512u32, 4096] {
            let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("tiny.img", protective(size)));
            let ctx = Ctx::new("tiny.img", Layer::Raw);
            let layout = scan(dev, ss, &ctx)
                .unwrap_or_else(|e| panic!("{size} bytes, {ss}-byte sectors: {e}"));
            assert_eq!(layout.partitioning, Partitioning::Gpt, "{size} bytes");
            assert!(layout.volumes.is_empty(), "{size} bytes: {layout:?}");
            assert!(
                layout
                    .errors
                    .iter()
                    .any(|e| e.contains("no readable GPT") && e.contains("tiny.img")),
                "{size} bytes, {ss}-byte sectors: the error names the image: {:?}",
                layout.errors
            );
        }
    }
}

#[test]
fn a_sector_size_the_formats_do_not_have_is_an_error() {
    for ss in [0u32, 1, 511, 513, 8192] {
        let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("tiny.img", protective(2048)));
        let e = scan(dev, ss, &Ctx::new("tiny.img", Layer::Raw)).unwrap_err();
        assert!(e.to_string().contains("sector size"), "{ss}: {e}");
    }
}

#[test]
fn rehost_volumes_on_a_2_kib_disk_with_a_protective_mbr() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("tiny.raw");
    std::fs::write(&img, protective(2048)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .arg("volumes")
        .arg(&img)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("panicked"),
        "rehost volumes panicked: {text}"
    );
    assert!(
        out.status.code().is_some_and(|c| c <= 2),
        "rehost volumes ended by {:?}: {text}",
        out.status
    );
    assert!(
        text.contains("no room for a GPT") || text.contains("no readable GPT"),
        "rehost volumes says why there is no volume: {text}"
    );
}
