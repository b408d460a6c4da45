//! UEFI to BIOS, offline: x64 Windows on GPT disks (testdata/windows `ws2019-gpt` VHDX,
//! `win10-gpt` raw with a recovery partition after C:, both carrying a stand-in of Windows'
//! MBR boot code in their protective MBR) converted for the BIOS-only targets hyperv-gen1 and
//! azure-gen1, each on a copy:
//!
//! - `check` calls the firmware finding fixable; `fix --dry-run` lists the MBR, the boot
//!   files on the install's partition, MountedDevices and the boot sectors' hidden-sector
//!   counts, and writes nothing; `fix --in-place` writes what it listed, and `check` then
//!   says boots;
//! - outside readers read the result: `sfdisk` finds a valid DOS table (`-V`) with each
//!   partition at its GPT offset under its GPT number, typed 0x07, 0x27 or 0xEF, the
//!   install's active, the MSR gone, and writes byte for byte the same four entries (CHS
//!   fields included) from its own dump; `sgdisk -v` and `blkid` find no GPT, and the
//!   GPT's headers and arrays read as zeros; the ESP and the recovery volume are unchanged
//!   but for the hidden-sector count the report lists, every file of the Windows volume but
//!   the SYSTEM hive and the boot files the report lists reads the same (Sleuth Kit), and
//!   `bootmgr` is byte for byte the install's `\Windows\Boot\PCAT\bootmgr` (ntfs-3g); hivex
//!   reads the new `\Boot\BCD` as rehost does, its loader `winload.exe` and its devices the
//!   MBR partition by signature and offset; MountedDevices gives C: in MBR form;
//! - `rehost undo` restores the image's bytes.
//!
//! And the refusals, each with its reason: no boot code in the protective MBR, more than
//! four partitions to carry, one past GPT entry 4, one past 2 TiB, a BitLocker volume, a
//! dynamic disk. And the round trip BIOS to UEFI to BIOS of `ws2019-mbr` checks as booting, with
//! MountedDevices' volume names of C: following its letter both ways.

mod common;

#[allow(dead_code)]
#[path = "regf_edit/model.rs"]
mod model;

use common::firmware::{changes, copy, firmware, mounted_value, raw, read};
use common::json_report;
use model::Tree;
use rehost::formats::bcd::{self, Device, Element, PartitionRef};
use rehost::formats::hive::Hive;
use rehost_core::{Ctx, Layer};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

/// A partition as `sfdisk -J` gives it: (number, start, size, type, bootable).
type Part = (u32, u64, u64, String, bool);

