//! A real BIOS starts a disk converted from UEFI to BIOS: QEMU (i440fx, TCG) with SeaBIOS
//! (Debian's seabios) boots the image from its IDE disk and runs the boot code in sector 0:
//! the stand-in of Windows' MBR code the GPT fixtures carry in their protective MBR
//! (`scripts/fixtures/mbr-standin.S`). Like Windows' code, it finds the active entry of the
//! partition table and reads that partition's first sector through the BIOS; it prints on
//! the serial port which entry it found and whether that sector is an NTFS boot sector
//! whose hidden-sector count is the partition's start, then stops QEMU (isa-debug-exit).
//!
//! Before the conversion the BIOS finds the GPT's protective entry, not active: "no active
//! entry". After `fix -t hyperv-gen1` (raw) or `-t azure-gen1` (VHDX, which QEMU reads
//! itself): "active entry 3, NTFS, hidden sectors right". With the boot sector's old count
//! written back, the stand-in says "wrong": it reads what the BIOS reads. The images are
//! opened with `snapshot=on`; `REHOST_OVMF_TIMEOUT` (seconds, default 60) bounds each run.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// SeaBIOS as Debian's seabios package installs it.
const SEABIOS: &str = "/usr/share/seabios/bios-256k.bin";
/// What the stand-in prints first.
const LINE: &str = "rehost MBR stand-in: ";

/// Whether QEMU and SeaBIOS are here (outside CI a missing one is a recorded skip).
fn available() -> bool {
    if !common::have_tool("qemu-system-x86_64") {
        return false;
    }
    if !Path::new(SEABIOS).is_file() {
        if common::in_ci() {
            panic!("SeaBIOS is missing in CI ({SEABIOS}): .ci/run must install seabios");
        }
        eprintln!("SKIP: SeaBIOS not installed ({SEABIOS}); this check did not run");
        common::record_skip("seabios");
        return false;
    }
    true
}

/// Boots `image` (of `format`) under SeaBIOS and returns the stand-in's line.
fn boot(image: &Path, format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.txt");
    let limit = std::env::var("REHOST_OVMF_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-machine", "pc", "-accel", "tcg", "-m", "64"])
        .args([
            "-display",
            "none",
            "-vga",
            "none",
            "-nodefaults",
            "-no-reboot",
        ])
        .args(["-monitor", "none", "-bios", SEABIOS])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-drive")
        .arg(format!(
            "file={},format={format},if=ide,snapshot=on",
            image.display().to_string().replace(',', ",,")
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(LINE))
        .map(str::to_string)
        .unwrap_or_else(|| {
            panic!(
                "no line from the stand-in in {:?}: {text:?}",
                started.elapsed()
            )
        })
}

/// The fixture `name` copied into `dir`.
fn copy(name: &str, dir: &Path) -> PathBuf {
    let src = common::windows_image(name);
    let dst = dir.join(src.file_name().unwrap());
    std::fs::copy(&src, &dst).unwrap();
    dst
}

fn fix(image: &Path, target: &str) {
    let out = common::rehost_command()
        .args(["fix", "--in-place", "-t", target])
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn seabios_runs_the_boot_code_and_finds_the_active_ntfs_partition() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = copy("win10-gpt", dir.path());
    assert_eq!(boot(&raw, "raw"), "no active entry", "the GPT as it was");
    fix(&raw, "hyperv-gen1");
    assert_eq!(
        boot(&raw, "raw"),
        "active entry 3, NTFS, hidden sectors right"
    );
    // C: at sector 73728: its boot sector's count set back to what mkntfs wrote.
    let f = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
    f.write_all_at(&2048u32.to_le_bytes(), 73728 * 512 + 0x1C)
        .unwrap();
    assert_eq!(
        boot(&raw, "raw"),
        "active entry 3, NTFS, hidden sectors wrong"
    );

    let vhdx = copy("ws2019-gpt", dir.path());
    fix(&vhdx, "azure-gen1");
    assert_eq!(
        boot(&vhdx, "vhdx"),
        "active entry 3, NTFS, hidden sectors right"
    );
}
