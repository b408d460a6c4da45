//! Check tells every error the fix will meet, and one `fix` call repairs them all. The
//! case: Server 2019 whose BCD entry names a partition of another disk *and* loads
//! winload.exe on a UEFI disk. The boot-config check used to stop at the device while the
//! entry named no partition of this disk, and the loader error showed only after a first
//! fix; now check reports both, and one `fix --in-place` writes both (fix also checks the
//! staged image again and repairs in further rounds what a repair brings to light; here
//! one round is enough) and the image checks as booting. And an entry other than the
//! default one that names another disk is the same warning in check, in what fix leaves,
//! and in the check after it.

mod common;

use serde_json::Value;
use std::process::Command;

use common::{json_report as json, rehost_command as rehost};

const LOADER: &str =
    "HKLM\\BCD00000000\\Objects\\{66666666-7777-4888-8999-aaaaaaaaaaaa}\\Elements\\12000002";

#[test]
fn a_loader_behind_a_foreign_device_is_told_up_front_and_fixed_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ws2019-bcdguid.vhdx");
    std::fs::copy(common::fixture("windows/ws2019-bcdguid.vhdx.zst"), &image).unwrap();
    // Plant the second fault: the BIOS loader on this UEFI disk.
    let set = rehost()
        .args(["reg", "set", "--in-place", "--value", "Element", "--data"])
        .arg("\\Windows\\system32\\winload.exe")
        .arg(&image)
        .arg(LOADER)
        .output()
        .unwrap();
    assert_eq!(set.status.code(), Some(0), "{set:?}");
    std::fs::remove_file(dir.path().join("ws2019-bcdguid.vhdx.rehost-undo")).unwrap();
    let sha = common::sha256_file(&image);

    let before = json(&["check", "--json", "-t", "hyperv-gen2"], &image);
    assert_eq!(before["installs"][0]["verdict"], "no-boot", "{before}");
    let cases: Vec<&str> = before["installs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "boot-config")
        .map(|f| f["case"].as_str().unwrap())
        .collect();
    assert!(
        cases.contains(&"bcd-device") && cases.contains(&"winload-firmware"),
        "check tells the device and the loader up front: {before}"
    );

    let done = json(
        &["fix", "--in-place", "--json", "-t", "hyperv-gen2"],
        &image,
    );
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(done["rounds"], 1, "{done}");
    assert_eq!(done["installs"][0]["after"], "boots", "{done}");
    let changes = done["installs"][0]["changes"].as_array().unwrap();
    let boot = |what: &str| {
        changes.iter().any(|c| {
            c["rule"] == "boot-config"
                && c["round"] == 1
                && (c["why"].as_str().unwrap().contains(what)
                    || c["diff"].as_str().unwrap_or("").contains(what))
        })
    };
    assert!(boot("partitions"), "the device is mapped: {done}");
    assert!(boot("winload.efi"), "the UEFI loader is given: {done}");

    // What was written is what a new session reads: the loader and the verdict.
    let q = rehost()
        .args(["reg", "query"])
        .arg(&image)
        .arg(LOADER)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&q.stdout).contains("winload.efi"),
        "{}",
        String::from_utf8_lossy(&q.stdout)
    );
    let after = json(&["check", "--json", "-t", "hyperv-gen2"], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{after}");

    // A second fix finds nothing left to do.
    let again = json(&["fix", "--dry-run", "--json", "-t", "hyperv-gen2"], &image);
    assert_eq!(again["rounds"], 0, "{again}");

    let undo = rehost().arg("undo").arg(&image).output().unwrap();
    assert_eq!(undo.status.code(), Some(0), "{undo:?}");
    assert_eq!(common::sha256_file(&image), sha, "undo restores the bytes");
}

const WINRE: &str =
    "HKLM\\BCD00000000\\Objects\\{77777777-1111-4222-8333-555555555555}\\Elements\\21000001";

/// The recovery entry of a BCD names a disk that is not this one (a recovery partition that
/// was not restored): check, fix and the check after it tell the same story, a warning.
#[test]
fn a_recovery_entry_on_another_disk_is_the_same_warning_before_during_and_after_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ws2019-newsig.vhdx");
    std::fs::copy(common::fixture("windows/ws2019-newsig.vhdx.zst"), &image).unwrap();
    // The RAM disk's partition on MBR disk deadbeef, which no partition of this disk was.
    let out = rehost()
        .args(["reg", "query", "--json"])
        .arg(&image)
        .arg(WINRE)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let blob = v["values"][0]["data"].as_str().unwrap();
    assert!(
        blob.contains("05B11920"),
        "the fixture's old disk signature: {blob}"
    );
    let set = rehost()
        .args([
            "reg",
            "set",
            "--in-place",
            "--type",
            "REG_BINARY",
            "--value",
            "Element",
        ])
        .args(["--data", &blob.replace("05B11920", "EFBEADDE")])
        .arg(&image)
        .arg(WINRE)
        .output()
        .unwrap();
    assert_eq!(set.status.code(), Some(0), "{set:?}");
    std::fs::remove_file(dir.path().join("ws2019-newsig.vhdx.rehost-undo")).unwrap();

    let winre = |findings: &Value| -> Vec<String> {
        findings
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["message"]
                    .as_str()
                    .unwrap()
                    .contains("Recovery Environment")
            })
            .map(|f| format!("{} {}", f["severity"], f["case"]))
            .collect()
    };
    let expected = vec!["\"warning\" \"other-entry\"".to_string()];
    let before = json(&["check", "--json", "-t", "kvm-sata"], &image);
    assert_eq!(
        winre(&before["installs"][0]["findings"]),
        expected,
        "{before}"
    );
    let done = json(&["fix", "--in-place", "--json", "-t", "kvm-sata"], &image);
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(
        done["installs"][0]["after"], "boots-with-warnings",
        "{done}"
    );
    assert_eq!(winre(&done["installs"][0]["remaining"]), expected, "{done}");
    let after = json(&["check", "--json", "-t", "kvm-sata"], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots-with-warnings");
    assert_eq!(
        winre(&after["installs"][0]["findings"]),
        expected,
        "{after}"
    );
}