/// `sfdisk -J` of a raw disk: its label and partitions.
fn partitions(disk: &Path) -> (String, Vec<Part>) {
    let j: Value =
        serde_json::from_slice(&common::run(Command::new("sfdisk").arg("-J").arg(disk))).unwrap();
    let t = &j["partitiontable"];
    let parts = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let n: String = node
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect();
            (
                n.chars().rev().collect::<String>().parse().unwrap(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap_or("").to_ascii_lowercase(),
                p["bootable"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    (t["label"].as_str().unwrap().to_string(), parts)
}

/// The MBR type a GPT partition of `gpt_type` becomes (profiles/mbr.toml), `None` when it
/// is dropped.
fn mbr_type(gpt_type: &str) -> Option<&'static str> {
    match gpt_type {
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7" => Some("7"),
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac" => Some("27"),
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" => Some("ef"),
        "e3c9e316-0b5c-4db8-817d-f92df00215ae" => None,
        other => panic!("a GPT type the fixtures do not have: {other}"),
    }
}

/// The whole story on a copy of `name` for `target`.
fn story(name: &str, target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let image = copy(name, dir.path());
    let sha = common::sha256_file(&image);

    let before = json_report(&["check", "--json", "-t", target], &image);
    assert_ne!(before["installs"][0]["verdict"], "boots", "{before}");
    let f = firmware(&before, "gpt-on-bios");
    assert_eq!(f["fixable"], true, "{name} {target}: {f}");
    let c = before["installs"][0]["volume"].as_u64().unwrap() as u32;

    let dry = json_report(&["fix", "--dry-run", "--json", "-t", target], &image);
    assert_eq!(common::sha256_file(&image), sha, "the dry run wrote");
    assert_eq!(dry["installs"][0]["after"], "boots", "{dry}");
    let planned = changes(&dry);
    assert_eq!(
        planned.iter().filter(|c| c.1 == "mbr").count(),
        1,
        "{planned:?}"
    );
    let files: BTreeSet<&str> = planned
        .iter()
        .filter(|c| c.1 == "put")
        .map(|c| c.2.as_str())
        .collect();
    for want in ["\\bootmgr", "\\Boot\\BCD"] {
        assert!(
            files.contains(want),
            "{name}: {want} not planned: {files:?}"
        );
    }
    let registry: Vec<_> = planned.iter().filter(|c| c.1 == "registry").collect();
    assert_eq!(
        registry.len(),
        1,
        "{name}: only MountedDevices: {planned:?}"
    );
    assert_eq!(registry[0].0, "mounted-devices");
    // The raw bytes are the boot sectors' hidden-sector counts, and nothing else.
    let bytes: Vec<&str> = planned
        .iter()
        .filter(|c| c.1 == "bytes")
        .map(|c| c.2.as_str())
        .collect();
    assert!(
        bytes
            .iter()
            .all(|b| b.starts_with("hidden sectors of volume")),
        "{bytes:?}"
    );

    let done = json_report(&["fix", "--in-place", "--json", "-t", target], &image);
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(
        changes(&done),
        planned,
        "the write is what the dry run listed"
    );
    let after = json_report(&["check", "--json", "-t", target], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{after}");

    let tools = [
        "qemu-img",
        "sfdisk",
        "sgdisk",
        "blkid",
        "fls",
        "icat",
        "ntfscat",
        "hivexregedit",
    ];
    if tools.iter().all(|t| common::have_tool(t)) {
        let (old_disk, disk) = (dir.path().join("before.raw"), dir.path().join("after.raw"));
        raw(&common::windows_image(name), &old_disk);
        raw(&image, &disk);
        let gpt_json: Value = serde_json::from_slice(&common::run(
            Command::new("sfdisk").arg("-J").arg(&old_disk),
        ))
        .unwrap();
        let old: Vec<(u32, u64, u64, String)> = gpt_json["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    i as u32 + 1,
                    p["start"].as_u64().unwrap(),
                    p["size"].as_u64().unwrap(),
                    p["type"].as_str().unwrap().to_ascii_lowercase(),
                )
            })
            .collect();
        let (label, new) = partitions(&disk);
        assert_eq!(label, "dos", "{name}");
        let want: Vec<Part> = old
            .iter()
            .filter_map(|(n, start, size, t)| {
                mbr_type(t).map(|m| (*n, *start, *size, m.to_string(), *n == c))
            })
            .collect();
        assert_eq!(new, want, "{name}: the MBR's partitions");
        let v = Command::new("sfdisk")
            .arg("-V")
            .arg(&disk)
            .output()
            .unwrap();
        assert!(
            v.status.success() && String::from_utf8_lossy(&v.stdout).contains("No errors detected"),
            "{name}: sfdisk -V: {}",
            String::from_utf8_lossy(&v.stdout)
        );
        // sfdisk writes the same entries, CHS fields and all, from its own dump.
        let dump = common::run(Command::new("sfdisk").arg("-d").arg(&disk));
        let theirs = dir.path().join("sfdisk.raw");
        std::fs::File::create(&theirs)
            .unwrap()
            .set_len(std::fs::metadata(&disk).unwrap().len())
            .unwrap();
        common::sfdisk(&[], &theirs, &String::from_utf8_lossy(&dump));
        assert_eq!(
            read(&disk, 440, 72),
            read(&theirs, 440, 72),
            "{name}: the signature and entries as sfdisk writes them"
        );
        assert_eq!(
            read(&disk, 0, 440),
            read(&old_disk, 0, 440),
            "{name}: the boot code kept"
        );
        let sg = Command::new("sgdisk")
            .arg("-v")
            .arg(&disk)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&sg.stdout);
        assert!(
            text.contains("Found invalid GPT and valid MBR"),
            "{name}: sgdisk -v finds a GPT: {text}"
        );
        let blkid = common::run(
            Command::new("blkid")
                .args(["-p", "-o", "export"])
                .arg(&disk),
        );
        assert!(
            String::from_utf8_lossy(&blkid).contains("PTTYPE=dos"),
            "{name}: blkid: {}",
            String::from_utf8_lossy(&blkid)
        );
        let size = std::fs::metadata(&disk).unwrap().len();
        for (at, len) in [(512, 512 + 16384), (size - 33 * 512, 33 * 512)] {
            assert!(
                read(&disk, at, len).iter().all(|b| *b == 0),
                "{name}: GPT bytes left at {at}"
            );
        }
        // The volumes other than the install's: the ESP byte for byte, the recovery
        // volume but for its boot sectors' hidden-sector counts.
        for p in new.iter().filter(|p| p.0 != c) {
            let (a, mut b) = (
                read(&old_disk, p.1 * 512, p.2 * 512),
                read(&disk, p.1 * 512, p.2 * 512),
            );
            if p.3 == "27" {
                let hidden = (p.1 as u32).to_le_bytes();
                assert_eq!(&b[0x1C..0x20], &hidden, "{name}: recovery's hidden sectors");
                let last = b.len() - 512;
                assert_eq!(&b[last + 0x1C..last + 0x20], &hidden, "and its backup's");
                b[0x1C..0x20].copy_from_slice(&a[0x1C..0x20]);
                b[last + 0x1C..last + 0x20].copy_from_slice(&a[last + 0x1C..last + 0x20]);
            }
            assert!(a == b, "{name}: volume {} changed", p.0);
        }
        // The Windows volume: the same files, and every file's bytes but the SYSTEM hive's
        // and the new boot files'.
        let cp = new.iter().find(|p| p.0 == c).unwrap();
        let (ta, tb) = (
            common::fls_tree(&old_disk, cp.1),
            common::fls_tree(&disk, cp.1),
        );
        let added: BTreeSet<&String> = tb.keys().filter(|k| !ta.contains_key(*k)).collect();
        for a in &added {
            let lower = a.to_ascii_lowercase();
            assert!(
                lower == "bootmgr" || lower.starts_with("boot"),
                "{name}: {a} added"
            );
        }
        let mut compared = 0;
        for (path, inode) in &ta {
            let hive = "windows/system32/config/system";
            if path.starts_with('$') || hive.starts_with(&path.to_ascii_lowercase()) {
                continue;
            }
            assert_eq!(tb.get(path), Some(inode), "{name}: {path}");
            assert!(
                common::icat(&old_disk, cp.1, &inode.to_string())
                    == common::icat(&disk, cp.1, &inode.to_string()),
                "{name}: {path} changed"
            );
            compared += 1;
        }
        assert!(compared > 20, "{name}: {compared} files compared");
        let c_file = dir.path().join("c.ntfs");
        std::fs::write(&c_file, read(&disk, cp.1 * 512, cp.2 * 512)).unwrap();
        let cat = |p: &str| common::run(Command::new("ntfscat").arg(&c_file).arg(p));
        assert_eq!(cat("/bootmgr"), cat("/Windows/Boot/PCAT/bootmgr"));
        let store = cat("/Boot/BCD");
        let bcd_file = dir.path().join("BCD");
        std::fs::write(&bcd_file, &store).unwrap();
        assert_eq!(
            Tree::from_rehost(&store, "").difference(&Tree::from_hivex(&bcd_file, "")),
            None,
            "{name}: hivex reads the store as rehost does"
        );
        let export = String::from_utf8_lossy(&common::run(
            Command::new("hivexregedit")
                .args(["--export", "--prefix", "BCD"])
                .arg(&bcd_file)
                .arg("\\"),
        ))
        .to_ascii_lowercase();
        // winload.exe as UTF-16 in hivex's hex export.
        let utf16: Vec<String> = "winload.exe"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            export
                .replace(['\\', '\n', ' '], "")
                .contains(&utf16.join(",")),
            "{name}: hivex finds no winload.exe"
        );
        let signature = u32::from_le_bytes(read(&disk, 440, 4).try_into().unwrap());
        let mbr = PartitionRef::Mbr {
            signature: format!("{signature:08x}"),
            offset: cp.1 * 512,
        };
        let h = Hive::parse(store.clone(), Ctx::new(name, Layer::Bcd)).unwrap();
        let objects = bcd::objects(&h).unwrap();
        let manager = objects.iter().find(|o| o.id == bcd::BOOTMGR).unwrap();
        let Some(Element::Object(loader_id)) = manager.element(0x23000003) else {
            panic!("{name}: no default loader");
        };
        let loader = objects.iter().find(|o| &o.id == loader_id).unwrap();
        assert_eq!(
            loader.element(0x12000002),
            Some(&Element::String("\\Windows\\system32\\winload.exe".into()))
        );
        for (o, code) in [
            (manager, 0x11000001),
            (loader, 0x11000001),
            (loader, 0x21000001),
        ] {
            assert_eq!(
                o.element(code),
                Some(&Element::Device(Device::Partition {
                    partition: mbr.clone()
                })),
                "{name}: {} {code:08x}",
                o.id
            );
        }
        if name == "ws2019-gpt" {
            // The old UEFI store's loader options, carried: nx OptOut, bootmenupolicy Legacy.
            assert_eq!(loader.element(0x25000020), Some(&Element::Integer(1)));
            assert_eq!(loader.element(0x250000c2), Some(&Element::Integer(0)));
        }
        let inspect = json_report(&["inspect", "--json"], &image);
        let letters = &inspect["installs"][0]["mounted_devices"];
        let cl = letters
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "\\DosDevices\\C:")
            .unwrap_or_else(|| panic!("no C: in {letters}"));
        assert_eq!(cl["data"]["style"], "mbr", "{cl}");
        assert_eq!(cl["data"]["signature"], format!("{signature:08x}"));
        assert_eq!(cl["data"]["offset"], cp.1 * 512);
    }
    let out = common::run(common::rehost_command().arg("undo").arg(&image));
    assert!(String::from_utf8_lossy(&out).contains("undone"));
    assert_eq!(common::sha256_file(&image), sha, "undo restores every byte");
}

