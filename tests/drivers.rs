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

/// A one-driver INF for virtio-blk on Windows 7 x64 whose binary is `binary`
/// (ServiceBinary), listed in SourceDisksFiles as `file` on disk 1 in `subdir`, disk 1's
/// path being `disk_path`.
fn crafted_inf(binary: &str, disk_path: &str, file: &str, subdir: &str) -> String {
    format!(
        "[Version]\r\nSignature = \"$Windows NT$\"\r\nClass = SCSIAdapter\r\n\
         ClassGuid = {{4D36E97B-E325-11CE-BFC1-08002BE10318}}\r\nProvider = Test\r\n\
         DriverVer = 08/12/2024,1.0.0.0\r\n\r\n\
         [SourceDisksNames]\r\n1 = \"Disk\",,,\"{disk_path}\"\r\n\r\n\
         [SourceDisksFiles]\r\n{file} = 1,{subdir}\r\n\r\n\
         [Manufacturer]\r\nTest = Models, NTamd64.6.1\r\n\r\n\
         [Models.NTamd64.6.1]\r\nBlk = inst, PCI\\VEN_1AF4&DEV_1001\r\n\r\n\
         [inst.NTamd64]\r\nCopyFiles = files\r\n\r\n[files]\r\nviostor.sys\r\n\r\n\
         [inst.NTamd64.Services]\r\nAddService = viostor, 2, svc\r\n\r\n\
         [svc]\r\nServiceType = 1\r\nStartType = 0\r\nErrorControl = 1\r\n\
         ServiceBinary = {binary}\r\n"
    )
}

#[test]
fn an_inf_naming_files_outside_its_folder_is_refused_and_nothing_there_is_taken() {
    let dev = &virtio_blk()[0];
    let t = target("amd64", 6, 1, 7601);
    let sys = std::fs::read(tree().join("viostor/w7/amd64/viostor.sys")).unwrap();
    // root/viostor.sys lies outside the driver folder root/drivers/pkg, two levels up;
    // root/drivers/pkg/up/viostor.sys inside it.
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("drivers/pkg");
    std::fs::create_dir_all(folder.join("up")).unwrap();
    std::fs::write(root.path().join("viostor.sys"), &sys).unwrap();
    std::fs::write(folder.join("up/viostor.sys"), &sys).unwrap();
    assert!(
        folder.join("../../viostor.sys").is_file(),
        "a naive join finds it"
    );
    let abs = root.path().display().to_string();
    let found = |inf: &str| {
        std::fs::write(folder.join("crafted.inf"), inf).unwrap();
        let mut skipped = Vec::new();
        let pkgs = drivers::find_packages(&folder, &t, dev, &mut skipped).unwrap();
        (pkgs, skipped)
    };
    // The same INF with a subdirectory inside the folder finds the binary there.
    let (pkgs, skipped) = found(&crafted_inf(r"%12%\viostor.sys", "", "viostor.sys", "up"));
    assert_eq!(pkgs.len(), 1, "{skipped:?}");
    assert_eq!(pkgs[0].binary.0, folder.join("up/viostor.sys"));
    assert_eq!(pkgs[0].service.source, r"up\viostor.sys");
    for (inf, offending) in [
        (
            crafted_inf(r"%12%\viostor.sys", "", "viostor.sys", r"..\.."),
            r"viostor.sys's subdirectory `..\..` climbs out of its directory",
        ),
        (
            crafted_inf(r"%12%\viostor.sys", "", "viostor.sys", "../.."),
            "viostor.sys's subdirectory `../..` climbs out",
        ),
        (
            crafted_inf(r"%12%\viostor.sys", r"..\..", "viostor.sys", ""),
            r"disk 1's path `..\..` climbs out",
        ),
        (
            crafted_inf(r"%12%\viostor.sys", &abs, "viostor.sys", ""),
            &format!("disk 1's path `{abs}` is an absolute path"),
        ),
        (
            crafted_inf(r"%12%\viostor.sys", r"C:\drivers", "viostor.sys", ""),
            r"`C:\drivers` names a drive",
        ),
        (
            crafted_inf(r"%12%\viostor.sys", r"\\?\C:\", "viostor.sys", ""),
            r"`\\?\C:\` is an absolute path",
        ),
        (
            crafted_inf(
                r"%12%\viostor.sys",
                r"\\.\PhysicalDrive0",
                "viostor.sys",
                "",
            ),
            r"`\\.\PhysicalDrive0` is an absolute path",
        ),
        (
            crafted_inf(r"%12%\viostor.sys", "", r"..\..\viostor.sys", ""),
            r"SourceDisksFiles: the file name `..\..\viostor.sys` climbs out",
        ),
        (
            crafted_inf(r"%12%\..\..\viostor.sys", "", "viostor.sys", ""),
            r"ServiceBinary %12%\..\..\viostor.sys: `..\..\viostor.sys` climbs out",
        ),
        (
            crafted_inf(r"..\..\viostor.sys", "", "viostor.sys", ""),
            r"ServiceBinary ..\..\viostor.sys: `..\..\viostor.sys` climbs out",
        ),
        (
            crafted_inf(r"%12%\NUL.sys", "", "viostor.sys", ""),
            r"ServiceBinary %12%\NUL.sys: `NUL.sys` names a device",
        ),
        (
            crafted_inf(r"NUL.sys", "", "NUL.sys", ""),
            "the file name `NUL.sys` names a device",
        ),
    ] {
        let (pkgs, skipped) = found(&inf);
        assert!(
            pkgs.is_empty(),
            "{offending}: taken from {:?}",
            pkgs[0].binary.0
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(
            skipped[0].contains(&folder.join("crafted.inf").display().to_string())
                && skipped[0].contains(offending),
            "{offending}: {skipped:?}"
        );
    }
    // An INF whose own file name (on a host that allows `\` in one) would climb out of the
    // driver store's folder in the image is refused too.
    std::fs::remove_file(folder.join("crafted.inf")).unwrap();
    let inf = crafted_inf(r"%12%\viostor.sys", "", "viostor.sys", "up");
    std::fs::write(folder.join(r"..\evil.inf"), inf).unwrap();
    let mut skipped = Vec::new();
    assert!(drivers::find_packages(&folder, &t, dev, &mut skipped)
        .unwrap()
        .is_empty());
    assert!(
        skipped.len() == 1 && skipped[0].contains(r"the INF's file name `..\evil.inf` climbs out"),
        "{skipped:?}"
    );
}
