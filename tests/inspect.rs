//! `rehost inspect` on the phony installs of testdata/windows: every planted fact is
//! reported, the product, version, build, architecture, host name and C: volume agree with
//! dissect.target, images are left untouched, and many images run together.

mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const IMAGES: [&str; 10] = [
    "w2k-sp4",
    "xp-sp3",
    "w2k3-sp2",
    "w2k3-restored",
    "xp-mismatch",
    "win7",
    "win10-dirty",
    "ws2016",
    "ws2019",
    "win11",
];

fn spec(name: &str) -> Value {
    let text =
        std::fs::read_to_string(common::root().join(format!("testdata/windows/{name}.json")))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn image(name: &str) -> PathBuf {
    let s = spec(name);
    common::fixture(&format!("windows/{}.zst", s["image"].as_str().unwrap()))
}

fn rehost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .output()
        .unwrap()
}

fn inspect(name: &str) -> Value {
    let p = image(name);
    let out = rehost(&["inspect", "--json", p.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn every_planted_fact_is_reported() {
    for name in IMAGES {
        let want = spec(name);
        let r = inspect(name);
        assert!(
            r["errors"].as_array().unwrap().is_empty(),
            "{name}: {}",
            r["errors"]
        );
        let installs = r["installs"].as_array().unwrap();
        assert_eq!(installs.len(), 1, "{name}");
        let i = &installs[0];
        assert_eq!(s(&i["system_root"]), s(&want["root"]), "{name}");
        let product = want.get("report_product").unwrap_or(&want["product"]);
        assert_eq!(&i["product_name"], product, "{name}");
        assert_eq!(i["version"], want["version"], "{name}");
        assert_eq!(i["build"], want["build"], "{name}");
        assert_eq!(i["arch"], want["arch"], "{name}");
        assert_eq!(i["hostname"], want["host"], "{name}");
        assert_eq!(
            i["service_pack"],
            want.get("sp").cloned().unwrap_or(Value::Null),
            "{name}"
        );
        if let Some(ubr) = want.get("ubr") {
            assert_eq!(&i["ubr"], ubr, "{name}");
        }
        // HAL and kernels as planted.
        assert_eq!(i["hal"]["original_filename"], want["hal"][0], "{name}");
        assert_eq!(i["hal"]["file_version"], want["hal"][1], "{name}");
        assert_eq!(i["hal"]["hardware_id"], want["hwid"], "{name}");
        for k in i["kernels"].as_array().unwrap() {
            let planted = &want["kernels"][s(&k["file"])];
            assert_eq!(k["original_filename"], planted[0], "{name} {}", k["file"]);
            assert_eq!(k["file_version"], planted[1], "{name} {}", k["file"]);
        }
        assert_eq!(
            i["kernels"].as_array().unwrap().len(),
            want["kernels"].as_object().unwrap().len(),
            "{name}"
        );
        assert_eq!(i["versions"]["kernel32"], want["kernel32"], "{name}");
        assert_eq!(i["versions"]["ntdll"], want["ntdll"], "{name}");
        // Control sets, boot entry, drive letter.
        assert_eq!(i["control_sets"]["current"], 1, "{name}");
        let boot = i["boot"]["entries"].as_array().unwrap();
        assert!(
            boot.iter().any(|b| b["default"] == true),
            "{name}: no default boot entry starts it: {boot:?}"
        );
        let expected_store = if want["layout"] == "nt5" {
            "boot.ini"
        } else {
            "bcd"
        };
        assert_eq!(boot[0]["store"], expected_store, "{name}");
        let system_volume = &i["boot"]["system_volume"];
        match want["layout"].as_str().unwrap() {
            "nt5" => assert_eq!(system_volume, 1, "{name}: boot.ini sits on C:"),
            "bios-bcd" => assert_eq!(system_volume, 2, "{name}: System Reserved"),
            _ => assert_eq!(system_volume, 1, "{name}: the ESP"),
        }
        // Storage services of the current control set, as planted.
        let current = i["control_sets"]["current"].as_u64().unwrap();
        for (svc, start) in want["services"].as_object().unwrap() {
            let found =
                i["services"].as_array().unwrap().iter().find(|x| {
                    x["control_set"] == current && s(&x["name"]).eq_ignore_ascii_case(svc)
                });
            match found {
                Some(x) => assert_eq!(&x["start"], start, "{name}: {svc} Start"),
                None => assert!(
                    !["controller", "stack"].contains(&svc.as_str()),
                    "{name}: service {svc} not reported"
                ),
            }
        }
        // Hives.
        let hives: Vec<&str> = i["hives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| s(&h["name"]))
            .collect();
        assert!(
            hives.contains(&"SYSTEM") && hives.contains(&"SOFTWARE"),
            "{name}: {hives:?}"
        );
    }
}

#[test]
fn each_fault_is_flagged_and_the_clean_ones_are_not() {
    let flags = |name: &str| -> Vec<String> {
        inspect(name)["installs"][0]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| s(f).to_string())
            .collect()
    };
    for clean in [
        "w2k-sp4", "xp-sp3", "w2k3-sp2", "win7", "ws2016", "ws2019", "win11",
    ] {
        assert_eq!(flags(clean), Vec::<String>::new(), "{clean}");
    }
    let restored = flags("w2k3-restored");
    assert!(
        restored.iter().any(|f| f.contains("version skew")
            && f.contains("the HAL (hal.dll, halaacpi.dll)")
            && f.contains("kernel32.dll and ntdll.dll 5.2.3790.3959")),
        "{restored:?}"
    );
    let r = inspect("xp-mismatch");
    let i = &r["installs"][0];
    assert_eq!(i["hal"]["agrees"], false);
    assert!(i["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["matches_hal"] == false));
    let dirty = inspect("win10-dirty");
    let i = &dirty["installs"][0];
    let system = i["hives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "SYSTEM")
        .unwrap();
    assert_eq!(system["dirty"], true);
    assert_eq!(
        system["logs"],
        serde_json::json!(["SYSTEM.LOG1", "SYSTEM.LOG2"])
    );
    // Its MountedDevices come from the machine it was taken from: C: names another disk.
    assert_eq!(i["system_letter"], Value::Null);
    let c = i["mounted_devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "\\DosDevices\\C:")
        .unwrap();
    assert_eq!(c["volume"], Value::Null);
    // StartOverride on Windows 10: storahci is Start 0 but overridden.
    let storahci = i["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "storahci")
        .unwrap();
    assert_eq!(storahci["start"], 0);
    assert!(!storahci["start_override"].as_array().unwrap().is_empty());
    // Windows 7: the real hive's C: is the MBR signature and offset of this disk.
    let w7 = inspect("win7");
    assert_eq!(w7["installs"][0]["system_letter"], "C:");
    assert_eq!(w7["disk_signature"], "5cbea03e");
    let store = w7["boot_stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "bcd")
        .unwrap();
    assert_eq!(store["volume"], 2, "the BCD is on System Reserved");
    assert_eq!(store["bootmgr_device"]["volume"], 2);
    assert_eq!(store["entries"][0]["os_device"]["volume"], 1);
    assert_eq!(
        store["entries"][0]["path"],
        "\\Windows\\system32\\winload.exe"
    );
}

/// dissect.target's osinfo, and the volume it mounts as c:, for comparison.
fn dissect(image: &PathBuf) -> Value {
    let script = r#"
import json, sys
from dissect.target import Target
t = Target.open(sys.argv[1])
fs = t.fs.mounts.get("c:")
vol = getattr(fs, "volume", None)
print(json.dumps({"version": t.version, "hostname": t.hostname, "architecture": t.architecture,
                  "c_offset": getattr(vol, "offset", None)}))
"#;
    let out = common::run(Command::new("python3").args(["-c", script]).arg(image));
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn identity_and_c_drive_agree_with_dissect_target() {
    if !common::have_python_module("dissect.target") {
        return;
    }
    for name in IMAGES {
        let p = image(name);
        let theirs = dissect(&p);
        let ours = inspect(name);
        let i = &ours["installs"][0];
        // "Windows 7 Professional (NT 6.1) 7601 Service Pack 1", "... (NT 10.0) 17763.5458"
        let version = s(&theirs["version"]);
        let (product, rest) = version.split_once(" (NT ").unwrap();
        let (nt, rest) = rest.split_once(") ").unwrap();
        let build: u64 = rest.split(['.', ' ']).next().unwrap().parse().unwrap();
        assert_eq!(s(&i["product_name"]), product, "{name}");
        assert_eq!(s(&i["version"]), nt, "{name}");
        assert_eq!(i["build"].as_u64().unwrap(), build, "{name}");
        if let Some(sp) = i["service_pack"].as_str() {
            assert!(version.ends_with(sp), "{name}: {version}");
        }
        let arch = match s(&theirs["architecture"]) {
            a if a.starts_with("amd64") => "x64",
            a if a.starts_with("x86_32") => "x86",
            a => a,
        };
        assert_eq!(s(&i["arch"]), arch, "{name}");
        assert_eq!(i["hostname"], theirs["hostname"], "{name}");
        let volume = i["volume"].as_u64().unwrap();
        let offset = ours["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["index"] == volume)
            .unwrap()["offset"]
            .clone();
        if i["system_letter"] == "C:" {
            assert_eq!(
                theirs["c_offset"], offset,
                "{name}: C: is another volume for dissect"
            );
        } else {
            // rehost found no letter for the install (its MountedDevices name another disk);
            // dissect then mounts the system volume as c: by itself.
            assert_eq!(name, "win10-dirty");
            assert_eq!(theirs["c_offset"], offset);
        }
    }
}

#[test]
fn inspect_is_read_only() {
    for name in ["win7", "ws2019", "w2k3-restored"] {
        let p = image(name);
        let before = common::sha256_file(&p);
        let _ = inspect(name);
        assert_eq!(common::sha256_file(&p), before, "{name} changed");
    }
}

#[test]
fn many_images_one_bad_one_json_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.vhdx");
    std::fs::write(&bad, b"vhdxfile but nothing else").unwrap();
    let mut args = vec![
        "inspect".to_string(),
        "--jsonl".into(),
        "-j".into(),
        "2".into(),
    ];
    for name in IMAGES {
        args.push(image(name).display().to_string());
    }
    args.push(bad.display().to_string());
    let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed image makes the exit code 1"
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), IMAGES.len() + 1);
    let failed: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("installs").is_none())
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        s(&failed[0]["errors"][0]).contains("bad.vhdx: vhdx"),
        "{}",
        failed[0]
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["installs"].as_array().is_some_and(|a| a.len() == 1))
            .count(),
        IMAGES.len()
    );
    // The text summary names what matters.
    let w7 = image("win7");
    let out = rehost(&["inspect", w7.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Windows 7 Professional",
        "x86",
        "HAL halmacpi.dll",
        "C: is this volume",
        "msahci demand",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    assert_eq!(rehost(&["inspect"]).status.code(), Some(2));
}
