//! Target machines as data: `profiles/targets/*.toml`, built into rehost, overridable with a
//! directory of the same files (`rehost check --profiles DIR`).
//!
//! A profile says what the machine can start (BIOS, UEFI or both), the controller its boot
//! disk sits on (PCI IDs and class code, or the hardware IDs of a bus device) and, by
//! Windows version, the services that drive it and whether they are inbox, the HAL that
//! NT 5.x needs there, the CPU vendor when it is known, and which of its facts are not
//! verified.

use super::version::Version;
use rehost_core::{Ctx, Layer};
use serde::Deserialize;
use std::path::Path;
use std::sync::OnceLock;

/// One target machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The name users give with `--target`.
    pub name: String,
    /// What it is, in one line.
    pub description: String,
    /// The platform ("hyperv", "kvm", "vmware", "xen", "aws-nitro", "physical"): drivers
    /// of another platform left boot-start are a finding.
    pub platform: String,
    /// A virtual machine (its CPU is whatever the host has; processor power drivers forced
    /// to load crash there).
    pub vm: bool,
    /// What its firmware starts: "bios" (MBR disks) and/or "uefi" (GPT disks).
    pub firmware: Vec<String>,
    /// Whether its UEFI firmware gives a UEFI-started Windows an INT 10h video BIOS (a CSM,
    /// or a VBE shim such as OVMF's), which Windows Vista SP1 to 7 / Server 2008 R2 need
    /// to start by UEFI; `None` when no source says.
    #[serde(default)]
    pub uefi_int10: Option<bool>,
    /// "intel", "amd", or "any" when it depends on the host.
    pub cpu_vendor: String,
    /// The NT 5.x HAL (OriginalFilename) that drives the machine.
    pub hal: String,
    /// NT 5.x HALs that start there but use less of it (one processor, PIC mode).
    #[serde(default)]
    pub hal_reduced: Vec<String>,
    /// What the machine requires of an install beyond a driver.
    #[serde(default)]
    pub requires: Option<Requires>,
    /// The controller the boot disk is on.
    pub controller: Controller,
    /// Facts of this profile not verified, in words.
    #[serde(default)]
    pub unverified: Vec<String>,
    /// The data disks it gives an install sit on a bus Windows counts as shared (SCSI,
    /// SAS, iSCSI, Fibre Channel), which SanPolicy 2 (OfflineShared) keeps offline.
    #[serde(default)]
    pub shared_bus: bool,
    /// Platforms whose paravirtual drivers stand idle on this machine (AWS PV drivers on a
    /// Nitro instance): left installed, they are worth knowing, not a fault.
    #[serde(default)]
    pub idle_platforms: Vec<String>,
}

/// What a target requires of an install.
#[derive(Debug, Clone, Deserialize, Hash)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// Architectures it starts ("x64").
    #[serde(default)]
    pub arch: Vec<String>,
    /// The first Windows version it starts ("6.2").
    #[serde(default)]
    pub min_version: Option<Version>,
    /// Why, in words.
    pub why: String,
}

/// The boot disk's controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    /// What it is.
    pub name: String,
    /// PCI identity without the `PCI\` prefix: `VEN_8086&DEV_7111[&SUBSYS_xxxxxxxx][&REV_xx]`.
    #[serde(default)]
    pub pci: Option<String>,
    /// PCI class code, six hex digits (class, subclass, programming interface).
    #[serde(default)]
    pub class: Option<String>,
    /// Other PCI identities the same controller can present, in the form of `pci` (virtio's
    /// modern function, with QEMU's disable-legacy): a driver injected for it is registered
    /// for these too, so that the install boots whichever the machine presents.
    #[serde(default)]
    pub also_pci: Vec<String>,
    /// Hardware IDs for a device that is not on PCI (`VMBUS\{...}`), most specific first.
    #[serde(default)]
    pub hardware_ids: Vec<String>,
    /// The devices below it that must start too (IDE channels, the disk), each as its IDs,
    /// most specific first.
    #[serde(default)]
    pub children: Vec<Vec<String>>,
    /// The services that drive it, by Windows version.
    pub driver: Vec<Driver>,
    /// `ids()`, computed once.
    #[serde(skip)]
    ids_cache: OnceLock<Vec<String>>,
    /// `cddb_names()`, computed once.
    #[serde(skip)]
    cddb_cache: OnceLock<Vec<Vec<String>>>,
    /// `fingerprint()`, computed once.
    #[serde(skip)]
    fingerprint_cache: OnceLock<u64>,
}

