//! The boot files rebuilt (`boot-config`'s `no-store` and `not-active` cases) on the
//! images whose System Reserved partition a restore left behind (testdata/windows,
//! `win7-nosysres`: no partition active; `ws2019-nosysres`: the install's partition
//! active), each on a copy:
//!
//! - `check` names the cause: neither bootmgr nor `\Boot\BCD` on the partition the BIOS
//!   starts (and no active partition), fixable from the install's own `\Windows\Boot`;
//! - `fix --dry-run` lists every change (the active flag, bootmgr, `\Boot`'s files, the
//!   new store) and writes nothing;
//! - `fix --in-place` writes what the dry run listed, and `check` then says boots;
//! - outside readers read the result: `sfdisk` the active flag, ntfs-3g's `ntfscat` the
//!   files (bootmgr byte for byte the install's own), hivex (`hivexregedit --export`,
//!   `hivexget`) the new store as rehost's reader and nt-hive read it, whose objects and
//!   elements are those bcdboot writes for BIOS (`tests/bcd_build.rs` holds the builder to
//!   a real store), its devices naming this disk's signature and the partition at 1 MiB;
//! - `rehost undo` restores every byte (SHA-256 of the image file).
//!
//! The same for UEFI on `ws2019-espempty`, whose EFI system partition lost its files:
//! `fsck.vfat -n` clean after the fix, bootmgfw.efi and the fallback bootx64.efi byte for
//! byte the install's `\Windows\Boot\EFI\bootmgfw.efi` (mtools against ntfs-3g), the new
//! store read alike by hivex and rehost.
//!
//! And the image whose install lacks `\Windows\Boot\PCAT\bootmgr`: the finding is not
//! fixable and says why; and the MBR's active flag as the session stages it.

mod common;

#[allow(dead_code)]
#[path = "regf_edit/model.rs"]
mod model;

