//! Boot storage drivers from a virtio-win-like folder (testdata/drivers, built by
//! scripts/fixtures/drivers.sh): the package chosen for each Windows, and the registry
//! edits that register it, against what virt-v2v writes for the same case, applied to the
//! real Windows 7 SYSTEM hive and read back by hivexget.

mod common;

use rehost::formats::inf::Target;
use rehost::formats::regf::regtext::Op;
use rehost::windows::drivers::{self, PciDevice};
use rehost::windows::registry;
use std::process::Command;

fn tree() -> std::path::PathBuf {
    common::root().join("testdata/drivers/virtio-win")
}

fn target(arch: &str, major: u32, minor: u32, build: u32) -> Target {
    Target {
        arch: arch.into(),
        major,
        minor,
        build,
        product_type: 1,
    }
}

/// virtio-blk as QEMU presents it: the legacy (transitional) and the modern function.
fn virtio_blk() -> Vec<PciDevice> {
    vec![
        PciDevice {
            vendor: 0x1af4,
            device: 0x1001,
            subsystem: Some(0x0002_1af4),
            revision: Some(0),
            class: 0x010000,
        },
        PciDevice {
            vendor: 0x1af4,
            device: 0x1042,
            subsystem: Some(0x1100_1af4),
            revision: Some(1),
            class: 0x010000,
        },
    ]
}

fn rel(p: &std::path::Path) -> String {
    p.strip_prefix(tree()).unwrap().display().to_string()
}

#[test]
fn the_package_follows_the_windows_version_and_architecture() {
    let dev = &virtio_blk()[0];
    let mut skipped = Vec::new();
    let pick = |t: Target, skipped: &mut Vec<String>| {
        drivers::find_packages(&tree(), &t, dev, skipped)
            .unwrap()
            .into_iter()
            .map(|p| rel(&p.inf_path))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pick(target("x86", 5, 2, 3790), &mut skipped),
        ["viostor/2k3/x86/viostor.inf"]
    );
    assert_eq!(
        pick(target("x86", 6, 1, 7601), &mut skipped),
        ["viostor/w7/x86/viostor.inf", "viostor/2k3/x86/viostor.inf"]
    );
    assert_eq!(
        pick(target("amd64", 6, 1, 7601), &mut skipped),
        ["viostor/w7/amd64/viostor.inf"]
    );
    assert_eq!(
        pick(target("amd64", 10, 0, 19045), &mut skipped),
        [
            "viostor/w10/amd64/viostor.inf",
            "viostor/w7/amd64/viostor.inf"
        ]
    );
    assert!(skipped.is_empty(), "{skipped:?}");
    // The ID matched is the most specific the device has.
    let p =
        &drivers::find_packages(&tree(), &target("x86", 6, 1, 7601), dev, &mut skipped).unwrap()[0];
    assert_eq!(p.match_rank, 0);
    assert_eq!(p.service.name, "viostor");
    // A binary built for the wrong machine is refused, and said so.
    let dir = tempfile::tempdir().unwrap();
    let w7 = tree().join("viostor/w7/amd64");
    std::fs::copy(w7.join("viostor.inf"), dir.path().join("viostor.inf")).unwrap();
    std::fs::copy(
        tree().join("viostor/w7/x86/viostor.sys"),
        dir.path().join("VIOSTOR.SYS"),
    )
    .unwrap();
    let mut why = Vec::new();
    assert!(
        drivers::find_packages(dir.path(), &target("amd64", 6, 1, 7601), dev, &mut why)
            .unwrap()
            .is_empty()
    );
    assert!(why[0].contains("built for x86"), "{why:?}");
}

fn sets(ops: &[Op]) -> Vec<(String, String, u32, Vec<u8>)> {
    let mut key = String::new();
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Key(k) => key = k.to_ascii_lowercase(),
            Op::Set { name, kind, data } => {
                out.push((key.clone(), name.to_ascii_lowercase(), *kind, data.clone()))
            }
            _ => {}
        }
    }
    out
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