/// The services that drive a controller on some Windows versions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    /// Every one must be boot-start (controller driver first, then the channel driver).
    pub services: Vec<String>,
    /// Part of Windows on these versions (else a vendor's driver to install).
    pub inbox: bool,
    /// First version it applies to.
    #[serde(default)]
    pub from: Option<Version>,
    /// Last version it applies to.
    #[serde(default)]
    pub until: Option<Version>,
    /// This fact is not verified.
    #[serde(default)]
    pub unverified: bool,
}

impl Driver {
    /// Whether it applies to Windows `v`.
    pub fn applies(&self, v: Version) -> bool {
        self.from.is_none_or(|f| v >= f) && self.until.is_none_or(|u| v <= u)
    }
}

impl Controller {
    /// The driver for Windows `v`, if the profile names one.
    pub fn driver_for(&self, v: Version) -> Option<&Driver> {
        self.driver.iter().find(|d| d.applies(v))
    }

    /// The controller's IDs in the order Plug and Play matches them (hardware IDs, then
    /// compatible IDs), with `\` between enumerator and device: for a PCI device the forms
    /// of Microsoft's "Identifiers for PCI Devices", for another device `hardware_ids`.
    pub fn ids(&self) -> &[String] {
        self.ids_cache.get_or_init(|| self.make_ids())
    }

    /// The IDs of the controller and of each device below it as CriticalDeviceDatabase
    /// keys name them (lower case, `#` for `\`), the controller first.
    pub fn cddb_names(&self) -> &[Vec<String>] {
        self.cddb_cache.get_or_init(|| {
            std::iter::once(self.ids())
                .chain(self.children.iter().map(Vec::as_slice))
                .map(|ids| {
                    ids.iter()
                        .map(|i| i.to_ascii_lowercase().replace('\\', "#"))
                        .collect()
                })
                .collect()
        })
    }

    /// A hash of everything the profile says of the controller: two controllers with the
    /// same fingerprint get the same findings.
    pub fn fingerprint(&self) -> u64 {
        *self.fingerprint_cache.get_or_init(|| {
            hash(format!(
                "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                self.name,
                self.pci,
                self.class,
                self.also_pci,
                self.hardware_ids,
                self.children,
                self.driver
            ))
        })
    }

    fn make_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = self.hardware_ids.clone();
        let mut parts = (None, None, None, None);
        if let Some(p) = &self.pci {
            for f in p.split('&') {
                let u = f.to_ascii_uppercase();
                if u.starts_with("VEN_") {
                    parts.0 = Some(u);
                } else if u.starts_with("DEV_") {
                    parts.1 = Some(u);
                } else if u.starts_with("SUBSYS_") {
                    parts.2 = Some(u);
                } else if u.starts_with("REV_") {
                    parts.3 = Some(u);
                }
            }
        }
        let cc = self.class.as_deref().map(str::to_ascii_uppercase);
        let cc6 = cc.clone().filter(|c| c.len() == 6);
        let cc4 = cc.as_deref().map(|c| c[..c.len().min(4)].to_string());
        let mut push = |fields: &[Option<&str>]| {
            if fields.iter().all(|f| f.is_some()) {
                let id: Vec<&str> = fields.iter().flatten().copied().collect();
                let id = format!("PCI\\{}", id.join("&"));
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        };
        let (ven, dev, sub, rev) = (
            parts.0.as_deref(),
            parts.1.as_deref(),
            parts.2.as_deref(),
            parts.3.as_deref(),
        );
        let c6 = cc6.as_ref().map(|c| format!("CC_{c}"));
        let c4 = cc4.as_ref().map(|c| format!("CC_{c}"));
        let (c6, c4) = (c6.as_deref(), c4.as_deref());
        if ven.is_some() {
            // Hardware IDs.
            push(&[ven, dev, sub, rev]);
            push(&[ven, dev, sub]);
            push(&[ven, dev, rev]);
            push(&[ven, dev]);
            push(&[ven, dev, c6]);
            push(&[ven, dev, c4]);
            // The older form of a compatible ID with the revision and class.
            push(&[ven, dev, rev, c4]);
            // Compatible IDs.
            push(&[ven, c6]);
            push(&[ven, c4]);
            push(&[ven]);
        }
        push(&[c6]);
        push(&[c4]);
        out
    }
}

