//! What the fixes of the storage rules share: the install as a driver INF reads it, the
//! target's controller as the PCI functions it presents, the package of the `--drivers`
//! folder for a service, a driver file from the install's own cabinets, the minimal
//! service key, and the values a registry change leaves after the changes planned before it.

use super::cannot::NoPackage;
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use rehost_formats::inf;
use rehost_regf::regtext::Op;
use rehost_windows::drivers::{self, Package, PciDevice};
use rehost_windows::halsource;
use rehost_windows::knowledge::Knowledge;

/// The install as an INF's TargetOSVersion decorations read it (architecture, version,
/// build, product type); `None` when its version or architecture is unknown.
pub fn inf_target(s: &Subject) -> Option<inf::Target> {
    let v = s.version?;
    let arch = match s.install.arch.as_deref()?.to_ascii_lowercase().as_str() {
        "x64" | "amd64" | "x86_64" => "amd64".to_string(),
        "x86" | "i386" => "x86".to_string(),
        other => other.to_string(),
    };
    let product = s
        .boot_set
        .and_then(|cs| {
            s.system
                .string(
                    &format!("{}\\Control\\ProductOptions", s.cs_key(cs)),
                    "ProductType",
                )
                .ok()
                .flatten()
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    // ProductOptions names the product type INF decorations number (1 workstation,
    // 2 domain controller, 3 server).
    let product_type = match product.as_str() {
        "winnt" => 1,
        "lanmannt" => 2,
        "servernt" => 3,
        _ if s.install.installation_type.as_deref() == Some("Client") => 1,
        _ => 3,
    };
    Some(inf::Target {
        arch,
        major: v.major,
        minor: v.minor,
        build: s.install.build.unwrap_or(0),
        product_type,
    })
}

/// The PCI functions the target's controller presents: its `pci`, then its `also_pci`.
pub fn devices(t: &Target) -> Vec<PciDevice> {
    let c = &t.controller;
    c.pci
        .iter()
        .chain(&c.also_pci)
        .filter_map(|p| PciDevice::parse(p, c.class.as_deref()))
        .collect()
}

/// The package of the `--drivers` folder that installs `service` for the target's
/// controller on this install, best first; `Err` says why there is none.
pub fn package(
    s: &Subject,
    t: &Target,
    o: &FixOptions,
    service: &str,
) -> Result<Package, NoPackage> {
    let Some(dir) = &o.drivers else {
        return Err(NoPackage::NoFolder);
    };
    let Some(target) = inf_target(s) else {
        return Err(NoPackage::UnknownInstall);
    };
    let devs = devices(t);
    if devs.is_empty() {
        let controller = t.controller.name.clone();
        return Err(match &t.controller.class {
            Some(class) => NoPackage::ByClass {
                controller,
                class: class.clone(),
            },
            None => NoPackage::NoPciId { controller },
        });
    }
    let mut skipped = Vec::new();
    for dev in &devs {
        let found =
            drivers::find_packages(dir, &target, dev, &mut skipped).map_err(NoPackage::Read)?;
        if let Some(p) = found
            .into_iter()
            .find(|p| p.service.name.eq_ignore_ascii_case(service))
        {
            return Ok(p);
        }
    }
    // Each device's search meets the same INF files.
    skipped.sort();
    skipped.dedup();
    Err(NoPackage::NoneInstalls {
        dir: dir.clone(),
        service: service.to_string(),
        controller: t.controller.name.clone(),
        install: Box::new(target),
        skipped,
    })
}

/// The driver file `file` (`atapi.sys`) from the install's own cabinets (`spN.cab` and
/// `driver.cab` in the driver cache) or `ServicePackFiles\i386`: the highest version
/// found, and the places searched.
pub fn from_cabinets(s: &Subject, file: &str) -> (Option<halsource::Candidate>, Vec<String>) {
    let cache = s.software.and_then(halsource::driver_cache_path);
    let root = &s.install.system_root;
    let found = halsource::find(s.scene, s.install.volume, root, cache.as_deref(), &[file]);
    let system32 = format!("{root}\\System32");
    let best = found
        .candidates
        .into_iter()
        .filter(|c| !c.source.eq_ignore_ascii_case(&system32))
        .max_by_key(|c| halsource::parts(&c.version));
    let searched = found
        .searched
        .into_iter()
        .filter(|p| !p.eq_ignore_ascii_case(&system32))
        .collect();
    (best, searched)
}

/// The minimal service key of a boot driver (what virt-v2v writes for an injected one):
/// kernel driver, boot start, normal error control, its load order group, and its file in
/// `System32\drivers`.
pub fn service_key(s: &Subject, cs: u32, service: &str, file: &str) -> Vec<Op> {
    let group = Knowledge::builtin()
        .service(service)
        .and_then(|k| k.group.clone())
        .unwrap_or_else(|| "SCSI miniport".into());
    vec![
        Op::Key(reg::system(&format!(
            "{}\\Services\\{service}",
            s.cs_key(cs)
        ))),
        reg::dword("Type", 1),
        reg::dword("Start", 0),
        reg::dword("ErrorControl", 1),
        reg::set("Group", 1, reg::sz(&group)),
        reg::set(
            "ImagePath",
            2,
            reg::sz(&format!("system32\\drivers\\{file}")),
        ),
    ]
}

/// `System32\drivers\<file>` of the install.
pub fn drivers_path(s: &Subject, file: &str) -> String {
    format!("{}\\System32\\drivers\\{file}", s.install.system_root)
}

/// Whether `path` is a directory on the install's volume.
pub fn is_dir(s: &Subject, path: &str) -> bool {
    s.scene
        .stat(s.install.volume, path)
        .is_some_and(|e| e.is_dir)
}

/// Whether `path` lies below the folder `dir` (case-insensitive).
pub fn below(path: &str, dir: &str) -> bool {
    path.get(..dir.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(dir))
        && path[dir.len()..].starts_with('\\')
}

/// Adds the files of an injection to the plan: the driver in `System32\drivers` (when
/// `driver`), and the package in a folder of its own in the driver store, when the install
/// has one (`DriverStore\FileRepository`; when it has not, the plan says so, and the
/// driver is registered without it, which is what the boot needs).
pub fn put_files(
    s: &Subject,
    rule: &'static str,
    inj: &drivers::Injection,
    driver: bool,
    plan: &mut Plan,
) {
    let store = inj.store.as_deref();
    let in_store = |p: &str| store.is_some_and(|d| below(p, d));
    if driver {
        for (path, bytes) in inj.files.iter().filter(|(p, _)| !in_store(p)) {
            plan.add(
                rule,
                format!("the driver file {path}"),
                Change::Put {
                    volume: s.install.volume,
                    path: path.clone(),
                    bytes: bytes.clone(),
                },
            );
        }
    }
    let Some(store) = store else { return };
    let repository = store.rsplit_once('\\').map_or(store, |(up, _)| up);
    if is_dir(s, store) || is_dir(s, repository) {
        for (path, bytes) in inj.files.iter().filter(|(p, _)| in_store(p)) {
            plan.add(
                rule,
                format!("the driver package in the driver store: {path}"),
                Change::Put {
                    volume: s.install.volume,
                    path: path.clone(),
                    bytes: bytes.clone(),
                },
            );
        }
    } else {
        plan.partly(
            rule,
            format!(
                "the package is not copied into the driver store: the install has no \
                 {repository}; the driver is registered and boots from System32\\drivers, and \
                 `pnputil /add-driver` on the running system stores it"
            ),
        );
    }
}

/// The data value `name` of `key` in SYSTEM as the changes planned so far leave it:
/// `Some(Some(data))` set, `Some(None)` deleted, `None` when no planned change touches it.
pub fn planned_value(plan: &Plan, key: &str, name: &str) -> Option<Option<Vec<u8>>> {
    let mut out = None;
    for p in &plan.changes {
        let Change::Registry { hive, ops, .. } = &p.change else {
            continue;
        };
        if !hive.eq_ignore_ascii_case("SYSTEM") {
            continue;
        }
        let mut here = false;
        for op in ops {
            match op {
                Op::Key(k) => here = k.eq_ignore_ascii_case(key),
                Op::DeleteKey(k) if k.eq_ignore_ascii_case(key) => out = Some(None),
                Op::Set { name: n, data, .. } if here && n.eq_ignore_ascii_case(name) => {
                    out = Some(Some(data.clone()))
                }
                Op::DeleteValue(n) if here && n.eq_ignore_ascii_case(name) => out = Some(None),
                _ => {}
            }
        }
    }
    out
}

/// The strings of REG_MULTI_SZ data.
pub fn multi_strings(data: &[u8]) -> Vec<String> {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    units
        .split(|u| *u == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_multi_strings() {
        assert!(below(
            "\\Windows\\System32\\X\\a.inf",
            "\\windows\\system32\\x"
        ));
        assert!(!below(
            "\\Windows\\System32\\Xy\\a.inf",
            "\\Windows\\System32\\X"
        ));
        assert!(!below("\\Windows", "\\Windows"));
        // A name beyond ASCII never splits a character.
        assert!(!below("\\Wé\\x", "\\W\\"));
        assert_eq!(
            multi_strings(&reg::multi_sz(&["PartMgr", "ghostflt"])),
            ["PartMgr", "ghostflt"]
        );
        assert!(multi_strings(&[0, 0]).is_empty());
        assert_eq!(multi_strings(&[b'a', 0, 0]), ["a"]);
    }
}