#[test]
fn windows_7_registration_holds_what_virt_v2v_writes_and_hivex_reads_it_back() {
    let t = target("x86", 6, 1, 7601);
    let devices = virtio_blk();
    let mut skipped = Vec::new();
    let pkg = drivers::find_packages(&tree(), &t, &devices[0], &mut skipped)
        .unwrap()
        .remove(0);
    let inj = drivers::plan(&pkg, &t, "\\Windows", &devices);
    assert_eq!(inj.files[0].0, "\\Windows\\System32\\drivers\\viostor.sys");
    assert_eq!(
        inj.files[0].1,
        std::fs::read(tree().join("viostor/w7/x86/viostor.sys")).unwrap()
    );
    assert!(inj.label.is_none(), "Windows 7 has no DriverDatabase");
    let ours = sets(&inj.ops);
    // What virt-v2v's inject_virtio_win writes for viostor on Windows 7 (facts from
    // libguestfs-common mlcustomize/inject_virtio_win.ml): the service key, and one
    // CriticalDeviceDatabase key per PCI ID it knows.
    let svc = "hkey_local_machine\\system\\currentcontrolset\\services\\viostor";
    let cddb = "hkey_local_machine\\system\\currentcontrolset\\control\\criticaldevicedatabase\\";
    let scsi = "{4D36E97B-E325-11CE-BFC1-08002BE10318}";
    let mut want = vec![
        (
            svc.to_string(),
            "type".to_string(),
            4,
            1u32.to_le_bytes().to_vec(),
        ),
        (svc.into(), "start".into(), 4, 0u32.to_le_bytes().to_vec()),
        (svc.into(), "group".into(), 1, utf16z("SCSI miniport")),
        (
            svc.into(),
            "errorcontrol".into(),
            4,
            1u32.to_le_bytes().to_vec(),
        ),
        (
            svc.into(),
            "imagepath".into(),
            2,
            utf16z("system32\\drivers\\viostor.sys"),
        ),
    ];
    for id in [
        "pci#ven_1af4&dev_1001&rev_00",
        "pci#ven_1af4&dev_1042&rev_01",
    ] {
        want.push((
            format!("{cddb}{id}"),
            "service".into(),
            1,
            utf16z("viostor"),
        ));
        want.push((format!("{cddb}{id}"), "classguid".into(), 1, utf16z(scsi)));
    }
    for w in &want {
        assert!(ours.contains(w), "missing {w:?}");
    }
    // Applied to the real Windows 7 SYSTEM hive in every control set Select names.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SYSTEM");
    std::fs::copy(common::fixture("hives/regipy/SYSTEM.xz"), &path).unwrap();
    let hive = registry::open_host(&path).unwrap();
    let map = hive.mapping(None, true).unwrap();
    assert_eq!(map.control_sets, [1, 2]);
    let edited = registry::edit(&hive, &inj.ops, &map).unwrap();
    registry::write_host(&path, &edited.bytes).unwrap();
    if !common::have_tool("hivexget") {
        return;
    }
    let get = |key: &str, value: &str| {
        let out = common::run(Command::new("hivexget").arg(&path).arg(key).arg(value));
        String::from_utf8(out).unwrap().trim_end().to_string()
    };
    for cs in ["ControlSet001", "ControlSet002"] {
        assert_eq!(get(&format!("\\{cs}\\Services\\viostor"), "Start"), "0");
        assert_eq!(
            get(&format!("\\{cs}\\Services\\viostor"), "ImagePath"),
            "system32\\drivers\\viostor.sys"
        );
        assert_eq!(
            get(
                &format!("\\{cs}\\Services\\viostor\\Parameters\\PnpInterface"),
                "5"
            ),
            "1"
        );
        let key = format!(
            "\\{cs}\\Control\\CriticalDeviceDatabase\\pci#ven_1af4&dev_1001&subsys_00021af4&rev_00"
        );
        assert_eq!(get(&key, "Service"), "viostor");
        assert_eq!(get(&key, "ClassGUID"), scsi);
    }
}

#[test]
fn windows_10_registration_goes_to_the_driver_database_with_a_proper_label() {
    let t = target("amd64", 10, 0, 19045);
    let devices = virtio_blk();
    let mut skipped = Vec::new();
    let pkg = drivers::find_packages(&tree(), &t, &devices[1], &mut skipped)
        .unwrap()
        .remove(0);
    let inj = drivers::plan(&pkg, &t, "\\Windows", &devices);
    let label = inj.label.clone().unwrap();
    assert!(
        label.starts_with("viostor.inf_amd64_") && label.len() == "viostor.inf_amd64_".len() + 16,
        "{label}"
    );
    assert!(!label.ends_with("_tmp"));
    let ours = sets(&inj.ops);
    let ddb = "hkey_local_machine\\system\\driverdatabase";
    let l = label.to_ascii_lowercase();
    for w in [
        (
            format!("{ddb}\\driverinffiles\\viostor.inf"),
            "active".to_string(),
            1,
            utf16z(&label),
        ),
        (
            format!("{ddb}\\deviceids\\pci\\ven_1af4&dev_1042&subsys_11001af4&rev_01"),
            "viostor.inf".into(),
            3,
            vec![1, 0xff, 0, 0],
        ),
    ] {
        assert!(ours.contains(&w), "missing {w:?}");
    }
    assert!(ours.iter().any(|(k, n, _, d)| k
        .starts_with(&format!("{ddb}\\driverpackages\\{l}\\configurations\\"))
        && n == "service"
        && *d == utf16z("viostor")));
    assert!(!ours
        .iter()
        .any(|(k, _, _, _)| k.contains("criticaldevicedatabase")));
    assert!(inj.files.iter().any(|(p, _)| p
        == &format!("\\Windows\\System32\\DriverStore\\FileRepository\\{label}\\viostor.inf")));
}
