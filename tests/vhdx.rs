//! VHDX containers against outside readers: qemu-img for fixed and dynamic disks and for log
//! replay, libvhdi for differencing chains; crafted logs, chains and damaged files.
//!
//! The crafted files come from `common::vhdx_builder` (headers at 64/128 KiB, the second
//! current; log at 1 MiB, 1 MiB long; BAT at 2 MiB; metadata after the BAT; blocks after
//! the metadata). The helpers here edit such files: headers, locators, logs.

mod common;

#[path = "vhdx/chain.rs"]
mod chain;
#[path = "vhdx/damaged.rs"]
mod damaged;
#[path = "vhdx/log.rs"]
mod log;

use common::vhdx_builder::{Block, VhdxSpec};
use rehost::disk::{self, ReadAt, Subformat};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MB: usize = 1 << 20;
/// The current header of a built file.
pub const CURRENT_HEADER: usize = 128 * 1024;

pub fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
pub fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
pub fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// Recomputes the CRC-32C of the structure of `len` bytes at `at` (checksum at +4).
pub fn reseal(f: &mut [u8], at: usize, len: usize) {
    let s = &mut f[at..at + len];
    s[4..8].fill(0);
    let c = crc32c::crc32c(s);
    s[4..8].copy_from_slice(&c.to_le_bytes());
}

/// Writes `bytes` as `name` in `dir`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Opens without the block cache, so that every read reaches the container.
pub fn uncached(p: &Path) -> rehost::Result<disk::Disk> {
    disk::open(
        p,
        &disk::OpenOptions {
            cache_blocks: 0,
            map_raw: true,
            ..Default::default()
        },
    )
}

/// The virtual disk as qemu-img reads it.
pub fn qemu_raw(image: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("qemu.raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "vhdx", "-O", "raw"])
            .arg(image)
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

/// A dynamic disk of `blocks` fully present 1 MiB blocks (contents `pattern(MB, seed + i)`).
pub fn dynamic(blocks: u64, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let spec = VhdxSpec {
        virtual_size: blocks * MB as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: (0..blocks)
            .map(|i| Block {
                index: i,
                state: 6,
                data: Some(common::pattern(MB, seed + i)),
            })
            .collect(),
        bitmap: None,
        data_write_guid: "0a0a0a0a-0b0b-0c0c-0d0d-0e0e0e0e0e0e".into(),
        parent: None,
    };
    let model = (0..blocks)
        .flat_map(|i| common::pattern(MB, seed + i))
        .collect();
    (spec.build(), model)
}

/// What libvhdi says of an image: (identifier, i.e. the DataWriteGuid; media size; bytes
/// per sector; parent identifier, empty without a parent).
pub fn libvhdi_facts(image: &Path) -> (String, u64, u32, String) {
    let script = r#"
import sys, pyvhdi
f = pyvhdi.file()
f.open(sys.argv[1])
parent = f.parent_identifier if f.disk_type == 4 else ""
print(f.identifier, f.media_size, f.bytes_per_sector, parent or "-")
"#;
    let out = common::run(Command::new("python3").args(["-c", script]).arg(image));
    let text = String::from_utf8(out).unwrap();
    let f: Vec<&str> = text.split_whitespace().collect();
    let parent = if f[3] == "-" {
        String::new()
    } else {
        f[3].to_string()
    };
    (
        f[0].to_string(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        parent,
    )
}

/// Reads the whole device in pieces of changing odd sizes at odd offsets.
pub fn read_in_odd_pieces(d: &dyn ReadAt) -> Vec<u8> {
    let size = d.size() as usize;
    let mut out = vec![0u8; size];
    let (mut pos, mut step) = (0usize, 333usize);
    while pos < size {
        let n = step.min(size - pos);
        d.read_at(pos as u64, &mut out[pos..pos + n]).unwrap();
        pos += n;
        step = (step * 5 + 4097) % 900_001 + 1;
    }
    out
}

#[test]
fn qemu_made_images_read_back_exactly() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Not a multiple of any block size; pattern() leaves zeroed 64 KiB stretches.
    let raw = common::pattern(5 * MB + 3 * 512, 11);
    let raw_path = write(dir.path(), "d.raw", &raw);
    for (opts, sub, block) in [
        ("subformat=fixed", Subformat::Fixed, None),
        (
            "subformat=dynamic,block_size=1M",
            Subformat::Dynamic,
            Some(MB),
        ),
        (
            "subformat=dynamic,block_size=32M",
            Subformat::Dynamic,
            Some(32 * MB),
        ),
        (
            "subformat=dynamic,block_size=1M,log_size=2M",
            Subformat::Dynamic,
            Some(MB),
        ),
        (
            "subformat=fixed,block_size=8M,log_size=1M",
            Subformat::Fixed,
            Some(8 * MB),
        ),
    ] {
        let vhdx = dir.path().join("d.vhdx");
        common::run(
            Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "vhdx", "-o", opts])
                .arg(&raw_path)
                .arg(&vhdx),
        );
        let before = common::sha256_file(&vhdx);
        let d = disk::open(&vhdx, &Default::default()).unwrap();
        let info = d.info();
        assert_eq!(info.format, disk::Format::Vhdx);
        assert_eq!(info.subformat, sub, "{opts}");
        assert_eq!(info.virtual_size, raw.len() as u64, "{opts}");
        assert_eq!(info.logical_sector_size, 512, "{opts}");
        assert!([512, 4096].contains(&info.physical_sector_size), "{opts}");
        if let Some(b) = block {
            assert_eq!(info.block_size, Some(b as u32), "{opts}");
        }
        assert!(
            info.disk_id.as_ref().is_some_and(|g| g.len() == 36),
            "{opts}"
        );
        assert!(info.notes.is_empty(), "{opts}: {:?}", info.notes);
        if common::have_python_module("pyvhdi") {
            let (id, size, sector, _) = libvhdi_facts(&vhdx);
            assert_eq!(info.data_write_guid.as_deref(), Some(id.as_str()), "{opts}");
            assert_eq!(
                (info.virtual_size, info.logical_sector_size),
                (size, sector)
            );
        }
        let ours = common::read_all(&d);
        common::assert_same_bytes(&ours, &raw, &format!("{opts} against the source"));
        common::assert_same_bytes(
            &ours,
            &qemu_raw(&vhdx, dir.path()),
            &format!("{opts} against qemu-img"),
        );
        let u = uncached(&vhdx).unwrap();
        common::assert_same_bytes(
            &read_in_odd_pieces(&u),
            &raw,
            &format!("{opts} in odd pieces"),
        );
        assert_eq!(
            common::sha256_file(&vhdx),
            before,
            "{opts}: the image changed"
        );
    }
}

