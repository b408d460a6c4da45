//! The cases of "check and fix disagree", each on the fixture that shows it:
//!
//! - a driver that starts late and lacks its file: check names both causes, and does not
//!   call it fixable when fix cannot provide the file (fix then writes nothing for it);
//! - the disk's critical-device entry (GenDisk) is told before the controller's driver is
//!   injected, not after;
//! - `[fixable]` only where this fix, with these options, repairs it: the Standard PC HAL
//!   (ACPI and non-ACPI HALs are never swapped), a vendor driver without `--drivers`, a dirty
//!   hive without `--accept-dirty-hive`, a hibernated volume without `--discard-hibernation`
//!   each say why and what would;
//! - a BitLocker volume: fix tells what check tells;
//! - a dirty hive written back says so in the changes;
//! - a hibernated install: the verdict says what Windows does, and `--discard-hibernation`
//!   empties hiberfil.sys (ntfs-3g reads it back empty), after which the install boots;
//! - messages: no `ServicePackFiles` on NT 6+, no "not a PCI device" for a class-matched
//!   controller;
//! - Windows Vista SP1 to 7 x64 started by UEFI needs INT 10h video from the firmware.

mod common;

use serde_json::Value;
use std::process::Command;

use common::{json_report as json, rehost_command as rehost};

fn findings(check: &Value) -> Vec<Value> {
    check["installs"][0]["findings"].as_array().unwrap().clone()
}

fn find<'a>(fs: &'a [Value], rule: &str, case: &str) -> Vec<&'a Value> {
    fs.iter()
        .filter(|f| f["rule"] == rule && f["case"] == case)
        .collect()
}

fn drivers() -> String {
    common::root()
        .join("testdata/drivers/virtio-win")
        .display()
        .to_string()
}

#[test]
fn a_late_driver_without_its_file_names_both_causes_and_is_not_promised() {
    let image = common::windows_image("win7");
    let check = json(&["check", "--json", "-t", "generic-lsi"], &image);
    let fs = findings(&check);
    let sas2: Vec<&Value> = find(&fs, "storage-driver", "not-boot-start")
        .into_iter()
        .filter(|f| f["service"] == "LSI_SAS2")
        .collect();
    assert!(!sas2.is_empty(), "{check}");
    for f in &sas2 {
        let m = f["message"].as_str().unwrap();
        assert!(
            m.contains("starts on demand") && m.contains("driver file is missing"),
            "{m}"
        );
        assert_eq!(f["fixable"], false, "{f}");
        let why = f["cannot_fix"].as_str().unwrap();
        assert!(why.contains("lsi_sas2.sys"), "{why}");
    }
    // fix plans nothing for it: no Start=0 on a driver whose file it cannot provide.
    let fix = json(&["fix", "--dry-run", "--json", "-t", "generic-lsi"], &image);
    let changes = fix["installs"][0]["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .all(|c| !c["diff"].as_str().unwrap_or("").contains("LSI_SAS2")),
        "{fix}"
    );
}

