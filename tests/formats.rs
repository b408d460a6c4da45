//! The format parsers against outside readers and real data: hives (hivexget), dirty and
//! broken hives, BCD stores written by Windows, PE images built by mingw (objdump).

mod common;

use rehost::formats::bcd::{self, Device, Element, PartitionRef};
use rehost::formats::hive::{Hive, Value};
use rehost::formats::pe;
use rehost::{Ctx, Layer};
use std::process::Command;

fn hive(name: &str) -> rehost::Result<Hive> {
    let bytes = std::fs::read(common::fixture(name)).unwrap();
    Hive::parse(bytes, Ctx::new(name, Layer::Hive))
}

#[test]
fn windows_7_system_hive_reads_like_hivexget() {
    let h = hive("hives/regipy/SYSTEM.xz").unwrap();
    assert!(h.dirty().is_none());
    let cases = [
        ("Select", "Current"),
        ("Select", "LastKnownGood"),
        (
            "ControlSet001\\Control\\ComputerName\\ComputerName",
            "ComputerName",
        ),
        ("ControlSet001\\Services\\atapi", "Start"),
        ("ControlSet001\\Services\\msahci", "Start"),
        ("ControlSet001\\Services\\msahci", "ImagePath"),
        ("ControlSet001\\Services\\intelide", "Group"),
        (
            "ControlSet001\\Control\\Session Manager\\Environment",
            "PROCESSOR_ARCHITECTURE",
        ),
    ];
    let oracle = common::have_tool("hivexget");
    let path = common::fixture("hives/regipy/SYSTEM.xz");
    for (key, name) in cases {
        let v = h
            .value(key, name)
            .unwrap()
            .unwrap_or_else(|| panic!("{key}\\{name} missing"));
        let ours = match &v {
            Value::String(s) => s.clone(),
            Value::Dword(d) => d.to_string(),
            other => panic!("{key}\\{name}: {other:?}"),
        };
        if oracle {
            let theirs = String::from_utf8(common::run(
                Command::new("hivexget").arg(&path).arg(key).arg(name),
            ))
            .unwrap();
            assert_eq!(ours, theirs.trim_end(), "{key}\\{name}");
        }
    }
    // Case-insensitive paths, and absent keys are None, not errors.
    assert_eq!(
        h.string(
            "controlset001\\CONTROL\\computername\\computername",
            "ComputerName"
        )
        .unwrap()
        .as_deref(),
        Some("WKS-WIN732BITA")
    );
    assert_eq!(
        h.value("ControlSet001\\Services\\viostor", "Start")
            .unwrap(),
        None
    );
    assert!(h.subkeys("ControlSet001\\Services").unwrap().len() > 400);
    let md = h
        .value("MountedDevices", "\\DosDevices\\C:")
        .unwrap()
        .unwrap();
    assert_eq!(
        md.as_bytes().unwrap(),
        &[0x3e, 0xa0, 0xbe, 0x5c, 0, 0, 0x10, 0, 0, 0, 0, 0]
    );
}

#[test]
fn a_dirty_hive_is_read_and_said_to_be_dirty() {
    let h = hive("hives/regipy/SYSTEM_B.xz").unwrap();
    let why = h.dirty().expect("SYSTEM_B is dirty");
    assert!(why.contains("1622") && why.contains("1621"), "{why}");
    assert_eq!(h.number("Select", "Current").unwrap(), Some(1));
    assert_eq!(
        h.number("ControlSet001\\Services\\storahci\\StartOverride", "0")
            .unwrap(),
        Some(3)
    );
}

#[test]
fn broken_hives_give_errors_not_panics() {
    for name in [
        "TruncatedHive",
        "GarbageHive",
        "BadListHive",
        "BadSubkeyHive",
        "EmptyHive",
    ] {
        match hive(&format!("hives/yarp/{name}.zst")) {
            Err(e) => assert!(e.to_string().contains("hive"), "{name}: {e}"),
            Ok(h) => {
                // Opened: walking it must still end in answers or errors.
                let mut stack = vec![String::new()];
                let mut seen = 0;
                while let Some(k) = stack.pop() {
                    seen += 1;
                    assert!(seen < 100_000, "{name}: walk does not end");
                    let _ = h.values(&k);
                    if let Ok(subs) = h.subkeys(&k) {
                        stack.extend(subs.into_iter().map(|s| {
                            if k.is_empty() {
                                s
                            } else {
                                format!("{k}\\{s}")
                            }
                        }));
                    }
                }
            }
        }
    }
    let e = Hive::parse(vec![0u8; 100], Ctx::new("tiny", Layer::Hive))
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("tiny: hive"), "{e}");
}

