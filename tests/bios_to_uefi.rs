//! BIOS to UEFI, offline: x64 Windows on MBR disks (testdata/windows `ws2019-mbr` VHDX,
//! `ws2016-mbr` VHD, `win10-mbr` raw) converted for the UEFI-only targets hyperv-gen2 and
//! azure-gen2, each on a copy:
//!
//! - `check` calls the firmware finding fixable; `fix --dry-run` lists the GPT, the ESP's
//!   files and MountedDevices, and writes nothing; `fix --in-place` writes what it listed,
//!   and `check` then says boots;
//! - outside readers read the result: `sgdisk -v` finds no problem, the backup header is
//!   the disk's last sector, `sfdisk` reads the partitions at their old offsets and the
//!   ESP; System Reserved's bytes are unchanged and every file of the Windows volume but
//!   the SYSTEM hive the report lists reads the same (Sleuth Kit's `fls` and `icat`);
//!   `fsck.vfat -n` is clean on the ESP, whose bootmgfw.efi and bootx64.efi are byte for
//!   byte the install's (`mtype` against `ntfscat`); the new store's objects and elements
//!   are found in the real UEFI store Windows 10 wrote (`testdata/hives/regipy/BCD.xz`),
//!   but for the options of the old store's loader entry it carries (ws2019-mbr sets
//!   detecthal and nx OptOut), its devices naming the GPT partitions sfdisk reads; MountedDevices gives C: in GPT
//!   form (`DMIO:ID:` and the partition GUID); hivex reads the store as rehost does;
//! - `rehost undo` restores the image's bytes and its size.
//!
//! And the refusals, each with its reason: an x86 install, a version the target's UEFI does
//! not start, a dynamic disk, a BitLocker volume, no room for the GPT and a container that
//! cannot grow.

mod common;

#[allow(dead_code)]
#[path = "regf_edit/model.rs"]
mod model;

use common::firmware::{changes, copy, firmware, raw};
use common::json_report;
use model::Tree;
use rehost::formats::bcd::{self, Device, Element, Object, PartitionRef};
use rehost::formats::hive::Hive;
use rehost_core::{Ctx, Layer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

/// `sfdisk -J` of a raw disk: (start sector, sectors, type, uuid) of each partition.
fn partitions(disk: &Path) -> Vec<(u64, u64, String, String)> {
    let j: Value =
        serde_json::from_slice(&common::run(Command::new("sfdisk").arg("-J").arg(disk))).unwrap();
    j["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap_or("").to_ascii_lowercase(),
                p["uuid"].as_str().unwrap_or("").to_ascii_lowercase(),
            )
        })
        .collect()
}

fn slice(disk: &Path, offset: u64, len: u64, out: &Path) {
    let f = std::fs::File::open(disk).unwrap();
    let mut b = vec![0u8; len as usize];
    f.read_exact_at(&mut b, offset).unwrap();
    std::fs::write(out, b).unwrap();
}

fn tool_out(cmd: &mut Command) -> Vec<u8> {
    common::run(cmd)
}

fn objects(store: &[u8], name: &str) -> BTreeMap<String, Object> {
    let h = Hive::parse(store.to_vec(), Ctx::new(name, Layer::Bcd)).unwrap();
    bcd::objects(&h)
        .unwrap()
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect()
}

