//! What the firmware tests (BIOS to UEFI and back) share: fixtures copied to be written,
//! images as raw disks, and the parts of check and fix reports they read.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture `name` copied into `dir`, to be written.
pub fn copy(name: &str, dir: &Path) -> PathBuf {
    let src = super::windows_image(name);
    let dst = dir.join(src.file_name().unwrap());
    std::fs::copy(&src, &dst).unwrap();
    dst
}

/// The fixture `name` copied into `dir` with `edit` applied to its file.
pub fn edited(name: &str, dir: &Path, edit: impl FnOnce(&std::fs::File)) -> PathBuf {
    let image = copy(name, dir);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    edit(&f);
    image
}

/// The image as raw bytes: qemu-img for VHDX and raw; for a VHD, rehost's own reader
/// (`rehost convert`), since qemu-img takes the size of a VHD whose creator is qemu from
/// its CHS geometry, which cannot say the grown size exactly, where Hyper-V and rehost
/// take the footer's current size.
pub fn raw(image: &Path, out: &Path) {
    let _ = std::fs::remove_file(out);
    let fmt = match image.extension().and_then(|e| e.to_str()) {
        Some("vhd") => {
            super::run(super::rehost_command().arg("convert").arg(image).arg(out));
            return;
        }
        Some("vhdx") => "vhdx",
        _ => "raw",
    };
    super::run(
        Command::new("qemu-img")
            .args(["convert", "-f", fmt, "-O", "raw"])
            .arg(image)
            .arg(out),
    );
}

/// The firmware finding `case` of install 0.
pub fn firmware(check: &Value, case: &str) -> Value {
    check["installs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "firmware" && f["case"] == case)
        .cloned()
        .unwrap_or_else(|| panic!("no {case} finding: {check}"))
}

/// The changes of a fix report: (rule, kind, file, bytes, sha256).
pub fn changes(fix: &Value) -> Vec<(String, String, String, u64, String)> {
    fix["installs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (
                s("rule"),
                s("kind"),
                s("file"),
                c["bytes"].as_u64().unwrap_or(0),
                s("sha256"),
            )
        })
        .collect()
}

/// `len` bytes of the file `disk` at `offset`.
pub fn read(disk: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(disk).unwrap();
    let mut b = vec![0u8; len as usize];
    f.read_exact_at(&mut b, offset).unwrap();
    b
}

/// A MountedDevices value of `image`, from `rehost reg export` (hex, continued over lines).
pub fn mounted_value(image: &Path, name: &str) -> Vec<u8> {
    let text = String::from_utf8(super::run(
        super::rehost_command()
            .args(["reg", "export"])
            .arg(image)
            .arg("HKLM\\SYSTEM\\MountedDevices"),
    ))
    .unwrap()
    .replace('\r', "")
    .replace("\\\n  ", "");
    let key = format!("\"{}\"=hex:", name.replace('\\', "\\\\"));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("{name} not in {text}"));
    line.split(',')
        .map(|b| u8::from_str_radix(b.trim(), 16).unwrap())
        .collect()
}

/// `--firmware WAY` on generic-ahci, a target that starts both ways: the fixture (a copy in
/// `dir`) boots as it is by the profile's first way, needs the conversion by WAY (the
/// firmware finding `case`, fixable), boots by WAY after `fix --in-place`, and undo gives
/// it back byte for byte. Returns the copy.
pub fn converts_when_the_target_offers_both(
    fixture: &str,
    way: &str,
    case: &str,
    dir: &Path,
) -> PathBuf {
    let image = copy(fixture, dir);
    let sha = super::sha256_file(&image);
    let args = ["--json", "-t", "generic-ahci", "--firmware", way];
    let check = |image: &Path| {
        let mut a = vec!["check"];
        a.extend(args);
        super::json_report(&a, image)
    };
    let first = super::json_report(&["check", "--json", "-t", "generic-ahci"], &image);
    assert_eq!(first["installs"][0]["verdict"], "boots", "{first}");
    assert_eq!(firmware(&check(&image), case)["fixable"], true);
    let mut a = vec!["fix", "--in-place"];
    a.extend(args);
    let done = super::json_report(&a, &image);
    assert_eq!(done["committed"], true, "{done}");
    assert_eq!(check(&image)["installs"][0]["verdict"], "boots");
    super::run(super::rehost_command().arg("undo").arg(&image));
    assert_eq!(super::sha256_file(&image), sha);
    image
}

/// The firmware finding `case`'s reason for not fixing, on `image` for `target`.
pub fn refusal(image: &Path, target: &str, case: &str) -> String {
    let check = super::json_report(&["check", "--json", "-t", target], image);
    let f = firmware(&check, case);
    assert_eq!(f["fixable"], false, "{f}");
    f["cannot_fix"].as_str().unwrap_or_default().to_string()
}