#[test]
fn server_2019_on_a_vhdx_is_converted_for_hyper_v_and_azure_generation_1() {
    story("ws2019-gpt", "hyperv-gen1");
    story("ws2019-gpt", "azure-gen1");
}

#[test]
fn windows_10_on_a_raw_disk_with_a_recovery_partition_is_converted_for_generation_1() {
    story("win10-gpt", "hyperv-gen1");
    story("win10-gpt", "azure-gen1");
}

/// The firmware finding's reason for not fixing, on `image` for hyperv-gen1.
fn refusal(image: &Path) -> String {
    common::firmware::refusal(image, "hyperv-gen1", "gpt-on-bios")
}

/// The raw Windows 10 fixture copied into `dir` with `edit` applied to its bytes.
fn edited(dir: &Path, edit: impl FnOnce(&std::fs::File)) -> PathBuf {
    common::firmware::edited("win10-gpt", dir, edit)
}

#[test]
fn no_boot_code_a_bitlocker_volume_and_a_dynamic_disk_are_not_converted() {
    let dir = tempfile::tempdir().unwrap();
    let empty = edited(dir.path(), |f| f.write_all_at(&[0u8; 440], 0).unwrap());
    let sha = common::sha256_file(&empty);
    let why = refusal(&empty);
    assert!(
        why.contains("holds no boot code") && why.contains("first 440 bytes are zero"),
        "{why}"
    );
    let fix = common::rehost_command()
        .args(["fix", "--in-place", "-t", "hyperv-gen1"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(fix.status.code(), Some(3));
    assert_eq!(common::sha256_file(&empty), sha, "nothing written");
    std::fs::remove_file(&empty).unwrap();
    // The recovery volume (partition 4, sector 155648) signed as BitLocker's.
    let locked = edited(dir.path(), |f| {
        f.write_all_at(b"-FVE-FS-", 155648 * 512 + 3).unwrap()
    });
    let why = refusal(&locked);
    assert!(why.contains("volume 4 is BitLocker-encrypted"), "{why}");
    std::fs::remove_file(&locked).unwrap();
    // The recovery partition typed as a dynamic disk's data partition (LDM data, 4201).
    if common::have_tool("sgdisk") {
        let dynamic = copy("win10-gpt", dir.path());
        common::run(Command::new("sgdisk").args(["-t", "4:4201"]).arg(&dynamic));
        let why = refusal(&dynamic);
        assert!(
            why.contains("partition 4 belongs to a dynamic disk"),
            "{why}"
        );
    }
}

#[test]
fn more_than_four_partitions_one_past_entry_4_and_one_past_2_tib_are_not_converted() {
    if !common::have_tool("sgdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sgdisk = |image: &Path, args: &[&str]| {
        common::run(Command::new("sgdisk").args(args).arg(image));
    };
    // Three more basic data partitions after the recovery partition: five to carry.
    let five = copy("win10-gpt", dir.path());
    sgdisk(
        &five,
        &[
            "-n",
            "5:172032:+3M",
            "-t",
            "5:0700",
            "-n",
            "6:0:+3M",
            "-t",
            "6:0700",
            "-n",
            "7:0:+3M",
            "-t",
            "7:0700",
        ],
    );
    let why = refusal(&five);
    assert!(
        why.contains("5 partitions must carry over (GPT entries 3, 4, 5, 6, 7)")
            && why.contains("four entries"),
        "{why}"
    );
    std::fs::remove_file(&five).unwrap();
    // One more: four to carry, but one is GPT entry 5.
    let fifth = copy("win10-gpt", dir.path());
    sgdisk(&fifth, &["-n", "5:172032:+3M", "-t", "5:0700"]);
    let why = refusal(&fifth);
    assert!(
        why.contains("partition 5 must carry over and is GPT entry 5"),
        "{why}"
    );
    std::fs::remove_file(&fifth).unwrap();
    // The recovery partition moved past 2 TiB on a sparse disk of 2 TiB and 64 MiB.
    let big = copy("win10-gpt", dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.set_len((2 << 40) + 64 * MIB).unwrap();
    drop(f);
    let start = ((2u64 << 40) / 512 + 2048).to_string();
    sgdisk(
        &big,
        &[
            "-e",
            "-d",
            "4",
            "-n",
            &format!("4:{start}:+8M"),
            "-t",
            "4:2700",
        ],
    );
    let why = refusal(&big);
    assert!(
        why.contains("partition 4 ends at sector")
            && why.contains("32-bit sector numbers reach (2 TiB with 512-byte sectors)"),
        "{why}"
    );
}

#[test]
fn firmware_bios_converts_for_a_target_that_offers_both() {
    let dir = tempfile::tempdir().unwrap();
    common::firmware::converts_when_the_target_offers_both(
        "win10-gpt",
        "bios",
        "gpt-on-bios",
        dir.path(),
    );
}

#[test]
fn bios_to_uefi_and_back_to_bios_checks_as_booting() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy("ws2019-mbr", dir.path());
    let sha = common::sha256_file(&image);
    // Windows' MBR code, as a disk Windows set up for BIOS has it: the stand-in the GPT
    // fixtures carry (sfdisk left the fixture's zero).
    let code = read(&common::windows_image("win10-gpt"), 0, 440);
    assert!(code.iter().any(|b| *b != 0));
    let disk = dir.path().join("ws2019-mbr.raw");
    if !common::have_tool("qemu-img") {
        return;
    }
    raw(&image, &disk);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap()
        .write_all_at(&code, 0)
        .unwrap();
    let raw_sha = common::sha256_file(&disk);
    // Two volume names in MountedDevices: one of C: (as its letter's value), one of a
    // volume on another disk. The first follows C:'s form both ways, so that the volume
    // keeps its name; the second is left as it is.
    let c = mounted_value(&disk, "\\DosDevices\\C:");
    assert_eq!(c.len(), 12, "C: in MBR form first");
    let mine = "\\??\\Volume{11111111-2222-3333-4444-555555555555}";
    let other = "\\??\\Volume{66666666-7777-8888-9999-000000000000}";
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let elsewhere = [0xde, 0xad, 0xbe, 0xef, 0, 0, 0x10, 0, 0, 0, 0, 0];
    for (name, data) in [(mine, hex(&c)), (other, hex(&elsewhere))] {
        common::run(
            common::rehost_command()
                .args(["reg", "set", "--in-place", "--type", "REG_BINARY"])
                .args(["--value", name, "--data", &data])
                .arg(&disk)
                .arg("HKLM\\SYSTEM\\MountedDevices"),
        );
    }
    let names_follow = |form: usize| {
        let c = mounted_value(&disk, "\\DosDevices\\C:");
        assert_eq!(c.len(), form, "C: {c:02x?}");
        assert_eq!(mounted_value(&disk, mine), c, "the volume name of C:");
        assert_eq!(mounted_value(&disk, other), elsewhere, "another disk's");
    };
    let to_uefi = json_report(&["fix", "--in-place", "--json", "-t", "hyperv-gen2"], &disk);
    assert_eq!(to_uefi["committed"], true, "{to_uefi}");
    let uefi = json_report(&["check", "--json", "-t", "hyperv-gen2"], &disk);
    assert_eq!(uefi["installs"][0]["verdict"], "boots", "{uefi}");
    names_follow(24);
    let back = json_report(&["check", "--json", "-t", "hyperv-gen1"], &disk);
    assert_eq!(firmware(&back, "gpt-on-bios")["fixable"], true, "{back}");
    let to_bios = json_report(&["fix", "--in-place", "--json", "-t", "hyperv-gen1"], &disk);
    assert_eq!(to_bios["committed"], true, "{to_bios}");
    let bios = json_report(&["check", "--json", "-t", "hyperv-gen1"], &disk);
    assert_eq!(bios["installs"][0]["verdict"], "boots", "{bios}");
    names_follow(12);
    if common::have_tool("sfdisk") {
        // C: active at 1 MiB, System Reserved after it, the ESP the first conversion added.
        let (label, parts) = partitions(&disk);
        assert_eq!(label, "dos");
        let shape: Vec<(u32, u64, String, bool)> =
            parts.into_iter().map(|p| (p.0, p.1, p.3, p.4)).collect();
        assert_eq!(
            shape,
            [
                (1, 2048, "7".to_string(), true),
                (2, 83968, "7".to_string(), false),
                (3, 100352, "ef".to_string(), false)
            ]
        );
        assert_eq!(read(&disk, 0, 440), code, "the boot code kept both ways");
    }
    let out = common::run(common::rehost_command().arg("undo").arg(&disk));
    assert!(String::from_utf8_lossy(&out).contains("undone"), "{out:?}");
    assert_eq!(
        common::sha256_file(&disk),
        raw_sha,
        "undo restores every commit (the two volume names set, both conversions)"
    );
    assert_eq!(common::sha256_file(&image), sha);
}