use common::json_report;
use model::Tree;
use rehost::formats::bcd::{self, Device, Element, Object, PartitionRef};
use rehost::formats::bcd_ids as ids;
use rehost::formats::hive::Hive;
use rehost_core::{Ctx, Layer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "hyperv-gen1";

/// The fixture `name` copied into `dir`, to be written.
fn copy(name: &str, dir: &Path) -> PathBuf {
    let src = common::windows_image(name);
    let dst = dir.join(src.file_name().unwrap());
    std::fs::copy(&src, &dst).unwrap();
    dst
}

/// The boot-config findings of install 0 on the target, by case.
fn cases(check: &Value) -> BTreeMap<String, Value> {
    check["installs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "boot-config")
        .map(|f| (f["case"].as_str().unwrap().to_string(), f.clone()))
        .collect()
}

/// The changes of a fix report, each as (kind, file, bytes, sha256).
fn changes(fix: &Value) -> Vec<(String, String, u64, String)> {
    fix["installs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["file"].as_str().unwrap_or("").to_string(),
                c["bytes"].as_u64().unwrap_or(0),
                c["sha256"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The element codes of each object bcdboot writes for BIOS (the list `tests/bcd_build.rs`
/// holds the builder to, from `bcdedit /enum all` of a BIOS install and BCD-SYS).
fn bios_elements(o: &str) -> Vec<u32> {
    match o {
        "bootmgr" => vec![
            0x11000001, 0x12000004, 0x12000005, 0x14000006, 0x23000003, 0x23000006, 0x24000001,
            0x24000010, 0x25000004,
        ],
        "loader" => vec![
            0x11000001, 0x12000002, 0x12000004, 0x12000005, 0x14000006, 0x17000077, 0x21000001,
            0x22000002, 0x23000003, 0x25000020, 0x250000c2,
        ],
        "resume" => vec![
            0x11000001, 0x12000002, 0x12000004, 0x12000005, 0x14000006, 0x17000077, 0x21000001,
            0x22000002, 0x25000008, 0x26000006,
        ],
        _ => vec![
            0x11000001, 0x12000002, 0x12000004, 0x12000005, 0x14000006, 0x1600000b,
        ],
    }
}

fn codes(o: &Object) -> Vec<u32> {
    o.elements.iter().map(|(c, _)| *c).collect()
}

fn string(o: &Object, code: u32) -> String {
    match o.element(code) {
        Some(Element::String(s)) => s.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

fn object_ref(o: &Object, code: u32) -> String {
    match o.element(code) {
        Some(Element::Object(s)) => s.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

fn device(o: &Object, code: u32) -> PartitionRef {
    match o.element(code) {
        Some(Element::Device(Device::Partition { partition })) => partition.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

/// The new store's objects and elements are those bcdboot writes for BIOS, its devices
/// naming the partition at 1 MiB of the disk with signature `signature`.
fn check_store(name: &str, store: &[u8], signature: &str, description: &str) {
    let h = Hive::parse(store.to_vec(), Ctx::new(name, Layer::Bcd)).unwrap();
    let objects: BTreeMap<String, Object> = bcd::objects(&h)
        .unwrap()
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    let manager = &objects[bcd::BOOTMGR];
    let loader = &objects[&object_ref(manager, 0x23000003)];
    let resume = &objects[&object_ref(manager, 0x23000006)];
    assert_eq!(object_ref(loader, 0x23000003), resume.id, "{name}");
    let want: BTreeSet<&str> = [
        bcd::BOOTMGR,
        &loader.id,
        &resume.id,
        ids::MEMDIAG,
        ids::GLOBAL_SETTINGS,
        ids::DBG_SETTINGS,
        ids::EMS_SETTINGS,
        ids::BAD_MEMORY,
        ids::BOOTLOADER_SETTINGS,
        ids::HYPERVISOR_SETTINGS,
        ids::RESUME_LOADER_SETTINGS,
    ]
    .into_iter()
    .collect();
    let have: BTreeSet<&str> = objects.keys().map(String::as_str).collect();
    assert_eq!(have, want, "{name}: the store's objects");
    for (o, what) in [
        (manager, "bootmgr"),
        (loader, "loader"),
        (resume, "resume"),
        (&objects[ids::MEMDIAG], "memdiag"),
    ] {
        assert_eq!(codes(o), bios_elements(what), "{name}: {what}'s elements");
    }
    assert_eq!(manager.kind, 0x10100002);
    assert_eq!(loader.kind, 0x10200003);
    assert_eq!(resume.kind, 0x10200004);
    let c = PartitionRef::Mbr {
        signature: signature.into(),
        offset: 1 << 20,
    };
    for (o, code) in [
        (manager, 0x11000001),
        (loader, 0x11000001),
        (loader, 0x21000001),
        (resume, 0x11000001),
        (resume, 0x21000001),
        (&objects[ids::MEMDIAG], 0x11000001),
    ] {
        assert_eq!(device(o, code), c, "{name}: {} {code:08x}", o.id);
    }
    assert_eq!(
        string(loader, 0x12000002),
        "\\Windows\\system32\\winload.exe"
    );
    assert_eq!(string(loader, 0x22000002), "\\Windows");
    assert_eq!(string(loader, 0x12000004), description);
    assert_eq!(
        string(resume, 0x12000002),
        "\\Windows\\system32\\winresume.exe"
    );
    assert_eq!(
        string(&objects[ids::MEMDIAG], 0x12000002),
        "\\boot\\memtest.exe"
    );
    assert_eq!(string(manager, 0x12000005), "en-US");
}

/// The image as raw bytes, through qemu-img.
fn raw(image: &Path, dir: &Path) -> PathBuf {
    let fmt = if image.extension().is_some_and(|e| e == "vhd") {
        "vpc"
    } else {
        "vhdx"
    };
    let out = dir.join("disk.raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", fmt, "-O", "raw"])
            .arg(image)
            .arg(&out),
    );
    out
}

/// Whether sfdisk reads partition 1 as bootable.
fn sfdisk_active(raw: &Path) -> bool {
    let j: Value =
        serde_json::from_slice(&common::run(Command::new("sfdisk").arg("-J").arg(raw))).unwrap();
    let parts = j["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{j}");
    parts[0]["bootable"] == true
}

fn ntfscat(vol: &Path, path: &str) -> Vec<u8> {
    common::run(Command::new("ntfscat").arg(vol).arg(path))
}

/// The whole story on a copy of `name`, whose partition is active before the fix or not.
fn story(name: &str, active_before: bool, signature: &str, description: &str) {
    let dir = tempfile::tempdir().unwrap();
    let image = copy(name, dir.path());
    let sha = common::sha256_file(&image);

    let before = json_report(&["check", "--json", "-t", TARGET], &image);
    assert_ne!(
        before["installs"][0]["verdict"], "boots",
        "{name}: {before}"
    );
    let found = cases(&before);
    let store = &found["no-store"];
    assert_eq!(store["fixable"], true, "{name}: {store}");
    assert!(
        store["message"]
            .as_str()
            .unwrap()
            .contains("holds neither bootmgr nor \\Boot\\BCD"),
        "{name}: {store}"
    );
    assert!(
        store["message"]
            .as_str()
            .unwrap()
            .contains("fix rebuilds them from the install's own \\Windows\\Boot\\PCAT"),
        "{name}: {store}"
    );
    assert_eq!(found.contains_key("not-active"), !active_before, "{name}");
    if !active_before {
        assert_eq!(found["not-active"]["fixable"], true, "{name}");
    }

    let dry = json_report(&["fix", "--dry-run", "--json", "-t", TARGET], &image);
    assert_eq!(
        common::sha256_file(&image),
        sha,
        "{name}: the dry run wrote"
    );
    assert_eq!(dry["installs"][0]["after"], "boots", "{name}: {dry}");
    let planned = changes(&dry);
    let files: BTreeSet<&str> = planned
        .iter()
        .filter(|c| c.0 == "put")
        .map(|c| c.1.as_str())
        .collect();
    let want: BTreeSet<&str> = [
        "\\bootmgr",
        "\\Boot\\BCD",
        "\\Boot\\memtest.exe",
        "\\Boot\\en-US\\bootmgr.exe.mui",
        "\\Boot\\en-US\\memtest.exe.mui",
        "\\Boot\\Fonts\\segmono_boot.ttf",
        "\\Boot\\Fonts\\wgl4_boot.ttf",
    ]
    .into_iter()
    .collect();
    assert_eq!(files, want, "{name}: {dry}");
    assert_eq!(
        planned.iter().any(|c| c.0 == "active"),
        !active_before,
        "{name}: {dry}"
    );

    let done = json_report(&["fix", "--in-place", "--json", "-t", TARGET], &image);
    assert_eq!(done["committed"], true, "{name}: {done}");
    // Written as planned, the new store byte for byte (stamped with the SYSTEM hive's time,
    // not the clock's).
    assert_eq!(changes(&done), planned, "{name}: written as planned");
    assert_ne!(common::sha256_file(&image), sha);
    let after = json_report(&["check", "--json", "-t", TARGET], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{name}: {after}");
    assert!(cases(&after).is_empty(), "{name}: {after}");

    // rehost's own reader: the store found on the volume, its default entry this install.
    let inspect = json_report(&["inspect", "--json"], &image);
    let stores = inspect["boot_stores"].as_array().unwrap();
    assert_eq!(stores.len(), 1, "{name}: {inspect}");
    assert_eq!(stores[0]["volume"], 1);

    let tools = ["qemu-img", "sfdisk", "ntfscat", "hivexregedit", "hivexget"];
    if tools.iter().all(|t| common::have_tool(t)) {
        let disk = raw(&image, dir.path());
        assert!(sfdisk_active(&disk), "{name}: sfdisk reads no active flag");
        let (vol, offset) = common::partition_file(&disk, 1, dir.path());
        assert_eq!(offset, 1 << 20);
        assert_eq!(
            ntfscat(&vol, "/bootmgr"),
            ntfscat(&vol, "/Windows/Boot/PCAT/bootmgr"),
            "{name}: bootmgr is the install's own"
        );
        assert_eq!(
            ntfscat(&vol, "/Boot/Fonts/wgl4_boot.ttf"),
            ntfscat(&vol, "/Windows/Boot/Fonts/wgl4_boot.ttf")
        );
        let store = ntfscat(&vol, "/Boot/BCD");
        check_store(name, &store, signature, description);
        let f = dir.path().join("BCD");
        std::fs::write(&f, &store).unwrap();
        let ours = Tree::from_rehost(&store, "");
        assert_eq!(ours.difference(&Tree::from_nt_hive(&store, "")), None);
        assert_eq!(
            ours.difference(&Tree::from_hivex(&f, "")),
            None,
            "{name}: hivex reads the store otherwise"
        );
        let default = common::run(
            Command::new("hivexget")
                .arg(&f)
                .arg(format!("\\Objects\\{}\\Elements\\23000003", bcd::BOOTMGR))
                .arg("Element"),
        );
        let default = String::from_utf8_lossy(&default).trim().to_string();
        assert_eq!(
            stores[0]["entries"][0]["id"].as_str().unwrap(),
            default,
            "{name}"
        );
        std::fs::remove_file(&disk).unwrap();
        if !active_before {
            let original = raw(&common::windows_image(name), dir.path());
            assert!(!sfdisk_active(&original), "{name}: active before the fix");
        }
    }

    common::run(common::rehost_command().arg("undo").arg(&image));
    assert_eq!(
        common::sha256_file(&image),
        sha,
        "{name}: undo restores every byte"
    );
}

#[test]
fn windows_7_without_system_reserved_or_an_active_partition_boots_after_the_rebuild() {
    story("win7-nosysres", false, "5cbea03e", "Windows 7 Professional");
}

#[test]
fn server_2019_without_system_reserved_boots_after_the_rebuild() {
    story(
        "ws2019-nosysres",
        true,
        "2019de1e",
        "Windows Server 2019 Standard",
    );
}

#[test]
fn an_install_without_its_own_bootmgr_is_told_why_the_boot_files_are_not_rebuilt() {
    let image = common::windows_image("ws2019-nosysres-nopcat");
    let sha = common::sha256_file(&image);
    let check = json_report(&["check", "--json", "-t", TARGET], &image);
    let store = &cases(&check)["no-store"];
    assert_eq!(store["fixable"], false, "{store}");
    assert!(
        store["cannot_fix"]
            .as_str()
            .unwrap()
            .contains("no \\Windows\\Boot\\PCAT\\bootmgr on volume 1"),
        "{store}"
    );
    assert!(
        store["message"]
            .as_str()
            .unwrap()
            .contains("holds no bootmgr to rebuild them from"),
        "{store}"
    );
    let dry = json_report(&["fix", "--dry-run", "--json", "-t", TARGET], &image);
    assert_ne!(dry["installs"][0]["after"], "boots", "{dry}");
    assert!(changes(&dry).is_empty(), "{dry}");
    assert_eq!(common::sha256_file(&image), sha);
}

#[test]
fn the_active_flag_is_staged_in_sector_0_and_refused_where_there_is_none() {
    use rehost::fs::staged::Mode;
    use rehost::fs::Image;
    let path = common::windows_image("win7-nosysres");
    let image = Image::open_staged(&path, Mode::DryRun).unwrap();
    assert!(!image.layout().volumes[0].bootable);
    image.set_active(1).unwrap();
    // The layout read at open stays as it was; the staged one has the flag, and so has
    // sector 0 as the session reads it through its overlay.
    assert!(!image.layout().volumes[0].bootable);
    assert!(image.staged_layout().volumes[0].bootable);
    let mut sector = [0u8; 512];
    image.reader().read_at(0, &mut sector).unwrap();
    assert_eq!(sector[0x1BE], 0x80);
    assert_eq!(&sector[510..], &[0x55, 0xAA]);
    let out = image.discard();
    assert_eq!(out.staged_bytes, 1, "one status byte");
    // Only primary partitions of an MBR disk can be active.
    let image = Image::open_staged(&path, Mode::DryRun).unwrap();
    let e = image.set_active(5).unwrap_err();
    assert!(e.to_string().contains("no volume 5"), "{e}");
    let gpt = common::windows_image("ws2019");
    let image = Image::open_staged(&gpt, Mode::DryRun).unwrap();
    let e = image.set_active(3).unwrap_err();
    assert!(e.to_string().contains("only an MBR disk"), "{e}");
    // Read-only, nothing can be staged.
    let image = Image::open(&path).unwrap();
    assert!(image.set_active(1).is_err());
}

/// A file of a FAT volume, through mtools.
fn mtype(vol: &Path, path: &str) -> Vec<u8> {
    common::run(
        Command::new("mtype")
            .arg("-i")
            .arg(vol)
            .arg(format!("::{path}")),
    )
}

#[test]
fn server_2019_whose_efi_system_partition_lost_its_files_boots_after_the_rebuild() {
    let name = "ws2019-espempty";
    let target = "hyperv-gen2";
    let dir = tempfile::tempdir().unwrap();
    let image = copy(name, dir.path());
    let sha = common::sha256_file(&image);
    let before = json_report(&["check", "--json", "-t", target], &image);
    let store = &cases(&before)["no-store"];
    assert_eq!(store["fixable"], true, "{store}");
    assert!(
        store["message"]
            .as_str()
            .unwrap()
            .contains("fix rebuilds the boot files from the install's own \\Windows\\Boot\\EFI"),
        "{store}"
    );
    let dry = json_report(&["fix", "--dry-run", "--json", "-t", target], &image);
    assert_eq!(common::sha256_file(&image), sha);
    let files: BTreeSet<String> = changes(&dry).into_iter().map(|c| c.1).collect();
    let want: BTreeSet<String> = [
        "\\EFI\\Microsoft\\Boot\\BCD",
        "\\EFI\\Microsoft\\Boot\\bootmgfw.efi",
        "\\EFI\\Boot\\bootx64.efi",
        "\\EFI\\Microsoft\\Boot\\memtest.efi",
        "\\EFI\\Microsoft\\Boot\\Fonts\\segmono_boot.ttf",
        "\\EFI\\Microsoft\\Boot\\Fonts\\wgl4_boot.ttf",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(files, want, "{dry}");
    let done = json_report(&["fix", "--in-place", "--json", "-t", target], &image);
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(changes(&done), changes(&dry));
    let after = json_report(&["check", "--json", "-t", target], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{after}");

    let tools = [
        "qemu-img",
        "sfdisk",
        "ntfscat",
        "mtype",
        "fsck.vfat",
        "hivexregedit",
    ];
    if tools.iter().all(|t| common::have_tool(t)) {
        let disk = raw(&image, dir.path());
        let (esp, _) = common::partition_file(&disk, 1, dir.path());
        let (c, _) = common::partition_file(&disk, 3, dir.path());
        let fsck = Command::new("fsck.vfat")
            .arg("-n")
            .arg(&esp)
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "fsck.vfat -n: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let own = ntfscat(&c, "/Windows/Boot/EFI/bootmgfw.efi");
        assert_eq!(mtype(&esp, "/EFI/Microsoft/Boot/bootmgfw.efi"), own);
        assert_eq!(mtype(&esp, "/EFI/Boot/bootx64.efi"), own);
        let store = mtype(&esp, "/EFI/Microsoft/Boot/BCD");
        let f = dir.path().join("BCD");
        std::fs::write(&f, &store).unwrap();
        assert_eq!(
            Tree::from_rehost(&store, "").difference(&Tree::from_hivex(&f, "")),
            None
        );
        let h = Hive::parse(store, Ctx::new(name, Layer::Bcd)).unwrap();
        let objects = bcd::objects(&h).unwrap();
        let manager = objects.iter().find(|o| o.id == bcd::BOOTMGR).unwrap();
        assert_eq!(
            string(manager, 0x12000002),
            "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
        );
        assert!(matches!(
            device(manager, 0x11000001),
            PartitionRef::Gpt { .. }
        ));
        let loader = objects
            .iter()
            .find(|o| o.id == object_ref(manager, 0x23000003))
            .unwrap();
        assert_eq!(
            string(loader, 0x12000002),
            "\\Windows\\system32\\winload.efi"
        );
    }
    common::run(common::rehost_command().arg("undo").arg(&image));
    assert_eq!(common::sha256_file(&image), sha, "undo restores every byte");
}

/// Check, fix in place with `args`, check again on a copy of `name`: the fix's report.
fn fix_to_boot(name: &str, args: &[&str], dir: &Path) -> (PathBuf, String, Value) {
    let image = copy(name, dir);
    let sha = common::sha256_file(&image);
    let before = json_report(&["check", "--json", "-t", TARGET], &image);
    assert_ne!(
        before["installs"][0]["verdict"], "boots",
        "{name}: {before}"
    );
    let fix = [&["fix", "--in-place", "--json", "-t", TARGET], args].concat();
    let done = json_report(&fix, &image);
    assert_eq!(done["committed"], true, "{name}: {done}");
    let after = json_report(&["check", "--json", "-t", TARGET], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{name}: {after}");
    (image, sha, done)
}

#[test]
fn a_missing_bootmgr_beside_a_store_is_copied_from_the_install() {
    let dir = tempfile::tempdir().unwrap();
    let name = "ws2019-nobootmgr";
    let before = json_report(
        &["check", "--json", "-t", TARGET],
        &common::windows_image(name),
    );
    let missing = &cases(&before)["loader-missing"];
    assert_eq!(missing["fixable"], true, "{missing}");
    let (image, sha, done) = fix_to_boot(name, &[], dir.path());
    let put: Vec<_> = changes(&done);
    assert_eq!(put.len(), 1, "{done}");
    assert_eq!((put[0].0.as_str(), put[0].1.as_str()), ("put", "\\bootmgr"));
    if ["qemu-img", "sfdisk", "ntfscat"]
        .iter()
        .all(|t| common::have_tool(t))
    {
        let disk = raw(&image, dir.path());
        let (reserved, _) = common::partition_file(&disk, 2, dir.path());
        let (c, _) = common::partition_file(&disk, 1, dir.path());
        assert_eq!(
            ntfscat(&reserved, "/bootmgr"),
            ntfscat(&c, "/Windows/Boot/PCAT/bootmgr")
        );
    }
    common::run(common::rehost_command().arg("undo").arg(&image));
    assert_eq!(common::sha256_file(&image), sha);
}

#[test]
fn rebuild_boot_writes_a_new_store_where_the_old_one_names_another_disk() {
    let dir = tempfile::tempdir().unwrap();
    let name = "ws2019-newsig-boot";
    // Without the option, the old store's elements are rewritten (tests/fix_boot.rs).
    let other = tempfile::tempdir().unwrap();
    let (_, _, edited) = fix_to_boot(name, &[], other.path());
    assert!(
        changes(&edited)
            .iter()
            .all(|c| c.0 == "registry" && c.1.is_empty()),
        "{edited}"
    );
    let (image, sha, done) = fix_to_boot(name, &["--rebuild-boot"], dir.path());
    let files: BTreeSet<String> = changes(&done)
        .into_iter()
        .filter(|c| c.0 == "put")
        .map(|c| c.1)
        .collect();
    assert!(files.contains("\\Boot\\BCD"), "{done}");
    assert!(files.contains("\\bootmgr"), "{done}");
    if ["qemu-img", "sfdisk", "ntfscat"]
        .iter()
        .all(|t| common::have_tool(t))
    {
        let disk = raw(&image, dir.path());
        let (reserved, offset) = common::partition_file(&disk, 2, dir.path());
        let store = ntfscat(&reserved, "/Boot/BCD");
        let h = Hive::parse(store, Ctx::new(name, Layer::Bcd)).unwrap();
        let objects = bcd::objects(&h).unwrap();
        let manager = objects.iter().find(|o| o.id == bcd::BOOTMGR).unwrap();
        let new = |offset| PartitionRef::Mbr {
            signature: "2019c10f".into(),
            offset,
        };
        assert_eq!(device(manager, 0x11000001), new(offset));
        let loader = objects
            .iter()
            .find(|o| o.id == object_ref(manager, 0x23000003))
            .unwrap();
        assert_eq!(device(loader, 0x21000001), new(1 << 20));
        // The old store's WinRE entry is not kept.
        assert_eq!(objects.len(), 11, "{:?}", objects.iter().map(|o| &o.id));
    }
    common::run(common::rehost_command().arg("undo").arg(&image));
    assert_eq!(common::sha256_file(&image), sha);
}

#[test]
fn rebuild_boot_without_the_install_s_boot_manager_says_why() {
    let image = common::windows_image("win7-uefibcd");
    let dry = json_report(
        &["fix", "--dry-run", "--json", "--rebuild-boot", "-t", TARGET],
        &image,
    );
    assert_ne!(dry["installs"][0]["after"], "boots", "{dry}");
    let whys = common::fix_whys(&dry["installs"][0], "boot-config");
    assert!(
        whys.iter()
            .any(|w| w.contains("no \\Windows\\Boot\\PCAT\\bootmgr on volume 1")),
        "{whys:?}"
    );
}

#[test]
fn xp_gets_ntldr_ntdetect_and_boot_ini_from_its_own_copies_or_is_told_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let name = "xp-nobootfiles";
    let before = json_report(
        &["check", "--json", "-t", TARGET],
        &common::windows_image(name),
    );
    let store = &cases(&before)["no-store"];
    assert_eq!(store["fixable"], true, "{store}");
    let (image, sha, done) = fix_to_boot(name, &[], dir.path());
    let files: Vec<String> = changes(&done)
        .into_iter()
        .filter(|c| c.0 == "put")
        .map(|c| c.1)
        .collect();
    assert_eq!(files, ["\\ntldr", "\\NTDETECT.COM", "\\boot.ini"], "{done}");
    if ["qemu-img", "sfdisk", "ntfscat"]
        .iter()
        .all(|t| common::have_tool(t))
    {
        let disk = raw(&image, dir.path());
        let (vol, _) = common::partition_file(&disk, 1, dir.path());
        assert_eq!(
            ntfscat(&vol, "/ntldr"),
            ntfscat(&vol, "/WINDOWS/ServicePackFiles/i386/ntldr")
        );
        let ini = String::from_utf8(ntfscat(&vol, "/boot.ini")).unwrap();
        assert!(
            ini.contains(
                "multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS=\"Microsoft Windows XP\" /fastdetect\r\n"
            ),
            "{ini}"
        );
    }
    common::run(common::rehost_command().arg("undo").arg(&image));
    assert_eq!(common::sha256_file(&image), sha);

    let check = json_report(
        &["check", "--json", "-t", TARGET],
        &common::windows_image("xp-nobootfiles-nocopy"),
    );
    let store = &cases(&check)["no-store"];
    assert_eq!(store["fixable"], false, "{store}");
    assert!(
        store["cannot_fix"]
            .as_str()
            .unwrap()
            .contains("no \\WINDOWS\\ServicePackFiles\\i386\\ntldr or \\I386\\NTLDR"),
        "{store}"
    );
}

#[test]
fn a_system_reserved_partition_that_lost_its_active_flag_gets_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let name = "ws2019-noactive";
    let before = json_report(
        &["check", "--json", "-t", TARGET],
        &common::windows_image(name),
    );
    let found = cases(&before);
    assert_eq!(found.len(), 1, "{before}");
    assert!(
        found["not-active"]["message"]
            .as_str()
            .unwrap()
            .contains("the fix makes volume 2 active"),
        "{before}"
    );
    let (image, sha, done) = fix_to_boot(name, &[], dir.path());
    let made = changes(&done);
    assert_eq!(made.len(), 1, "{done}");
    assert_eq!(made[0].0, "active");
    if ["qemu-img", "sfdisk"].iter().all(|t| common::have_tool(t)) {
        let disk = raw(&image, dir.path());
        let j: Value =
            serde_json::from_slice(&common::run(Command::new("sfdisk").arg("-J").arg(&disk)))
                .unwrap();
        let parts = j["partitiontable"]["partitions"].as_array().unwrap();
        assert_ne!(parts[0]["bootable"], true, "{j}");
        assert_eq!(parts[1]["bootable"], true, "{j}");
    }
    common::run(common::rehost_command().arg("undo").arg(&image));
    assert_eq!(common::sha256_file(&image), sha);
}