#[test]
fn the_disks_critical_device_entry_is_told_before_the_driver_is_injected() {
    // Windows 7 without its GenDisk CriticalDeviceDatabase entries, on an NVMe target:
    // stornvme is not in the image, and the disk below the controller has no entry either.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("win7.vhd");
    std::fs::copy(common::windows_image("win7"), &image).unwrap();
    for cs in [1, 2] {
        let key =
            format!("HKLM\\SYSTEM\\ControlSet00{cs}\\Control\\CriticalDeviceDatabase\\GenDisk");
        let out = rehost()
            .args(["reg", "delete", "--in-place"])
            .arg(&image)
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let check = json(&["check", "--json", "-t", "generic-nvme"], &image);
    let fs = findings(&check);
    assert!(
        !find(&fs, "storage-driver", "not-installed").is_empty(),
        "{check}"
    );
    let gendisk: Vec<&Value> = find(&fs, "critical-device", "no-entry")
        .into_iter()
        .filter(|f| f["message"].as_str().unwrap().contains("GenDisk"))
        .collect();
    assert!(
        !gendisk.is_empty(),
        "GenDisk told up front, beside the missing driver: {check}"
    );
    assert!(gendisk.iter().all(|f| f["fixable"] == true), "{check}");
}

#[test]
fn fixable_is_a_promise_and_what_is_not_says_why() {
    // The Standard PC HAL on an ACPI machine: never swapped.
    let check = json(
        &["check", "--json", "-t", "hyperv-gen1"],
        &common::windows_image("xp-stdpc"),
    );
    let fs = findings(&check);
    let hal = find(&fs, "hal-target", "reduced");
    assert!(!hal.is_empty(), "{check}");
    for f in hal {
        assert_eq!(f["fixable"], false, "{f}");
        assert!(f["cannot_fix"].as_str().is_some(), "{f}");
    }
    // A vendor driver without a driver folder, then with one.
    let image = common::windows_image("ws2019");
    let without = json(&["check", "--json", "-t", "kvm-virtio-blk"], &image);
    let f = &find(&findings(&without), "storage-driver", "not-installed")[0].clone();
    assert_eq!(f["fixable"], false, "{f}");
    assert!(
        f["cannot_fix"].as_str().unwrap().contains("--drivers"),
        "{f}"
    );
    let with = json(
        &[
            "check",
            "--json",
            "-t",
            "kvm-virtio-blk",
            "--drivers",
            &drivers(),
        ],
        &image,
    );
    let f = &find(&findings(&with), "storage-driver", "not-installed")[0].clone();
    assert_eq!(f["fixable"], true, "{f}");
    // A dirty hive without its logs: the storage finding waits for --accept-dirty-hive.
    let dirty = common::windows_image("ws2019-dirtyhive");
    let d = drivers();
    let virtio = [
        "check",
        "--json",
        "-t",
        "kvm-virtio-blk",
        "--drivers",
        d.as_str(),
    ];
    let c = json(&virtio, &dirty);
    let sata: Vec<Value> = findings(&c)
        .into_iter()
        .filter(|f| f["rule"] != "dirty-hive" && f["severity"] == "error")
        .collect();
    assert!(!sata.is_empty(), "{c}");
    for f in &sata {
        assert_eq!(f["fixable"], false, "{f}");
        assert!(
            f["cannot_fix"]
                .as_str()
                .unwrap()
                .contains("--accept-dirty-hive"),
            "{f}"
        );
    }
    let c = json(&[&virtio[..], &["--accept-dirty-hive"]].concat(), &dirty);
    assert!(
        findings(&c)
            .iter()
            .filter(|f| f["rule"] != "dirty-hive" && f["severity"] == "error")
            .all(|f| f["fixable"] == true),
        "{c}"
    );
}

#[test]
fn a_bitlocker_volume_is_told_alike_by_check_and_fix() {
    let image = common::windows_image("ws2019-bitlocker");
    let check = json(&["check", "--json", "-t", "hyperv-gen2"], &image);
    let fix = json(&["fix", "--dry-run", "--json", "-t", "hyperv-gen2"], &image);
    assert_eq!(check["installs"][0]["verdict"], "unknown", "{check}");
    assert_eq!(fix["installs"][0]["before"], "unknown", "{fix}");
    assert_eq!(fix["installs"][0]["volume"], check["installs"][0]["volume"]);
    let said = |v: &Value, key: &str| -> Vec<String> {
        v["installs"][0][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("{}/{}", f["rule"], f["case"]))
            .collect()
    };
    assert_eq!(said(&check, "findings"), said(&fix, "remaining"));
    assert_eq!(fix["committed"], false);
}

#[test]
fn a_dirty_hive_written_back_says_so() {
    let image = common::windows_image("win10-dirty");
    let check = json(&["check", "--json", "-t", "kvm-sata"], &image);
    assert!(!find(&findings(&check), "dirty-hive", "replayed").is_empty());
    let fix = json(&["fix", "--dry-run", "--json", "-t", "kvm-sata"], &image);
    let i = &fix["installs"][0];
    assert!(
        i["remaining"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["rule"] != "dirty-hive"),
        "{fix}"
    );
    let said = i["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "dirty-hive")
        .unwrap_or_else(|| panic!("no dirty-hive change: {fix}"));
    let why = said["why"].as_str().unwrap();
    assert!(
        why.contains("SYSTEM") && why.contains("SYSTEM.LOG1"),
        "{why}"
    );
}

#[test]
fn a_hibernated_install_is_told_and_its_image_discarded_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("hiber.vhdx");
    std::fs::copy(common::windows_image("ws2019-hiber"), &image).unwrap();
    let sha = common::sha256_file(&image);
    let d = drivers();
    let args = ["-t", "kvm-virtio-blk", "--drivers", d.as_str()];
    let check = json(&[&["check", "--json"][..], &args].concat(), &image);
    let fs = findings(&check);
    let hib = find(&fs, "dirty-volume", "hibernated");
    assert!(
        hib[0]["message"]
            .as_str()
            .unwrap()
            .contains("resumes the old machine's session"),
        "{check}"
    );
    let viostor = find(&fs, "storage-driver", "not-installed");
    assert_eq!(viostor[0]["fixable"], false, "{check}");
    assert!(
        viostor[0]["cannot_fix"]
            .as_str()
            .unwrap()
            .contains("--discard-hibernation"),
        "{check}"
    );
    // Without the option, fix writes nothing.
    let refused = json(
        &[&["fix", "--in-place", "--json"][..], &args].concat(),
        &image,
    );
    assert_eq!(refused["committed"], false, "{refused}");
    assert_eq!(common::sha256_file(&image), sha);
    // With it, one call: the hibernation image emptied, viostor injected, boots.
    let with = [&args[..], &["--discard-hibernation"]].concat();
    let check = json(&[&["check", "--json"][..], &with].concat(), &image);
    assert!(find(&findings(&check), "storage-driver", "not-installed")
        .iter()
        .all(|f| f["fixable"] == true));
    let done = json(
        &[&["fix", "--in-place", "--json"][..], &with].concat(),
        &image,
    );
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(done["installs"][0]["after"], "boots", "{done}");
    let after = json(&["check", "--json", "-t", "kvm-virtio-blk"], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{after}");
    if common::have_tool("ntfsinfo") && common::have_tool("qemu-img") {
        let (vol, _) = common::partition_file(&image, 3, dir.path());
        let info = common::run(
            Command::new("ntfsinfo")
                .args(["-F", "/hiberfil.sys"])
                .arg(&vol),
        );
        let info = String::from_utf8_lossy(&info);
        assert!(
            info.lines()
                .any(|l| l.contains("Data Size:") && l.contains(" 0 (0x0)")),
            "ntfs-3g reads hiberfil.sys empty: {info}"
        );
    }
    let undo = rehost().arg("undo").arg(&image).output().unwrap();
    assert!(undo.status.success(), "{undo:?}");
    assert_eq!(common::sha256_file(&image), sha);
}

#[test]
fn messages_name_what_the_release_has() {
    // Windows 7 on an LSI SAS2 target whose driver file is missing from the image: no NT 5
    // service pack folder in the why.
    let image = common::windows_image("win7");
    let check = json(&["check", "--json", "-t", "generic-lsi"], &image);
    for f in findings(&check) {
        if let Some(why) = f["cannot_fix"].as_str() {
            assert!(!why.contains("ServicePackFiles"), "{why}");
        }
    }
    // A class-matched controller (generic NVMe) with a driver folder: the why says the
    // profile names a class, not that the controller is not a PCI device.
    let check = json(
        &[
            "check",
            "--json",
            "-t",
            "generic-nvme",
            "--drivers",
            &drivers(),
        ],
        &image,
    );
    let whys: Vec<String> = findings(&check)
        .iter()
        .filter_map(|f| f["cannot_fix"].as_str().map(str::to_string))
        .collect();
    assert!(
        whys.iter().all(|w| !w.contains("not a PCI device")),
        "{whys:?}"
    );
    assert!(whys.iter().any(|w| w.contains("class code")), "{whys:?}");
}

#[test]
fn windows_7_x64_by_uefi_needs_int10_video() {
    let image = common::windows_image("win7-x64-uefi");
    let case = |t: &str| -> Vec<String> {
        let c = json(&["check", "--json", "-t", t], &image);
        findings(&c)
            .iter()
            .filter(|f| f["rule"] == "firmware")
            .map(|f| format!("{}:{}", f["case"].as_str().unwrap(), f["severity"]))
            .collect()
    };
    // OVMF's VBE shim: nothing to say.
    assert_eq!(case("kvm-sata"), Vec::<String>::new());
    // VirtualBox's UEFI has no CSM: it hangs.
    assert_eq!(case("virtualbox"), vec!["no-int10:\"error\"".to_string()]);
    // No source for GCP's firmware: a warning.
    assert_eq!(case("gcp"), vec!["int10-unknown:\"warning\"".to_string()]);
    // Hyper-V generation 2 refuses Windows 7 outright.
    assert_eq!(case("hyperv-gen2"), vec!["requires:\"error\"".to_string()]);
    // Started by BIOS (the MBR image of the same release): no INT 10h question.
    let bios = json(
        &["check", "--json", "-t", "virtualbox"],
        &common::windows_image("win7-uefibcd"),
    );
    assert!(findings(&bios).iter().all(|f| f["rule"] != "firmware"));
}
