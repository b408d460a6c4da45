//! The FAT32 formatter against dosfstools and mtools: an ESP of 100 MiB (512-byte sectors)
//! and of 260 MiB (4 KiB sectors) formatted on a sparse file and filled with the boot files
//! through the FAT writer is what `fsck.vfat -n` finds nothing to repair in, and mtools
//! reads the files back byte for byte; sizes FAT32 cannot hold are refused with nothing
//! written.

mod common;

use rehost::fs::fat::format::{format, Options};
use rehost::fs::fat::write::FatWriter;
use rehost::fs::fat::Fat;
use rehost::volume::Content;
use rehost::{Ctx, Layer, Result};
use rehost_core::io::{ReadAt, WriteAt};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// A file as a device, read and written in place.
struct FileDev(std::fs::File, u64);

impl ReadAt for FileDev {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.0
            .read_exact_at(buf, offset)
            .map_err(|e| Ctx::new("esp.img", Layer::Raw).io(offset, e))
    }
    fn size(&self) -> u64 {
        self.1
    }
}

impl WriteAt for FileDev {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.0
            .write_all_at(data, offset)
            .map_err(|e| Ctx::new("esp.img", Layer::Raw).io(offset, e))
    }
}

fn dev(path: &Path, size: u64) -> Arc<FileDev> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.set_len(size).unwrap();
    Arc::new(FileDev(f, size))
}

fn opts(ss: u32) -> Options {
    Options {
        sector_size: ss,
        label: "System".into(),
        volume_id: 0x5a3b_1e00,
        hidden_sectors: 2048,
    }
}

fn ctx() -> Ctx {
    Ctx::new("esp.img", Layer::Fat)
}

const FILES: [(&str, usize); 5] = [
    ("EFI/Microsoft/Boot/bootmgfw.efi", 1_560_000),
    ("EFI/Microsoft/Boot/BCD", 28_672),
    ("EFI/Microsoft/Boot/Fonts/wgl4_boot.ttf", 46_000),
    ("EFI/Microsoft/Boot/en-US/bootmgfw.efi.mui", 77_000),
    ("EFI/Boot/bootx64.efi", 1_560_000),
];

#[test]
fn an_esp_formatted_and_filled_reads_back_in_dosfstools_and_mtools() {
    for t in ["fsck.vfat", "mtype", "mdir", "minfo"] {
        if !common::have_tool(t) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for (ss, size, cluster) in [(512u32, 100u64 << 20, 1024u32), (4096, 260 << 20, 4096)] {
        let img = dir.path().join(format!("esp{ss}.img"));
        let d = dev(&img, size);
        let made = format(d.clone(), &opts(ss), &ctx()).unwrap();
        assert_eq!(made.cluster_size, cluster);
        assert_eq!(made.sectors, size / ss as u64);
        let mut w = FatWriter::open(d.clone(), ctx()).unwrap();
        let files: Vec<(&str, Vec<u8>)> = FILES
            .iter()
            .enumerate()
            .map(|(i, (p, n))| (*p, common::pattern(*n, i as u64 + 1)))
            .collect();
        for (p, bytes) in &files {
            w.put(p, bytes).unwrap();
        }
        drop(w);

        let out = Command::new("fsck.vfat")
            .arg("-n")
            .arg(&img)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "fsck.vfat -n ({ss}): {said}");
        assert!(
            !said.contains("differ") && !said.contains("Free cluster"),
            "{said}"
        );
        for (p, bytes) in &files {
            let got = common::run(
                Command::new("mtype")
                    .arg("-i")
                    .arg(&img)
                    .arg(format!("::/{p}")),
            );
            assert!(got == *bytes, "{p} ({ss}) differs through mtools");
        }
        let listing = String::from_utf8(common::run(
            Command::new("mdir").arg("-i").arg(&img).arg("::/EFI"),
        ))
        .unwrap();
        assert!(listing.contains("Volume in drive : is SYSTEM"), "{listing}");
        assert!(
            listing.contains("Microsoft") && listing.contains("Boot"),
            "{listing}"
        );
        let info =
            String::from_utf8(common::run(Command::new("minfo").arg("-i").arg(&img))).unwrap();
        assert!(info.contains("hidden sectors: 2048"), "{info}");
        assert!(info.contains(&format!("sector size: {ss} bytes")), "{info}");
        assert!(
            info.contains(&format!("cluster size: {} sectors", cluster / ss)),
            "{info}"
        );
        assert!(info.contains("serial number: 5A3B1E00"), "{info}");

        // rehost's own reader: FAT32, the label, the files.
        let fat = Fat::open(d.clone(), ctx()).unwrap();
        assert_eq!(fat.fat_type(), Content::Fat32);
        assert_eq!(fat.label(), "SYSTEM");
        for (p, bytes) in &files {
            let mut got = Vec::new();
            fat.read_file(p, &mut got).unwrap();
            assert!(got == *bytes, "{p} ({ss}) differs through rehost");
        }
        eprintln!(
            "{ss}-byte sectors, {size} bytes: FAT32, {cluster}-byte clusters, fsck.vfat -n clean"
        );
    }
}

#[test]
fn sizes_fat32_cannot_hold_are_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    for (ss, size, why) in [
        (
            512u32,
            32u64 << 20,
            "FAT32 needs at least 65525 (about 33 MiB",
        ),
        (4096, 100 << 20, "FAT32 needs at least 65525 (about 257 MiB"),
        (1024 + 512, 100 << 20, "512 to 4096"),
    ] {
        let img = dir.path().join("small.img");
        let d = dev(&img, size);
        let e = format(d.clone(), &opts(ss), &ctx())
            .unwrap_err()
            .to_string();
        assert!(e.contains(why) && e.contains("esp.img"), "{e}");
        let mut head = vec![0u8; 1 << 20];
        d.read_at(0, &mut head).unwrap();
        assert!(head.iter().all(|b| *b == 0), "bytes written on a refusal");
    }
    let d = dev(&dir.path().join("l.img"), 100 << 20);
    let mut o = opts(512);
    o.label = "LABEL TOO LONG".into();
    assert!(format(d, &o, &ctx()).is_err());
}

/// Sizes around the smallest FAT32 volume (about 32.5 MiB at 512-byte sectors, 256.5 MiB
/// at 4 KiB): each is refused or formatted as FAT32 that fsck.vfat calls clean.
#[test]
fn sizes_around_the_smallest_fat32_volume() {
    if !common::have_tool("fsck.vfat") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut refused, mut made) = (0, 0);
    for (ss, base) in [(512u32, 32u64 << 20), (4096, 256 << 20)] {
        for k in 0..6u64 {
            let size = base + k * (ss as u64 * 64) + (k % 2) * ss as u64;
            let img = dir.path().join("edge.img");
            let d = dev(&img, size);
            match format(d.clone(), &opts(ss), &ctx()) {
                Err(e) => {
                    assert!(e.to_string().contains("FAT32 needs"), "{e}");
                    refused += 1;
                }
                Ok(f) => {
                    assert_eq!(f.cluster_size, ss, "{size}");
                    assert_eq!(Fat::open(d, ctx()).unwrap().fat_type(), Content::Fat32);
                    let out = Command::new("fsck.vfat")
                        .arg("-n")
                        .arg(&img)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{size}: {}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                    made += 1;
                }
            }
        }
    }
    assert!(refused > 0 && made > 0, "{refused} refused, {made} made");
}