impl Target {
    /// Whether the firmware starts disks partitioned so ("bios" or "uefi").
    pub fn starts(&self, firmware: &str) -> bool {
        self.firmware
            .iter()
            .any(|f| f.eq_ignore_ascii_case(firmware))
    }

    /// Checks what serde cannot: firmware names, the vendor, the controller's identity.
    pub fn validate(&self) -> rehost_core::Result<()> {
        let bad = |msg: &str| Err(Ctx::new(self.name.clone(), Layer::Rules).invalid(msg));
        if self.firmware.is_empty() || !self.firmware.iter().all(|f| f == "bios" || f == "uefi") {
            return bad("firmware must list \"bios\" and/or \"uefi\"");
        }
        if !["intel", "amd", "any"].contains(&self.cpu_vendor.as_str()) {
            return bad("cpu_vendor must be \"intel\", \"amd\" or \"any\"");
        }
        let c = &self.controller;
        if c.pci.is_none() && c.class.is_none() && c.hardware_ids.is_empty() {
            return bad("the controller needs pci, class or hardware_ids");
        }
        if let Some(cc) = &c.class {
            if !(cc.len() == 4 || cc.len() == 6) || !cc.chars().all(|x| x.is_ascii_hexdigit()) {
                return bad(&format!("class must be 4 or 6 hex digits, not {cc:?}"));
            }
        }
        for p in c.pci.iter().chain(&c.also_pci) {
            if rehost_windows::drivers::PciDevice::parse(p, c.class.as_deref()).is_none() {
                return bad(&format!(
                    "{p:?} is not VEN_xxxx&DEV_xxxx[&SUBSYS_xxxxxxxx][&REV_xx]"
                ));
            }
        }
        if !c.also_pci.is_empty() && c.pci.is_none() {
            return bad("also_pci needs pci");
        }
        if c.children.iter().any(|ids| ids.is_empty()) {
            return bad("a child device lists no IDs");
        }
        if c.driver.iter().any(|d| d.services.is_empty()) {
            return bad("a driver lists no services");
        }
        Ok(())
    }
}

/// A 64-bit hash of `what`, to tell targets apart by what a rule reads of them.
pub fn hash(what: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    what.hash(&mut h);
    h.finish()
}

/// The profiles built into rehost, by file.
const BUILTIN: [(&str, &str); 23] = [
    (
        "aws-nitro",
        include_str!("../../../profiles/targets/aws-nitro.toml"),
    ),
    (
        "aws-xen",
        include_str!("../../../profiles/targets/aws-xen.toml"),
    ),
    (
        "azure-gen1",
        include_str!("../../../profiles/targets/azure-gen1.toml"),
    ),
    (
        "azure-gen2",
        include_str!("../../../profiles/targets/azure-gen2.toml"),
    ),
    (
        "azure-nvme",
        include_str!("../../../profiles/targets/azure-nvme.toml"),
    ),
    ("gcp", include_str!("../../../profiles/targets/gcp.toml")),
    (
        "generic-ahci",
        include_str!("../../../profiles/targets/generic-ahci.toml"),
    ),
    (
        "generic-ide",
        include_str!("../../../profiles/targets/generic-ide.toml"),
    ),
    (
        "generic-lsi",
        include_str!("../../../profiles/targets/generic-lsi.toml"),
    ),
    (
        "generic-nvme",
        include_str!("../../../profiles/targets/generic-nvme.toml"),
    ),
    (
        "hyperv-gen1",
        include_str!("../../../profiles/targets/hyperv-gen1.toml"),
    ),
    (
        "hyperv-gen2",
        include_str!("../../../profiles/targets/hyperv-gen2.toml"),
    ),
    (
        "kvm-ide",
        include_str!("../../../profiles/targets/kvm-ide.toml"),
    ),
    (
        "kvm-sata",
        include_str!("../../../profiles/targets/kvm-sata.toml"),
    ),
    (
        "kvm-virtio-blk",
        include_str!("../../../profiles/targets/kvm-virtio-blk.toml"),
    ),
    (
        "kvm-virtio-scsi",
        include_str!("../../../profiles/targets/kvm-virtio-scsi.toml"),
    ),
    (
        "virtualbox",
        include_str!("../../../profiles/targets/virtualbox.toml"),
    ),
    (
        "vmware-lsilogic",
        include_str!("../../../profiles/targets/vmware-lsilogic.toml"),
    ),
    (
        "vmware-lsisas",
        include_str!("../../../profiles/targets/vmware-lsisas.toml"),
    ),
    (
        "vmware-nvme",
        include_str!("../../../profiles/targets/vmware-nvme.toml"),
    ),
    (
        "vmware-pvscsi",
        include_str!("../../../profiles/targets/vmware-pvscsi.toml"),
    ),
    (
        "vmware-sata",
        include_str!("../../../profiles/targets/vmware-sata.toml"),
    ),
    (
        "xenserver",
        include_str!("../../../profiles/targets/xenserver.toml"),
    ),
];

