//! The harness `common::ovmf` proved on GPT disks built here with rehost's own GPT writer
//! and FAT32 formatter: OVMF under QEMU starts the stand-in boot manager from the ESP both
//! by the removable-media path and by Windows' boot entry, says so on the serial port, and
//! finds nothing on an ESP without the files; the same disk in rehost's VHD and VHDX boots
//! too. Each run's time is printed (`--nocapture`).

mod common;

use common::ovmf::{self, End, Entry, Marker};
use rehost::disk::Ids;
use rehost::fs::fat::format::{format, Options};
use rehost::fs::fat::write::FatWriter;
use rehost::volume::gpt_write::{build, Partition, Table};
use rehost::{Ctx, Layer, Result};
use rehost_core::io::{ReadAt, WriteAt};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
const BASIC: &str = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
/// The disk: 1 MiB of table, a 100 MiB ESP, 27 MiB of basic data.
const DISK: u64 = 128 << 20;
const ESP_FIRST: u64 = 2048;
const ESP_SECTORS: u64 = 100 << 11;

/// A partition of a file as a device, read and written in place.
struct Slice {
    file: std::fs::File,
    base: u64,
    len: u64,
}

impl ReadAt for Slice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, self.base + offset)
            .map_err(|e| Ctx::new("disk.raw", Layer::Raw).io(self.base + offset, e))
    }
    fn size(&self) -> u64 {
        self.len
    }
}

impl WriteAt for Slice {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, self.base + offset)
            .map_err(|e| Ctx::new("disk.raw", Layer::Raw).io(self.base + offset, e))
    }
}

fn part(first: u64, last: u64, kind: &str, name: &str) -> Partition {
    Partition {
        first_lba: first,
        last_lba: last,
        type_guid: kind.parse().unwrap(),
        unique_guid: None,
        attributes: 0,
        name: name.into(),
    }
}

/// A sparse raw disk at `path`: a GPT (ESP, basic data) and a FAT32 ESP holding `files`
/// (path on the ESP, bytes). Returns the ESP's unique GUID as text.
fn disk(path: &Path, files: &[(&str, &[u8])]) -> String {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    file.set_len(DISK).unwrap();
    let table = Table {
        disk_size: DISK,
        sector_size: 512,
        disk_guid: None,
        old_mbr: None,
        partitions: vec![
            part(
                ESP_FIRST,
                ESP_FIRST + ESP_SECTORS - 1,
                ESP,
                "EFI system partition",
            ),
            part(
                ESP_FIRST + ESP_SECTORS,
                DISK / 512 - 34,
                BASIC,
                "Basic data partition",
            ),
        ],
    };
    let ctx = Ctx::new("disk.raw", Layer::Gpt);
    let sectors = build(&table, &mut Ids::new(Some(16)), &ctx).unwrap();
    for (at, bytes) in &sectors.writes {
        file.write_all_at(bytes, *at).unwrap();
    }
    let esp = Arc::new(Slice {
        file,
        base: ESP_FIRST * 512,
        len: ESP_SECTORS * 512,
    });
    let ctx = Ctx::new("disk.raw", Layer::Fat);
    let opts = Options {
        sector_size: 512,
        label: "SYSTEM".into(),
        volume_id: 0x1e00_5a3b,
        hidden_sectors: ESP_FIRST as u32,
    };
    format(esp.clone(), &opts, &ctx).unwrap();
    let mut w = FatWriter::open(esp, ctx).unwrap();
    for (p, bytes) in files {
        w.put(p, bytes).unwrap();
    }
    drop(w);
    sectors.unique_guids[0].to_string().to_uppercase()
}

fn standin() -> Vec<u8> {
    std::fs::read(ovmf::standin().unwrap()).unwrap()
}

fn say(what: &str, run: &ovmf::Run) {
    eprintln!(
        "{what}: {:?} -> {:?}, {:?}, {:.1} s",
        run.entry,
        run.marker,
        run.end,
        run.elapsed.as_secs_f64()
    );
}