/// qemu-img info names the same virtual size and a clean image.
#[test]
fn qemu_check_agrees_on_crafted_images() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (f, model) = dynamic(3, 40);
    let p = write(dir.path(), "crafted.vhdx", &f);
    common::run(
        Command::new("qemu-img")
            .args(["check", "-f", "vhdx"])
            .arg(&p),
    );
    let d = disk::open(&p, &Default::default()).unwrap();
    assert_eq!(common::read_all(&d), model);
    common::assert_same_bytes(
        &model,
        &qemu_raw(&p, dir.path()),
        "crafted against qemu-img",
    );
}

/// A multi-MiB read over blocks stored back to back is one read of the host file.
#[test]
fn contiguous_blocks_are_one_host_read() {
    let dir = tempfile::tempdir().unwrap();
    let (f, model) = dynamic(6, 50);
    let p = write(dir.path(), "runs.vhdx", &f);
    let d = uncached(&p).unwrap();
    let before = d.stats().reads();
    let mut buf = vec![0u8; 5 * MB + 1000];
    d.read_at(512 * 1024 + 7, &mut buf).unwrap();
    assert_eq!(
        d.stats().reads() - before,
        1,
        "reads for one contiguous run"
    );
    assert_eq!(buf, model[512 * 1024 + 7..512 * 1024 + 7 + buf.len()]);
    // A hole in the middle (block 3 not present): two runs of the file and a fill.
    let mut holed = f.clone();
    let bat = 2 * MB;
    put64(&mut holed, bat + 3 * 8, 0);
    let p = write(dir.path(), "holed.vhdx", &holed);
    let d = uncached(&p).unwrap();
    let before = d.stats().reads();
    let mut buf = vec![0u8; 6 * MB];
    d.read_at(0, &mut buf).unwrap();
    assert_eq!(d.stats().reads() - before, 2, "reads around one hole");
    assert_eq!(buf[..3 * MB], model[..3 * MB]);
    assert!(buf[3 * MB..4 * MB].iter().all(|&b| b == 0));
    assert_eq!(buf[4 * MB..], model[4 * MB..]);
}