/// Parses one profile; `source` names it in errors (an invalid profile is
/// [`ErrorKind::Invalid`](rehost_core::ErrorKind::Invalid), at the rules layer).
pub fn parse(text: &str, source: &str) -> rehost_core::Result<Target> {
    let ctx = Ctx::new(source, Layer::Rules);
    let t: Target = toml::from_str(text).map_err(|e| ctx.invalid(e.to_string()))?;
    t.validate()?;
    Ok(t)
}

/// The built-in profiles, sorted by name.
pub fn builtin() -> rehost_core::Result<Vec<Target>> {
    BUILTIN
        .iter()
        .map(|(name, text)| parse(text, &format!("built-in profile {name}")))
        .collect()
}

/// The built-in profiles with those of `dir` (every `*.toml`) over them: a profile of the
/// same name replaces the built-in one, others are added. Sorted by name.
pub fn load(dir: Option<&Path>) -> rehost_core::Result<Vec<Target>> {
    let mut all = builtin()?;
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Ctx::new(dir.display().to_string(), Layer::Rules).io(0, e))?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| Ctx::new(f.display().to_string(), Layer::Rules).io(0, e))?;
            let t = parse(&text, &f.display().to_string())?;
            match all.iter_mut().find(|x| x.name == t.name) {
                Some(old) => *old = t,
                None => all.push(t),
            }
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_file_is_built_in_and_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/targets");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, names);
        for t in builtin().unwrap() {
            assert!(BUILTIN.iter().any(|(n, _)| *n == t.name), "{}", t.name);
            assert!(!t.controller.ids().is_empty(), "{}", t.name);
        }
    }

    #[test]
    fn pci_ids_come_in_plug_and_play_order() {
        let c = Controller {
            name: "PIIX4".into(),
            pci: Some("VEN_8086&DEV_7111&SUBSYS_00000000&REV_01".into()),
            class: Some("010180".into()),
            also_pci: vec![],
            hardware_ids: vec![],
            children: vec![],
            driver: vec![],
            ids_cache: Default::default(),
            cddb_cache: Default::default(),
            fingerprint_cache: Default::default(),
        };
        let ids = c.ids();
        assert_eq!(ids[0], "PCI\\VEN_8086&DEV_7111&SUBSYS_00000000&REV_01");
        assert_eq!(ids[3], "PCI\\VEN_8086&DEV_7111");
        assert!(ids.contains(&"PCI\\VEN_8086&DEV_7111&CC_0101".to_string()));
        assert_eq!(ids[ids.len() - 2], "PCI\\CC_010180");
        assert_eq!(ids[ids.len() - 1], "PCI\\CC_0101");
        let class_only = Controller {
            pci: None,
            class: Some("010601".into()),
            ids_cache: Default::default(),
            ..c
        };
        assert_eq!(class_only.ids(), vec!["PCI\\CC_010601", "PCI\\CC_0106"]);
    }
}