#[test]
fn the_firmware_starts_the_standin_from_both_paths() {
    if !ovmf::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    let bytes = standin();
    let guid = disk(
        &img,
        &[
            ("EFI/Microsoft/Boot/bootmgfw.efi", &bytes),
            ("EFI/Boot/bootx64.efi", &bytes),
        ],
    );
    let before = common::sha256_file(&img);
    for entry in [Entry::Fallback, Entry::Bcd] {
        let run = ovmf::boot(&img, entry).unwrap();
        say("both files", &run);
        let want = match entry {
            Entry::Fallback => Marker::Fallback,
            Entry::Bcd => Marker::Bcd,
        };
        assert_eq!(run.marker, Some(want), "{}", run.serial);
        assert_eq!(run.end, End::Exited(Some(0)), "{}", run.serial);
        if entry == Entry::Bcd {
            // OVMF names the entry it starts, with the partition it resolved.
            let line = format!(
                "starting Boot0100 \"Windows Boot Manager\" from HD(1,GPT,{guid},0x800,0x32000)"
            );
            assert!(run.serial.contains(&line), "{line} in\n{}", run.serial);
        }
    }
    assert_eq!(common::sha256_file(&img), before, "the image was written");
}

#[test]
fn the_containers_rehost_writes_boot_too() {
    if !ovmf::available() {
        return;
    }
    // The same disk as rehost's dynamic VHD and VHDX: the harness hands qemu the image's
    // own format, and the firmware finds the ESP through it.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    let bytes = standin();
    disk(
        &img,
        &[
            ("EFI/Microsoft/Boot/bootmgfw.efi", &bytes),
            ("EFI/Boot/bootx64.efi", &bytes),
        ],
    );
    for (format, ext) in [("vhd", "vhd"), ("vhdx", "vhdx")] {
        let out = dir.path().join(format!("disk.{ext}"));
        common::run(
            common::rehost_command()
                .arg("convert")
                .arg(&img)
                .arg(&out)
                .args(["--output-format", format]),
        );
        let run = ovmf::boot(&out, Entry::Bcd).unwrap();
        say(format, &run);
        assert_eq!(run.marker, Some(Marker::Bcd), "{}", run.serial);
    }
}

#[test]
fn the_entry_needs_the_file_where_it_points() {
    if !ovmf::available() {
        return;
    }
    // Only the fallback copy: Windows' entry cannot be loaded, the firmware drops it and
    // starts the removable-media path instead.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    disk(&img, &[("EFI/Boot/bootx64.efi", &standin())]);
    let run = ovmf::boot(&img, Entry::Bcd).unwrap();
    say("bootx64 only", &run);
    assert_eq!(run.marker, Some(Marker::Fallback), "{}", run.serial);
}

#[test]
fn an_empty_esp_boots_nothing() {
    if !ovmf::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    disk(&img, &[]);
    for entry in [Entry::Fallback, Entry::Bcd] {
        let run = ovmf::boot(&img, entry).unwrap();
        say("empty ESP", &run);
        assert_eq!(run.marker, None, "{}", run.serial);
        assert!(
            matches!(run.end, End::Shell | End::NoBootOption),
            "{:?}: {}",
            run.end,
            run.serial
        );
    }
}

#[test]
fn the_harness_refuses_a_disk_without_an_esp() {
    if !ovmf::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("blank.raw");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let err = ovmf::boot(&img, Entry::Bcd).unwrap_err();
    assert!(err.contains("no GPT header"), "{err}");
}

/// Issue 16's acceptance, end to end: Server 2019 on an MBR disk (a VHDX), its own boot
/// manager the stand-in (put into `\Windows\Boot\EFI` as the install would hold the real
/// one), converted by `rehost fix --target hyperv-gen2 --in-place`; OVMF finds the ESP and
/// starts the loader where rehost put it, both by the fallback path and by the entry.
#[test]
fn an_install_rehost_moved_to_uefi_is_started_by_the_firmware_both_ways() {
    if !ovmf::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = common::windows_image("ws2019-mbr");
    let img = dir.path().join("ws2019-mbr.vhdx");
    std::fs::copy(&src, &img).unwrap();
    let standin = ovmf::standin().unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = common::rehost_command().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "rehost {args:?}: {out:?}");
    };
    run(&[
        "put".as_ref(),
        "--in-place".as_ref(),
        img.as_os_str(),
        standin.as_os_str(),
        r"\Windows\Boot\EFI\bootmgfw.efi".as_ref(),
    ]);
    // Before: an MBR disk, which OVMF cannot start from (no GPT, no ESP).
    assert!(ovmf::boots(&img).is_err(), "an MBR disk has no ESP to boot");
    run(&[
        "fix".as_ref(),
        "--target".as_ref(),
        "hyperv-gen2".as_ref(),
        "--in-place".as_ref(),
        img.as_os_str(),
    ]);
    assert_eq!(
        ovmf::boots(&img).unwrap(),
        [Marker::Fallback, Marker::Bcd],
        "the stand-in started from \\EFI\\Boot\\bootx64.efi and from the entry's path"
    );
}
