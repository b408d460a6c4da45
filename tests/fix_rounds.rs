//! One `fix` call reaches what two calls used to: a repair can bring to light a finding
//! another one hid, and fix checks the staged image again and repairs what it finds new, in
//! rounds. The case: Server 2019 whose BCD entry names a partition of another disk *and*
//! loads winload.exe on a UEFI disk. While the entry names no partition of this disk, the
//! boot-config check says only that; once the device is mapped, the loader is the next
//! error. One `fix --in-place` writes both and the image checks as booting.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn rehost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
}

fn json(args: &[&str], image: &Path) -> Value {
    let out = rehost().args(args).arg(image).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "rehost {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const LOADER: &str =
    "HKLM\\BCD00000000\\Objects\\{66666666-7777-4888-8999-aaaaaaaaaaaa}\\Elements\\12000002";

#[test]
fn a_loader_hidden_behind_a_foreign_device_is_fixed_in_the_same_call() {
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

    let done = json(
        &["fix", "--in-place", "--json", "-t", "hyperv-gen2"],
        &image,
    );
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(done["rounds"], 2, "{done}");
    assert_eq!(done["installs"][0]["after"], "boots", "{done}");
    let changes = done["installs"][0]["changes"].as_array().unwrap();
    let round = |n: u64| -> Vec<&Value> { changes.iter().filter(|c| c["round"] == n).collect() };
    assert!(
        round(1).iter().any(
            |c| c["rule"] == "boot-config" && c["why"].as_str().unwrap().contains("partitions")
        ),
        "round 1 maps the device: {done}"
    );
    assert!(
        round(2)
            .iter()
            .any(|c| c["rule"] == "boot-config"
                && c["diff"].as_str().unwrap().contains("winload.efi")),
        "round 2 gives the UEFI loader: {done}"
    );

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