#[test]
fn a_uefi_bcd_store_decodes_its_devices() {
    let h = hive("hives/regipy/BCD.xz").unwrap();
    let objs = bcd::objects(&h).unwrap();
    let loader = objs
        .iter()
        .find(|o| {
            o.kind == 0x1020_0003
                && o.element(0x1200_0004) == Some(&Element::String("Windows 10".into()))
        })
        .unwrap();
    assert_eq!(
        loader.element(0x1200_0002),
        Some(&Element::String("\\Windows\\system32\\winload.efi".into()))
    );
    match loader.element(0x2100_0001) {
        Some(Element::Device(Device::Partition {
            partition: PartitionRef::Gpt { disk, partition },
        })) => {
            assert_eq!(disk, "0b2394a9-095e-487d-8d48-719ecd4d78ca");
            assert_eq!(partition, "8e0f2c38-e4ea-47ba-b7fc-9d8c74dccf0b");
        }
        other => panic!("osdevice: {other:?}"),
    }
    let winre = objs
        .iter()
        .find(|o| {
            o.element(0x1200_0004) == Some(&Element::String("Windows Recovery Environment".into()))
        })
        .unwrap();
    match winre.element(0x1100_0001) {
        Some(Element::Device(Device::Ramdisk {
            partition: Some(PartitionRef::Gpt { .. }),
            path,
        })) => {
            assert_eq!(path, "\\Recovery\\WindowsRE\\Winre.wim")
        }
        other => panic!("WinRE device: {other:?}"),
    }
    let media = hive("hives/registry-ez/BCD-install-media").unwrap();
    let objs = bcd::objects(&media).unwrap();
    assert!(objs.iter().any(|o| o.id == bcd::BOOTMGR));
    // The memory tester on install media loads from the boot device.
    let memdiag = objs
        .iter()
        .find(|o| o.id == "{b2721d73-1db4-4c62-bf78-c548a880142d}")
        .unwrap();
    assert_eq!(
        memdiag.element(0x1100_0001),
        Some(&Element::Device(Device::Boot))
    );
}

#[test]
fn pe_version_resources_of_mingw_builds() {
    for tool in [
        "i686-w64-mingw32-gcc",
        "x86_64-w64-mingw32-gcc",
        "x86_64-w64-mingw32-objdump",
    ] {
        if !common::have_tool(tool) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let script = common::root().join("scripts/fixtures/mkpe.sh");
    for (arch, original, version, export) in [
        ("x86", "halmacpi.dll", "5.2.3790.3959", "HalInitSystem"),
        ("x64", "ntkrnlmp.exe", "10.0.17763.1", "KeBugCheckEx"),
    ] {
        let out = dir.path().join(original);
        common::run(
            Command::new(&script)
                .arg(&out)
                .args([arch, original, version, export, "lab.123"]),
        );
        let bytes = std::fs::read(&out).unwrap();
        let info = pe::parse(&bytes, &Ctx::new("pe", Layer::Pe), original).unwrap();
        assert_eq!(info.machine, arch);
        assert_eq!(info.subsystem, "native");
        assert_eq!(info.exports, vec![export.to_string()]);
        let v = info.version.unwrap();
        assert_eq!(v.original_filename.as_deref(), Some(original));
        assert_eq!(v.file_version.as_deref(), Some(version));
        assert_eq!(
            v.file_version_string.as_deref(),
            Some(format!("{version} (lab.123)").as_str())
        );
        assert_eq!(
            v.build(),
            version.split('.').nth(2).and_then(|b| b.parse().ok())
        );
        let dump = String::from_utf8(common::run(
            Command::new("x86_64-w64-mingw32-objdump")
                .arg("-f")
                .arg(&out),
        ))
        .unwrap();
        let want = if arch == "x86" {
            "pei-i386"
        } else {
            "pei-x86-64"
        };
        assert!(dump.contains(want), "{dump}");
    }
    let e = pe::parse(b"MZ not really", &Ctx::new("pe", Layer::Pe), "bad.dll").unwrap_err();
    assert!(e.to_string().contains("bad.dll"), "{e}");
}
