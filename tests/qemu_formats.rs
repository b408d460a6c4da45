//! VMDK and qcow2 against qemu-img: every subformat and feature qemu-img makes, converted
//! from one source disk, must read through rehost's container interface as the bytes
//! `qemu-img convert -O raw` writes (SHA-256 of the whole disk), and a Windows image
//! converted to them must give the same `inspect` and `check` reports as the original.
//! Damaged and hostile files give errors naming the image and the layer, never panics.

mod common;

#[path = "qemu_formats/damaged.rs"]
mod damaged;
#[path = "qemu_formats/qcow2.rs"]
mod qcow2;
#[path = "qemu_formats/reports.rs"]
mod reports;
#[path = "qemu_formats/vmdk.rs"]
mod vmdk;

use rehost::disk::{self, ReadAt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs qemu-img with `args` (panics, printing its output, when it fails).
pub fn qemu_img(args: &[&str]) {
    common::run(Command::new("qemu-img").args(args));
}

/// Runs qemu-io's `commands` on `image` of `format`.
pub fn qemu_io(image: &Path, format: &str, commands: &[&str]) {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", format]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    common::run(cmd.arg(image));
}

/// The source disk: the sample's Windows volume, then pattern data cut by runs of zeros, to
/// an odd size (not a whole grain or cluster), so that allocated, zero and partial units
/// are all read.
pub fn source(dir: &Path) -> PathBuf {
    let sample = common::root().join("testdata/sample/sample.vhd");
    let raw = dir.join("source.raw");
    qemu_img(&[
        "convert",
        "-f",
        "vpc",
        "-O",
        "raw",
        sample.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    let mut bytes = std::fs::read(&raw).unwrap();
    let mut rng = common::Rng(0x5eed);
    for i in 0..40 {
        let len = 4096 * (1 + rng.below(40) as usize);
        if i % 3 == 0 {
            bytes.extend(std::iter::repeat_n(0u8, len));
        } else {
            bytes.extend(common::pattern(len, i));
        }
    }
    bytes.resize(bytes.len().div_ceil(512) * 512 + 7 * 512, 0xa5);
    std::fs::write(&raw, &bytes).unwrap();
    raw
}

/// SHA-256 of the disk as qemu-img reads it.
pub fn qemu_sha(image: &Path, format: &str, dir: &Path) -> String {
    let out = dir.join("qemu-read.raw");
    let _ = std::fs::remove_file(&out);
    qemu_img(&[
        "convert",
        "-f",
        format,
        "-O",
        "raw",
        image.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let sha = common::sha256_file(&out);
    std::fs::remove_file(&out).unwrap();
    sha
}

/// SHA-256 of the disk as rehost reads it: opened by content, read whole in 1 MiB pieces.
pub fn our_sha(image: &Path) -> String {
    use sha2::{Digest, Sha256};
    let d = disk::open(image, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < d.size() {
        let n = (d.size() - pos).min(buf.len() as u64) as usize;
        d.read_at(pos, &mut buf[..n])
            .unwrap_or_else(|e| panic!("{e}"));
        h.update(&buf[..n]);
        pos += n as u64;
    }
    format!("{:x}", h.finalize())
}

/// Reads in odd-sized pieces at odd offsets, uncached, crossing sector, grain and cluster
/// boundaries: the same bytes as one whole read.
pub fn read_in_pieces(image: &Path) -> Vec<u8> {
    let opts = disk::OpenOptions {
        cache_blocks: 0,
        ..Default::default()
    };
    let d = disk::open(image, &opts).unwrap();
    let mut out = vec![0u8; d.size() as usize];
    let (mut pos, mut step) = (0usize, 1usize);
    while pos < out.len() {
        let n = step.min(out.len() - pos);
        d.read_at(pos as u64, &mut out[pos..pos + n]).unwrap();
        pos += n;
        step = step * 7 % 200_003 + 509;
    }
    out
}

/// Asserts that rehost reads `image` as qemu-img does, and says so with the digest.
pub fn same_as_qemu(image: &Path, format: &str, dir: &Path) {
    let theirs = qemu_sha(image, format, dir);
    let ours = our_sha(image);
    assert_eq!(
        ours,
        theirs,
        "{}: rehost and qemu-img read different disks",
        image.display()
    );
    eprintln!(
        "{}: sha256 {ours} (rehost = qemu-img)",
        image.file_name().unwrap().to_string_lossy()
    );
}

/// Whether qemu-img can make qcow2 images with `option` (older releases lack some).
pub fn qcow2_option(option: &str) -> bool {
    let out = Command::new("qemu-img")
        .args(["create", "-f", "qcow2", "-o", "help"])
        .output()
        .unwrap();
    let ok = String::from_utf8_lossy(&out.stdout).contains(option);
    if !ok {
        eprintln!("SKIP: this qemu-img cannot make qcow2 images with {option}");
    }
    ok
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}
