//! The Windows facts of `profiles/` held against what shows them: the real SYSTEM hives in
//! testdata/hives/regipy (Windows 7 SP1 x86 from a VMware VM, and Windows 10 1709 x64 read
//! after its logs are replayed), and `rehost check` on the phony installs, some with a
//! value planted by `rehost reg`.

mod common;

use rehost::formats::hive::{Hive, Value};
use rehost::rules::{self, InstallCheck, Severity, Target, Verdict};
use rehost::windows::knowledge::Knowledge;
use rehost::windows::registry;
use rehost::{Ctx, Layer};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A real SYSTEM hive, its logs replayed when it has any.
fn real_hive(name: &str, logs: &[&str]) -> Hive {
    for l in logs {
        common::fixture(&format!("hives/regipy/{l}.xz"));
    }
    let path = common::fixture(&format!("hives/regipy/{name}.xz"));
    let file = registry::open_host(&path).unwrap();
    Hive::parse(file.bytes, Ctx::new(name, Layer::File)).unwrap()
}

/// The Windows 7 SYSTEM hive.
fn windows7() -> Hive {
    real_hive("SYSTEM", &[])
}

/// The Windows 10 SYSTEM hive.
fn windows10() -> Hive {
    real_hive("SYSTEM_B", &["SYSTEM_B.LOG1", "SYSTEM_B.LOG2"])
}

fn string(h: &Hive, key: &str, value: &str) -> Option<String> {
    h.value(key, value)
        .unwrap()
        .and_then(|v| v.as_str().map(str::to_string))
}

/// A multi-string value, as its strings.
fn strings(h: &Hive, key: &str, value: &str) -> Vec<String> {
    match h.value(key, value).unwrap() {
        Some(Value::MultiString(v)) => v,
        other => panic!("{key} {value}: {other:?}"),
    }
}

fn target(name: &str) -> Target {
    common::target(name)
}

fn image(name: &str) -> PathBuf {
    common::windows_image(name)
}

fn check_on(image: &Path, t: Target) -> InstallCheck {
    let r = rules::check(image, &[t]).unwrap();
    assert_eq!(r.installs.len(), 1);
    r.installs.into_iter().next().unwrap()
}