/// A dry run whose staged image would still not boot says that a fix in place would refuse.
#[test]
fn a_dry_run_that_would_not_boot_says_in_place_would_refuse() {
    let image = common::windows_image("xp-stdpc");
    let dry = json(&["fix", "--dry-run", "--json", "-t", "kvm-sata"], &image);
    assert_ne!(dry["installs"][0]["after"], "boots", "{dry}");
    assert_ne!(dry["installs"][0]["after"], "boots-with-warnings", "{dry}");
    let why = dry["not_committed"].as_str().unwrap();
    assert!(why.contains("--in-place would refuse"), "{why}");
    let inplace_refusal = "the staged image still does not boot on kvm-sata";
    assert!(why.contains(inplace_refusal), "{why}");
}

/// The case: Windows 7 SP1 x64 from a UEFI machine restored onto a BIOS disk with a
/// System Reserved partition, its BCD still the UEFI machine's (boot manager on an ESP and
/// the loader on a GPT partition of another disk, winload.efi, winresume.efi, WinRE's
/// winload.efi). Check tells every error and warning up front; one `fix --in-place` makes
/// it boot; hivex reads the store back as the report says; undo restores the bytes.
#[test]
fn windows_7_with_a_uefi_made_bcd_on_a_bios_disk_boots_after_one_fix() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("win7-uefibcd.vhd");
    std::fs::copy(common::windows_image("win7-uefibcd"), &image).unwrap();
    let sha = common::sha256_file(&image);
    let before = json(&["check", "--json", "-t", "hyperv-gen1"], &image);
    assert_eq!(before["installs"][0]["verdict"], "no-boot", "{before}");
    let cases: Vec<String> = before["installs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "boot-config")
        .map(|f| format!("{}:{}", f["case"].as_str().unwrap(), f["fixable"]))
        .collect();
    for want in [
        "bcd-device:true",
        "winload-firmware:true",
        "other-loader:true",
    ] {
        assert!(
            cases.iter().any(|c| c == want),
            "{want} up front: {cases:?}"
        );
    }
    let done = json(
        &["fix", "--in-place", "--json", "-t", "hyperv-gen1"],
        &image,
    );
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(done["rounds"], 1, "{done}");
    assert_eq!(done["installs"][0]["after"], "boots", "{done}");
    let after = json(&["check", "--json", "-t", "hyperv-gen1"], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{after}");
    assert_eq!(
        after["installs"][0]["findings"].as_array().unwrap().len(),
        0,
        "{after}"
    );
    if common::have_tool("hivexget") && common::have_tool("ntfscat") && common::have_tool("sfdisk")
    {
        // The System Reserved partition (the second), cut out without rehost.
        let (vol, _) = common::partition_file(&image, 2, dir.path());
        let bcd = dir.path().join("BCD");
        std::fs::write(
            &bcd,
            common::run(Command::new("ntfscat").arg(&vol).arg("/Boot/BCD")),
        )
        .unwrap();
        let get = |object: &str, element: &str| -> String {
            let key = format!("\\Objects\\{object}\\Elements\\{element}");
            let out = common::run(Command::new("hivexget").arg(&bcd).arg(&key).arg("Element"));
            String::from_utf8_lossy(&out).trim().to_string()
        };
        assert_eq!(
            get("{11111111-2222-4333-8444-555555555555}", "12000002"),
            "\\Windows\\system32\\winload.exe"
        );
        assert_eq!(
            get("{77777777-1111-4222-8333-444444444444}", "12000002"),
            "\\Windows\\system32\\winresume.exe"
        );
        assert_eq!(
            get("{77777777-1111-4222-8333-555555555555}", "12000002"),
            "\\windows\\system32\\winload.exe"
        );
    }
    let undo = rehost().arg("undo").arg(&image).output().unwrap();
    assert_eq!(undo.status.code(), Some(0), "{undo:?}");
    assert_eq!(common::sha256_file(&image), sha, "undo restores the bytes");
}