fn object_ref(o: &Object, code: u32) -> String {
    match o.element(code) {
        Some(Element::Object(s)) => s.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

fn string(o: &Object, code: u32) -> String {
    match o.element(code) {
        Some(Element::String(s)) => s.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

fn device(o: &Object, code: u32) -> PartitionRef {
    match o.element(code) {
        Some(Element::Device(Device::Partition { partition })) => partition.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

fn codes(o: &Object) -> BTreeSet<u32> {
    o.elements.iter().map(|(c, _)| *c).collect()
}

/// The new store against the real UEFI store: each of its objects is of a kind the real
/// one has, with elements the real object of that kind has (the boot manager, the Windows
/// loader by winload.efi, the resume loader, the settings by their well-known ids); its
/// paths are the UEFI ones; its devices name the ESP and C: of the GPT sfdisk reads.
fn check_store(name: &str, store: &[u8], disk_guid: &str, esp: &str, c: &str) {
    // The options of the old store's loader entry the fixture sets, carried over.
    let carried: Vec<(u32, Element)> = match name {
        "ws2019-mbr" => vec![
            (0x26000010, Element::Boolean(true)),
            (0x25000020, Element::Integer(1)),
        ],
        _ => Vec::new(),
    };
    let real = objects(
        &std::fs::read(common::fixture("hives/regipy/BCD.xz")).unwrap(),
        "real",
    );
    let ours = objects(store, name);
    let real_loader = real
        .values()
        .find(|o| {
            o.kind == 0x10200003
                && matches!(o.element(0x12000002), Some(Element::String(p)) if p.eq_ignore_ascii_case("\\Windows\\system32\\winload.efi"))
        })
        .expect("the real store's Windows loader");
    let real_resume = real
        .values()
        .find(|o| o.kind == 0x10200004)
        .expect("the real store's resume loader");
    let manager = &ours[bcd::BOOTMGR];
    let loader = &ours[&object_ref(manager, 0x23000003)];
    let resume = &ours[&object_ref(loader, 0x23000003)];
    for (o, r) in [
        (manager, &real[bcd::BOOTMGR]),
        (loader, real_loader),
        (resume, real_resume),
    ] {
        assert_eq!(o.kind, r.kind, "{name}: {}", o.id);
        let extra: Vec<String> = codes(o)
            .difference(&codes(r))
            .filter(|c| o.id != loader.id || !carried.iter().any(|(k, _)| k == *c))
            .map(|c| format!("{c:08x}"))
            .collect();
        assert!(
            extra.is_empty(),
            "{name}: {} has elements the real store's {} has not: {extra:?}",
            o.id,
            r.id
        );
    }
    for (id, o) in &ours {
        if [bcd::BOOTMGR, loader.id.as_str(), resume.id.as_str()].contains(&id.as_str()) {
            continue;
        }
        let r = real
            .get(id)
            .unwrap_or_else(|| panic!("{name}: {id} is not in the real store"));
        assert_eq!(o.kind, r.kind, "{name}: {id}");
    }
    assert_eq!(
        string(manager, 0x12000002),
        "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
    );
    assert_eq!(
        string(loader, 0x12000002),
        "\\Windows\\system32\\winload.efi"
    );
    assert_eq!(
        string(resume, 0x12000002),
        "\\Windows\\system32\\winresume.efi"
    );
    for (code, value) in &carried {
        assert_eq!(
            loader.element(*code),
            Some(value),
            "{name}: carried {code:08x}"
        );
    }
    let gpt = |p: &str| PartitionRef::Gpt {
        disk: disk_guid.to_string(),
        partition: p.to_string(),
    };
    assert_eq!(device(manager, 0x11000001), gpt(esp), "{name}: bootmgr");
    for code in [0x11000001, 0x21000001] {
        assert_eq!(device(loader, code), gpt(c), "{name}: loader {code:08x}");
    }
}

/// The whole story on a copy of `name` for `target`.
fn story(name: &str, target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let image = copy(name, dir.path());
    let sha = common::sha256_file(&image);
    let len = std::fs::metadata(&image).unwrap().len();
    let before_raw = dir.path().join("before.raw");
    raw(&image, &before_raw);

    let before = json_report(&["check", "--json", "-t", target], &image);
    assert_ne!(before["installs"][0]["verdict"], "boots", "{before}");
    let f = firmware(&before, "mbr-on-uefi");
    assert_eq!(f["fixable"], true, "{name} {target}: {f}");

    let dry = json_report(&["fix", "--dry-run", "--json", "-t", target], &image);
    assert_eq!(common::sha256_file(&image), sha, "the dry run wrote");
    assert_eq!(dry["installs"][0]["after"], "boots", "{dry}");
    let planned = changes(&dry);
    assert!(planned.iter().any(|c| c.1 == "gpt"), "{dry}");
    let files: BTreeSet<&str> = planned
        .iter()
        .filter(|c| c.1 == "put")
        .map(|c| c.2.as_str())
        .collect();
    for want in [
        "\\EFI\\Microsoft\\Boot\\BCD",
        "\\EFI\\Microsoft\\Boot\\bootmgfw.efi",
        "\\EFI\\Boot\\bootx64.efi",
    ] {
        assert!(
            files.contains(want),
            "{name}: {want} not planned: {files:?}"
        );
    }
    let registry: Vec<&(String, String, String, u64, String)> =
        planned.iter().filter(|c| c.1 == "registry").collect();
    assert_eq!(
        registry.len(),
        1,
        "{name}: only MountedDevices: {planned:?}"
    );
    assert_eq!(registry[0].0, "mounted-devices");

    let done = json_report(&["fix", "--in-place", "--json", "-t", target], &image);
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(
        changes(&done),
        planned,
        "the write is what the dry run listed"
    );
    let after = json_report(&["check", "--json", "-t", target], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{after}");
    assert!(
        std::fs::metadata(&image).unwrap().len() > len,
        "{name}: grown"
    );

    let tools = [
        "qemu-img",
        "sfdisk",
        "sgdisk",
        "fls",
        "icat",
        "ntfscat",
        "mtype",
        "fsck.vfat",
    ];
    if tools.iter().all(|t| common::have_tool(t)) {
        let disk = dir.path().join("after.raw");
        raw(&image, &disk);
        let v = Command::new("sgdisk")
            .arg("-v")
            .arg(&disk)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(
            text.contains("No problems found"),
            "{name}: sgdisk -v: {text}"
        );
        let size = std::fs::metadata(&disk).unwrap().len();
        let mut last = [0u8; 512];
        std::fs::File::open(&disk)
            .unwrap()
            .read_exact_at(&mut last, size - 512)
            .unwrap();
        assert_eq!(
            &last[..8],
            b"EFI PART",
            "{name}: the backup header is the last sector"
        );
        let old = partitions(&before_raw);
        let new = partitions(&disk);
        assert_eq!(new.len(), 3, "{new:?}");
        for (o, n) in old.iter().zip(&new) {
            assert_eq!((o.0, o.1), (n.0, n.1), "{name}: a partition moved");
            assert_eq!(n.2, "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");
        }
        let esp = &new[2];
        assert_eq!(esp.2, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert!(esp.1 * 512 >= 100 * MIB);
        // System Reserved: every byte as it was.
        let (a, b) = (dir.path().join("sr-a"), dir.path().join("sr-b"));
        slice(&before_raw, old[1].0 * 512, old[1].1 * 512, &a);
        slice(&disk, new[1].0 * 512, new[1].1 * 512, &b);
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{name}: System Reserved changed"
        );
        // The Windows volume: the same names, and every file's bytes but the SYSTEM hive's.
        let (ta, tb) = (
            common::fls_tree(&before_raw, old[0].0),
            common::fls_tree(&disk, new[0].0),
        );
        common::assert_same_map(&tb, &ta, "the Windows volume's names");
        let mut compared = 0;
        for (path, inode) in &ta {
            // The hive, and the folders above it (their indexes hold its size and times).
            let hive = "windows/system32/config/system";
            if path.starts_with('$') || hive.starts_with(&path.to_ascii_lowercase()) {
                continue;
            }
            let icat = |d: &Path, o: u64| {
                Command::new("icat")
                    .args(["-o", &o.to_string()])
                    .arg(d)
                    .arg(inode.to_string())
                    .output()
                    .unwrap()
                    .stdout
            };
            assert!(
                icat(&before_raw, old[0].0) == icat(&disk, new[0].0),
                "{name}: {path} changed"
            );
            compared += 1;
        }
        assert!(compared > 20, "{name}: {compared} files compared");
        // The ESP.
        let esp_file = dir.path().join("esp.img");
        slice(&disk, esp.0 * 512, esp.1 * 512, &esp_file);
        let fsck = Command::new("fsck.vfat")
            .arg("-n")
            .arg(&esp_file)
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{name}: fsck.vfat -n: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let c_file = dir.path().join("c.ntfs");
        slice(&disk, new[0].0 * 512, new[0].1 * 512, &c_file);
        let own = tool_out(
            Command::new("ntfscat")
                .arg(&c_file)
                .arg("/Windows/Boot/EFI/bootmgfw.efi"),
        );
        let mtype = |p: &str| {
            tool_out(
                Command::new("mtype")
                    .arg("-i")
                    .arg(&esp_file)
                    .arg(format!("::{p}")),
            )
        };
        assert_eq!(mtype("/EFI/Microsoft/Boot/bootmgfw.efi"), own);
        assert_eq!(mtype("/EFI/Boot/bootx64.efi"), own);
        let store = mtype("/EFI/Microsoft/Boot/BCD");
        if common::have_tool("hivexregedit") {
            let f = dir.path().join("BCD");
            std::fs::write(&f, &store).unwrap();
            assert_eq!(
                Tree::from_rehost(&store, "").difference(&Tree::from_hivex(&f, "")),
                None,
                "{name}: hivex reads the store as rehost does"
            );
        }
        let guid_out = common::run(Command::new("sgdisk").arg("-p").arg(&disk));
        let disk_guid = String::from_utf8_lossy(&guid_out)
            .lines()
            .find_map(|l| {
                l.strip_prefix("Disk identifier (GUID): ")
                    .map(str::to_ascii_lowercase)
            })
            .expect("sgdisk -p names the disk GUID");
        check_store(name, &store, &disk_guid, &esp.3, &new[0].3);
        // MountedDevices: C: in GPT form, naming partition 1.
        let inspect = json_report(&["inspect", "--json"], &image);
        let letters = &inspect["installs"][0]["mounted_devices"];
        let c = letters
            .as_array()
            .unwrap()
            .iter()
            .find(|m| {
                m["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("\\DosDevices\\C:"))
            })
            .unwrap_or_else(|| panic!("no C: in {letters}"));
        assert_eq!(c["data"]["style"], "gpt", "{c}");
        assert_eq!(
            c["data"]["partition"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase(),
            new[0].3
        );
    }
    let out = common::run(common::rehost_command().arg("undo").arg(&image));
    assert!(String::from_utf8_lossy(&out).contains("undone"));
    assert_eq!(
        std::fs::metadata(&image).unwrap().len(),
        len,
        "undo gives back the size"
    );
    assert_eq!(common::sha256_file(&image), sha, "undo restores every byte");
}

#[test]
fn server_2019_on_a_vhdx_is_converted_for_hyper_v_and_azure_generation_2() {
    story("ws2019-mbr", "hyperv-gen2");
    story("ws2019-mbr", "azure-gen2");
}

#[test]
fn server_2016_on_a_vhd_is_converted_for_hyper_v_and_azure_generation_2() {
    story("ws2016-mbr", "hyperv-gen2");
    story("ws2016-mbr", "azure-gen2");
}

#[test]
fn windows_10_on_a_raw_disk_is_converted_for_hyper_v_and_azure_generation_2() {
    story("win10-mbr", "hyperv-gen2");
    story("win10-mbr", "azure-gen2");
}

/// The firmware finding's reason for not fixing, on `image` for hyperv-gen2.
fn refusal(image: &Path) -> String {
    common::firmware::refusal(image, "hyperv-gen2", "mbr-on-uefi")
}

#[test]
fn an_x86_install_and_one_generation_2_does_not_start_are_not_converted() {
    let why = refusal(&common::windows_image("win7"));
    assert!(
        why.contains("x86 Windows") && why.contains("only 64-bit"),
        "{why}"
    );
    let why = refusal(&common::windows_image("win7-uefibcd"));
    assert!(
        why.contains("Windows 6.1") && why.contains("starts Windows 6.2 and later"),
        "{why}"
    );
}

/// The raw Windows 10 fixture copied into `dir` with `edit` applied to its bytes.
fn edited(dir: &Path, edit: impl FnOnce(&std::fs::File)) -> PathBuf {
    common::firmware::edited("win10-mbr", dir, edit)
}

#[test]
fn a_dynamic_disk_and_a_bitlocker_volume_are_not_converted() {
    let dir = tempfile::tempdir().unwrap();
    // Partition 2's type byte (the MBR's second entry) made LDM's.
    let dynamic = edited(dir.path(), |f| {
        f.write_all_at(&[0x42], 0x1BE + 16 + 4).unwrap()
    });
    let why = refusal(&dynamic);
    assert!(
        why.contains("partition 2 belongs to a dynamic disk"),
        "{why}"
    );
    std::fs::remove_file(&dynamic).unwrap();
    // System Reserved (at 41 MiB) signed as BitLocker's.
    let locked = edited(dir.path(), |f| {
        f.write_all_at(b"-FVE-FS-", 41 * MIB + 3).unwrap()
    });
    let why = refusal(&locked);
    assert!(why.contains("volume 2 is BitLocker-encrypted"), "{why}");
}

#[test]
fn no_room_for_the_gpt_in_a_vhd_that_cannot_grow_is_refused_and_left_alone() {
    if !["qemu-img", "sfdisk"].iter().all(|t| common::have_tool(t)) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = copy("win10-mbr", dir.path());
    // 256 MiB, a third partition to the last sector: no free span, no sectors for the
    // backup GPT; a dynamic VHD of 2 MiB blocks whose table holds 128 entries, all used.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    f.set_len(256 * MIB).unwrap();
    drop(f);
    common::sfdisk(&["--append"], &image, "start=100352, type=7\n");
    let vhd = dir.path().join("full.vhd");
    common::run(
        Command::new("qemu-img")
            .args([
                "convert",
                "-f",
                "raw",
                "-O",
                "vpc",
                "-o",
                "subformat=dynamic,force_size=on",
            ])
            .arg(&image)
            .arg(&vhd),
    );
    let sha = common::sha256_file(&vhd);
    let why = refusal(&vhd);
    assert!(
        why.contains("no room for the GPT")
            && why.contains("cannot grow")
            && why.contains("128 entries"),
        "{why}"
    );
    let fix = common::rehost_command()
        .args(["fix", "--in-place", "-t", "hyperv-gen2"])
        .arg(&vhd)
        .output()
        .unwrap();
    assert_eq!(fix.status.code(), Some(3));
    assert_eq!(common::sha256_file(&vhd), sha, "nothing written");
}

#[test]
fn firmware_uefi_converts_for_a_target_that_offers_both() {
    let dir = tempfile::tempdir().unwrap();
    // By BIOS (the profile's first way) it boots as it is; by UEFI it needs the conversion.
    let image = common::firmware::converts_when_the_target_offers_both(
        "win10-mbr",
        "uefi",
        "mbr-on-uefi",
        dir.path(),
    );
    // A target that does not start by UEFI is a usage error.
    let out = common::rehost_command()
        .args(["check", "-t", "hyperv-gen1", "--firmware", "uefi"])
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("starts by bios only"));
}

#[test]
fn a_conversion_into_a_new_image_of_another_format_leaves_the_source_alone() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy("win10-mbr", dir.path());
    let sha = common::sha256_file(&image);
    let out = dir.path().join("converted.vhdx");
    let done = json_report(
        &[
            "fix",
            "--json",
            "-t",
            "hyperv-gen2",
            "--output",
            out.to_str().unwrap(),
        ],
        &image,
    );
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(common::sha256_file(&image), sha, "the source was written");
    let after = json_report(&["check", "--json", "-t", "hyperv-gen2"], &out);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{after}");
    if common::have_tool("qemu-img") {
        common::run(
            Command::new("qemu-img")
                .args(["check", "-f", "vhdx"])
                .arg(&out),
        );
        let info: Value = serde_json::from_slice(&common::run(
            Command::new("qemu-img")
                .args(["info", "--output=json"])
                .arg(&out),
        ))
        .unwrap();
        assert_eq!(
            info["virtual-size"],
            150 * MIB,
            "the new image has the grown size"
        );
    }
}