/// `image` with DWORD and string values set by `rehost reg set`, as a new image in `dir`.
fn with_values(image: &Path, values: &[(&str, &str, &str, &str)], dir: &Path) -> PathBuf {
    let mut from = image.to_path_buf();
    for (n, (key, value, kind, data)) in values.iter().enumerate() {
        let ext = image.extension().unwrap().to_str().unwrap();
        let to = dir.join(format!("edited-{n}.{ext}"));
        let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
            .args(["reg", "set", from.to_str().unwrap(), key])
            .args(["--value", value, "--type", kind, "--data", data])
            .args(["--output", to.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        from = to;
    }
    from
}

#[test]
fn the_generic_processor_driver_is_the_service_windows_names_processor() {
    let k = Knowledge::builtin();
    let svc = k.service("Processor").expect("Processor in storage.toml");
    assert_eq!((svc.name.as_str(), svc.role.as_str()), ("Processor", "cpu"));
    // Every processor power driver rehost knows is a service of both real hives, under the
    // name storage.toml gives; none is called processr.
    for (which, hive) in [("Windows 7", windows7()), ("Windows 10", windows10())] {
        assert!(
            !hive.has_key("ControlSet001\\Services\\processr").unwrap(),
            "{which}"
        );
        for s in k.services.iter().filter(|s| s.role == "cpu") {
            let key = format!("ControlSet001\\Services\\{}", s.name);
            assert!(hive.has_key(&key).unwrap(), "{which}: no {key}");
        }
        let path = string(&hive, "ControlSet001\\Services\\Processor", "ImagePath").unwrap();
        assert!(
            path.to_ascii_lowercase().ends_with("\\processr.sys"),
            "{which}: {path}"
        );
    }
}

#[test]
fn the_cpu_driver_rule_finds_processor_forced_to_load() {
    // The Windows 7 install around the real hive, with Processor set to system start: on a
    // virtual machine it is a warning about Processor, in the set it was planted in.
    let dir = tempfile::tempdir().unwrap();
    let key = "HKLM\\SYSTEM\\ControlSet001\\Services\\Processor";
    let planted = with_values(
        &image("win7"),
        &[(key, "Start", "REG_DWORD", "1")],
        dir.path(),
    );
    let c = check_on(&planted, target("hyperv-gen1"));
    let hits: Vec<_> = c
        .findings
        .iter()
        .filter(|f| f.rule == "cpu-driver")
        .collect();
    assert_eq!(hits.len(), 1, "{:#?}", c.findings);
    assert_eq!(
        (
            hits[0].case,
            hits[0].service.as_deref(),
            hits[0].control_set
        ),
        ("vm", Some("Processor"), Some(1))
    );
    assert_eq!(hits[0].severity, Severity::Warning);
    // Untouched, the real hive's Processor is demand-start (3): no finding.
    let clean = check_on(&image("win7"), target("hyperv-gen1"));
    assert!(!clean.findings.iter().any(|f| f.rule == "cpu-driver"));
}

#[test]
fn rhelscsi_is_a_xen_driver() {
    let k = Knowledge::builtin();
    let svc = k.service("rhelscsi").unwrap();
    assert_eq!(svc.platform.as_deref(), Some("xen"));
    assert!(svc.drives.contains("Xen"), "{}", svc.drives);
    // Left to start at boot: a finding on KVM, none on Xen.
    let dir = tempfile::tempdir().unwrap();
    let key = "HKLM\\SYSTEM\\ControlSet001\\Services\\rhelscsi";
    let planted = with_values(
        &image("ws2019"),
        &[
            (key, "Start", "REG_DWORD", "0"),
            (
                key,
                "ImagePath",
                "REG_EXPAND_SZ",
                "System32\\drivers\\rhelscsi.sys",
            ),
        ],
        dir.path(),
    );
    let about = |c: &InstallCheck| {
        c.findings
            .iter()
            .filter(|f| f.rule == "hypervisor-driver" && f.service.as_deref() == Some("rhelscsi"))
            .map(|f| (f.case, f.message.clone()))
            .collect::<Vec<_>>()
    };
    let kvm = about(&check_on(&planted, target("kvm-sata")));
    assert_eq!(kvm.len(), 1, "{kvm:?}");
    assert_eq!(kvm[0].0, "left-boot-start");
    assert!(kvm[0].1.contains("a xen driver"), "{}", kvm[0].1);
    assert_eq!(about(&check_on(&planted, target("aws-xen"))), vec![]);
}

#[test]
fn storahci_is_bound_by_class_code_as_an_hdc_as_the_real_windows_10_hive_shows() {
    let k = Knowledge::builtin();
    let svc = k.service("storahci").unwrap();
    assert!(svc.by_class);
    let guid = k.class_guid(svc.class.as_deref().unwrap()).unwrap();
    let h = windows10();
    // DeviceIds\PCI\CC_010601 names the INF, DriverInfFiles its active package.
    let ids = h
        .values("DriverDatabase\\DeviceIds\\PCI\\CC_010601")
        .unwrap();
    assert_eq!(ids.len(), 1);
    let inf = &ids[0].0;
    let label = string(
        &h,
        &format!("DriverDatabase\\DriverInfFiles\\{inf}"),
        "Active",
    )
    .unwrap();
    let pkg = format!("DriverDatabase\\DriverPackages\\{label}");
    // The package's Version holds its class GUID at offset 8 (GUID byte order).
    let version = h.value(&pkg, "Version").unwrap().unwrap();
    let raw = version.as_bytes().unwrap()[8..24].to_vec();
    let theirs = uuid::Uuid::from_bytes_le(raw.try_into().unwrap());
    assert_eq!(format!("{{{theirs}}}").to_ascii_uppercase(), guid);
    // And the configuration its CC_010601 descriptor names installs storahci.
    let cfg = string(
        &h,
        &format!("{pkg}\\Descriptors\\PCI\\CC_010601"),
        "Configuration",
    )
    .unwrap();
    assert_eq!(
        string(&h, &format!("{pkg}\\Configurations\\{cfg}"), "Service").as_deref(),
        Some("storahci")
    );
}

#[test]
fn service_groups_are_those_of_the_real_hives() {
    let k = Knowledge::builtin();
    let mut compared = Vec::new();
    for (which, hive) in [("Windows 7", windows7()), ("Windows 10", windows10())] {
        for s in &k.services {
            let Some(group) = &s.group else { continue };
            let key = format!("ControlSet001\\Services\\{}", s.name);
            let Some(theirs) = string(&hive, &key, "Group") else {
                continue;
            };
            assert!(
                theirs.eq_ignore_ascii_case(group),
                "{which} {}: {theirs} vs {group}",
                s.name
            );
            compared.push(s.name.as_str());
        }
    }
    // storvsc is in both (Base); the comparison covered the inbox drivers of both hives.
    assert_eq!(
        compared.iter().filter(|n| **n == "storvsc").count(),
        2,
        "{compared:?}"
    );
    assert!(compared.len() >= 20, "{compared:?}");
}

#[test]
fn vmware_lsi_sas_is_the_controller_the_real_windows_7_hive_saw() {
    let t = target("vmware-lsisas");
    let h = windows7();
    let pci = t.controller.pci.clone().unwrap();
    let key = format!("ControlSet001\\Enum\\PCI\\{pci}");
    let instances = h.subkeys(&key).unwrap();
    assert_eq!(instances.len(), 1, "{key}");
    let inst = format!("{key}\\{}", instances[0]);
    assert_eq!(string(&h, &inst, "Service").as_deref(), Some("LSI_SAS"));
    let theirs = strings(&h, &inst, "HardwareID");
    let compatible = strings(&h, &inst, "CompatibleIDs");
    // Every hardware ID Windows gave the device (the class code, SAS 010700, is in two of
    // them) is one rehost derives from the profile, the most specific first, and so is
    // every compatible ID that names the class.
    let ours = t.controller.ids();
    assert_eq!(ours[0], theirs[0]);
    let with_class = compatible
        .iter()
        .filter(|c| c.contains("CC_") && !c.contains("DT_"));
    for id in theirs.iter().chain(with_class) {
        assert!(
            ours.iter().any(|x| x.eq_ignore_ascii_case(id)),
            "{id} not in {ours:?}"
        );
    }
    // Subsystem and revision are confirmed: no longer marked unverified.
    assert!(
        !t.unverified
            .iter()
            .any(|u| u.contains("subsystem") || u.contains("revision")),
        "{:?}",
        t.unverified
    );
}

#[test]
fn lsi_sas2_lasts_through_8_1_and_lsi_sas2i_starts_with_windows_10() {
    let t = target("generic-lsi");
    let v = |s: &str| rules::version::Version::parse(s).unwrap();
    let services = |s: &str| {
        t.controller
            .driver_for(v(s))
            .map(|d| d.services.join(","))
            .unwrap_or_default()
    };
    assert_eq!(services("6.1"), "LSI_SAS2");
    assert_eq!(services("6.3"), "LSI_SAS2");
    assert_eq!(services("10.0"), "LSI_SAS2i");
    // The hives bracket it: Windows 7 has LSI_SAS2 and not LSI_SAS2i; Windows 10 the
    // reverse, with LSI_SAS3i beside it.
    let has = |h: &Hive, s: &str| h.has_key(&format!("ControlSet001\\Services\\{s}")).unwrap();
    let (w7, w10) = (windows7(), windows10());
    assert!(has(&w7, "LSI_SAS2") && !has(&w7, "LSI_SAS2i"));
    assert!(!has(&w10, "LSI_SAS2") && has(&w10, "LSI_SAS2i") && has(&w10, "LSI_SAS3i"));
    let k = Knowledge::builtin();
    for s in ["LSI_SAS2", "LSI_SAS3", "LSI_SAS2i", "LSI_SAS3i"] {
        assert_eq!(k.service(s).map(|x| x.role.as_str()), Some("controller"));
    }
    // The Windows 10 install around the real hive finds its LSI_SAS2i on the target.
    let c = check_on(&image("win10-dirty"), t);
    assert!(
        !c.findings
            .iter()
            .any(|f| f.rule == "storage-driver" && f.case == "no-driver"),
        "{:#?}",
        c.findings
    );
}

#[test]
fn the_standard_pc_hal_starts_on_one_processor() {
    // XP with the Standard PC HAL: a reduced HAL on every target, not an unsuitable one.
    for t in rules::target::builtin().unwrap() {
        assert!(
            t.hal_reduced.iter().any(|h| h == "hal.dll"),
            "{}: {:?}",
            t.name,
            t.hal_reduced
        );
    }
    let c = check_on(&image("xp-stdpc"), target("hyperv-gen1"));
    let hal: Vec<_> = c
        .findings
        .iter()
        .filter(|f| f.rule == "hal-target")
        .collect();
    assert_eq!(hal.len(), 1, "{:#?}", c.findings);
    assert_eq!(
        (hal[0].case, hal[0].severity),
        ("reduced", Severity::Warning)
    );
    assert!(hal[0].message.contains("hal.dll"), "{}", hal[0].message);
}

#[test]
fn intelppm_on_another_vendors_cpu_stops_with_0xfc_when_pae_is_on() {
    let mut amd = target("generic-ahci");
    amd.cpu_vendor = "amd".into();
    amd.vm = false;
    let ppm = |name: &str, t: &Target| {
        let c = check_on(&image(name), t.clone());
        // In the set the next boot uses (the Last Known Good set's finding is a warning).
        c.findings
            .iter()
            .filter(|f| f.rule == "cpu-driver" && f.service.as_deref() == Some("intelppm"))
            .filter(|f| f.control_set == Some(1))
            .map(|f| (f.case, f.severity, f.stop.clone()))
            .collect::<Vec<_>>()
    };
    // XP SP3 enables DEP, and with it PAE, on a processor with NX: 0xFC.
    let xp = ppm("xp-sp3", &amd);
    assert!(!xp.is_empty());
    for f in &xp {
        assert_eq!(
            f,
            &("other-vendor-pae", Severity::Error, Some("0xFC".into()))
        );
    }
    // Windows 2000 has no DEP: without /PAE it runs the non-PAE kernel: 0x7E.
    let w2k = ppm("w2k-sp4", &amd);
    assert!(!w2k.is_empty());
    for f in &w2k {
        assert_eq!(f, &("other-vendor", Severity::Error, Some("0x7E".into())));
    }
    // On a virtual machine of any vendor: a warning without a STOP.
    for f in ppm("xp-sp3", &target("hyperv-gen1")) {
        assert_eq!(f, ("vm", Severity::Warning, None));
    }
}

#[test]
fn aws_pv_drivers_stand_idle_on_nitro() {
    let on = |t: &str| check_on(&image("ws2019-xen"), target(t));
    let nitro = on("aws-nitro");
    let hv: Vec<_> = nitro
        .findings
        .iter()
        .filter(|f| f.rule == "hypervisor-driver")
        .collect();
    assert!(!hv.is_empty());
    for f in &hv {
        assert_eq!(
            (f.case, f.severity, f.fixable),
            ("idle", Severity::Info, false)
        );
    }
    // With the drivers only noted, the install boots there (stornvme is boot-start).
    assert_ne!(nitro.verdict, Verdict::NoBoot, "{:#?}", nitro.findings);
    // Elsewhere the same drivers still stop the disk stack.
    let kvm = on("kvm-sata");
    assert!(kvm.findings.iter().any(|f| f.rule == "hypervisor-driver"
        && f.case == "filter"
        && f.severity == Severity::Error));
}

#[test]
fn what_no_source_shows_is_marked_unverified() {
    let pv = target("vmware-pvscsi");
    assert!(
        pv.unverified.iter().any(|u| u.contains("22H2")),
        "{:?}",
        pv.unverified
    );
    for t in ["hyperv-gen1", "azure-gen1"] {
        let t = target(t);
        assert!(
            t.unverified
                .iter()
                .any(|u| u.contains("PIIX4") && u.contains("subsystem")),
            "{}",
            t.name
        );
    }
    let c = rules::finding::case("boot-config", "winload-firmware").unwrap();
    assert!(c.summary.contains("unverified"), "{}", c.summary);
}

#[test]
fn x86_windows_8_and_later_load_halmacpi() {
    let k = Knowledge::builtin();
    assert_eq!(k.loader_hal("x86", 6, 2), "halmacpi.dll");
    assert_eq!(k.loader_hal("x86", 10, 0), "halmacpi.dll");
    // x64 has its single hal.dll; x86 Windows 7 and before load hal.dll by default (7
    // chooses between two HALs, which the hal-target rule handles).
    assert_eq!(k.loader_hal("x64", 10, 0), "hal.dll");
    assert_eq!(k.loader_hal("x86", 6, 1), "hal.dll");
    assert_eq!(k.loader_hal("x86", 5, 1), "hal.dll");
    // halmacpi.dll is the ACPI APIC multiprocessor HAL.
    let h = k.hals_named("halmacpi.dll");
    assert!(h.iter().all(|h| h.acpi && h.apic && h.processors == "mp"));
}

#[test]
fn san_policy_offline_shared_keeps_data_disks_on_a_shared_bus_offline() {
    let dir = tempfile::tempdir().unwrap();
    let key = "HKLM\\SYSTEM\\ControlSet001\\Services\\partmgr\\Parameters";
    let planted = with_values(
        &image("ws2019"),
        &[(key, "SanPolicy", "REG_DWORD", "2")],
        dir.path(),
    );
    let san = |t: &str| {
        let c = check_on(&planted, target(t));
        c.findings
            .iter()
            .filter(|f| f.rule == "san-policy")
            .map(|f| (f.case, f.severity, f.control_set))
            .collect::<Vec<_>>()
    };
    // SAS and SCSI targets: a warning in the set it was planted in.
    for t in ["vmware-lsisas", "kvm-virtio-scsi", "azure-gen2"] {
        assert_eq!(
            san(t),
            vec![("offline-shared", Severity::Warning, Some(1))],
            "{t}"
        );
    }
    // IDE, SATA and NVMe are not shared buses: nothing.
    for t in ["kvm-sata", "hyperv-gen1", "aws-nitro"] {
        assert_eq!(san(t), vec![], "{t}");
    }
    // The fix brings every disk online (SanPolicy 1), as for 3 and 4.
    let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(["fix", "--json", "--dry-run", planted.to_str().unwrap()])
        .args(["-t", "vmware-lsisas"])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = r.to_string();
    assert!(
        text.contains("san-policy") && text.contains("SanPolicy"),
        "{r:#}"
    );
    assert_eq!(r["installs"][0]["after"], "boots", "{r:#}");
}

#[test]
fn stornvme_on_windows_7_is_judged_by_what_the_install_holds() {
    // The Windows 7 install around the real hive has no stornvme (KB2990941 not installed):
    // not installed, to be given, rather than no driver at all.
    let nvme = |image: &Path| {
        let c = check_on(image, target("generic-nvme"));
        c.findings
            .iter()
            .filter(|f| f.rule == "storage-driver" && f.control_set != Some(2))
            .map(|f| (f.case, f.service.clone()))
            .collect::<Vec<_>>()
    };
    let stornvme = Some("stornvme".to_string());
    assert_eq!(
        nvme(&image("win7")),
        vec![("not-installed", stornvme.clone())]
    );
    // With the hotfix's service key (Start 0) but no driver file: the file is what is missing.
    let dir = tempfile::tempdir().unwrap();
    let key = "HKLM\\SYSTEM\\ControlSet001\\Services\\stornvme";
    let planted = with_values(
        &image("win7"),
        &[
            (key, "Start", "REG_DWORD", "0"),
            (key, "Type", "REG_DWORD", "1"),
            (
                key,
                "ImagePath",
                "REG_EXPAND_SZ",
                "System32\\drivers\\stornvme.sys",
            ),
        ],
        dir.path(),
    );
    assert_eq!(nvme(&planted), vec![("file-missing", stornvme)]);
    // Windows 8 / 2012 (6.2) has none: no driver rehost knows.
    let v = rules::version::Version::parse("6.2").unwrap();
    assert!(target("generic-nvme").controller.driver_for(v).is_none());
}
