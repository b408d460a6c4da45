//! The target profiles and releases added after the first seventeen: each checked against
//! the phony installs of testdata/windows it tells apart (Azure's NVMe OS disk, VMware's
//! SATA and NVMe controllers, Google Compute Engine, VirtualBox, XenServer; Windows Server
//! 2025 and Windows 11 24H2).

mod common;

use rehost::rules::{self, InstallCheck, Severity, Target, Verdict};
use std::path::PathBuf;

fn target(name: &str) -> Target {
    common::target(name)
}

fn image(name: &str) -> PathBuf {
    common::windows_image(name)
}

fn check(name: &str, t: &str) -> InstallCheck {
    let r = rules::check(&image(name), &[target(t)]).unwrap();
    assert_eq!(r.installs.len(), 1, "{name} on {t}");
    r.installs.into_iter().next().unwrap()
}

/// The (rule, case, service) of the errors in the control set the next boot uses.
fn errors(c: &InstallCheck) -> Vec<(&'static str, &'static str, Option<String>)> {
    c.findings
        .iter()
        .filter(|f| f.severity == Severity::Error && f.control_set != Some(2))
        .map(|f| (f.rule, f.case, f.service.clone()))
        .collect()
}

fn boots(c: &InstallCheck) -> bool {
    matches!(c.verdict, Verdict::Boots | Verdict::BootsWithWarnings)
}

#[test]
fn azure_nvme_starts_64_bit_server_2019_and_later_by_uefi_on_stornvme() {
    for name in ["ws2019", "ws2025", "win11-24h2"] {
        let c = check(name, "azure-nvme");
        assert!(boots(&c), "{name}: {:#?}", c.findings);
    }
    // Server 2016 is 10.0 too: let through (the profile says it cannot tell it apart).
    assert!(boots(&check("ws2016", "azure-nvme")));
    // Windows 7 x86 on an MBR disk: the firmware and the release stop it.
    let w7 = check("win7", "azure-nvme");
    assert_eq!(w7.verdict, Verdict::NoBoot);
    let e = errors(&w7);
    assert!(
        e.iter().any(|x| x.0 == "firmware" && x.1 == "mbr-on-uefi"),
        "{e:?}"
    );
    assert!(
        e.iter().any(|x| x.0 == "firmware" && x.1 == "requires"),
        "{e:?}"
    );
}

#[test]
fn vmware_sata_binds_by_class_code_to_msahci_or_storahci() {
    let t = target("vmware-sata");
    assert!(t
        .controller
        .ids()
        .iter()
        .any(|i| i == "PCI\\VEN_15AD&DEV_07E0"));
    assert!(t.controller.ids().iter().any(|i| i == "PCI\\CC_010601"));
    assert!(boots(&check("ws2019", "vmware-sata")));
    // storahci demand-start: 0x7B.
    let off = check("ws2019-ahci-off", "vmware-sata");
    assert_eq!(
        (off.verdict, off.stop.as_deref()),
        (Verdict::NoBoot, Some("0x7B"))
    );
    assert_eq!(
        errors(&off),
        vec![("storage-driver", "not-boot-start", Some("storahci".into()))]
    );
    // The real Windows 7 hive keeps msahci at Start 3 (KB 922976).
    let w7 = check("win7", "vmware-sata");
    assert!(errors(&w7).contains(&("storage-driver", "not-boot-start", Some("msahci".into()))));
}

#[test]
fn vmware_nvme_starts_by_efi_on_stornvme() {
    assert!(boots(&check("ws2019", "vmware-nvme")));
    assert!(boots(&check("ws2025", "vmware-nvme")));
    let bios = check("ws2019-bios", "vmware-nvme");
    assert!(
        errors(&bios).contains(&("firmware", "mbr-on-uefi", None)),
        "{:#?}",
        bios.findings
    );
    // Windows 7: stornvme only through KB2990941, which the real hive does not hold.
    let w7 = check("win7", "vmware-nvme");
    assert!(errors(&w7).contains(&("storage-driver", "not-installed", Some("stornvme".into()))));
}

#[test]
fn gcp_needs_googles_vioscsi() {
    // Neither install holds vioscsi (ws2016 holds viostor, for virtio-blk).
    for name in ["ws2019", "ws2016"] {
        let c = check(name, "gcp");
        assert_eq!(c.verdict, Verdict::NoBoot);
        assert!(
            errors(&c).contains(&("storage-driver", "not-installed", Some("vioscsi".into()))),
            "{name}: {:#?}",
            c.findings
        );
    }
    assert!(target("gcp").shared_bus);
}

#[test]
fn virtualbox_sata_is_the_ich8m_ahci() {
    let t = target("virtualbox");
    assert_eq!(
        t.controller.ids()[0],
        "PCI\\VEN_8086&DEV_2829&SUBSYS_00000000&REV_02"
    );
    assert!(boots(&check("ws2019", "virtualbox")));
    let w7 = check("win7", "virtualbox");
    assert!(errors(&w7).contains(&("storage-driver", "not-boot-start", Some("msahci".into()))));
    // XP has no AHCI driver of its own: Intel's, to be given.
    let xp = check("xp-sp3", "virtualbox");
    assert!(errors(&xp).contains(&("storage-driver", "not-installed", Some("iaStor".into()))));
}

#[test]
fn xenserver_keeps_xen_drivers_and_boots_from_emulated_ide() {
    let hv = |c: &InstallCheck| {
        c.findings
            .iter()
            .filter(|f| f.rule == "hypervisor-driver")
            .count()
    };
    let xen = check("ws2019-xen", "xenserver");
    assert_eq!(hv(&xen), 0, "{:#?}", xen.findings);
    assert!(boots(&xen), "{:#?}", xen.findings);
    // The same drivers on VMware stop the disk stack.
    assert!(hv(&check("ws2019-xen", "vmware-sata")) > 0);
    // XP on the PIIX3 IDE: intelide and atapi are boot-start.
    assert!(errors(&check("xp-sp3", "xenserver"))
        .iter()
        .all(|e| e.0 != "storage-driver"));
}

#[test]
fn server_2025_and_windows_11_24h2_are_named_and_checked() {
    let ws = check("ws2025", "hyperv-gen2");
    assert_eq!(
        ws.product.as_deref(),
        Some("Windows Server 2025 Datacenter")
    );
    assert!(boots(&ws), "{:#?}", ws.findings);
    // Build 26100 keeps "Windows 10" in ProductName: a client of that build is Windows 11.
    let w11 = check("win11-24h2", "kvm-sata");
    assert_eq!(w11.product.as_deref(), Some("Windows 11 Pro"));
    assert!(boots(&w11), "{:#?}", w11.findings);
    // Both are 10.0: LSI_SAS is there but StartOverride keeps it off, as on 2019.
    let sas = check("ws2025", "vmware-lsisas");
    assert!(
        errors(&sas).iter().any(|e| e.0 == "start-override"),
        "{:#?}",
        sas.findings
    );
}
