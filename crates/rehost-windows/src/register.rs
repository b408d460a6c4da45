//! Registering a boot driver offline: what injecting a driver package takes (the driver
//! file in `System32\drivers`, the service key, CriticalDeviceDatabase entries up to
//! Windows 7, DriverDatabase entries and the driver store from Windows 8), as registry
//! operations for every control set a fix names; and binding a device to a package the
//! DriverDatabase already holds.

use super::drivers::{cddb_key, Package, PciDevice};
use rehost_core::error::Result;
use rehost_formats::inf::Target;
use rehost_regf::hive::Hive;
use rehost_regf::regtext::Op;

/// What injecting a package takes.
#[derive(Debug, Clone)]
pub struct Injection {
    /// Files to write, as (path on the install's volume, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// SYSTEM hive edits, named below `HKEY_LOCAL_MACHINE\SYSTEM` (`CurrentControlSet`
    /// stands for every control set `Select` names when applied with all of them).
    pub ops: Vec<Op>,
    /// The DriverDatabase package label (Windows 8 and later).
    pub label: Option<String>,
    /// The package's folder in the driver store (Windows 8 and later), which `files`
    /// writes into.
    pub store: Option<String>,
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

fn multi(items: &[&str]) -> Vec<u8> {
    let mut d: Vec<u8> = items.iter().flat_map(|s| utf16z(s)).collect();
    d.extend([0, 0]);
    d
}

fn dword(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// A class GUID string's 16 bytes as Windows stores a GUID.
fn guid_bytes(g: &str) -> Option<[u8; 16]> {
    let u = uuid::Uuid::parse_str(g.trim_matches(['{', '}'])).ok()?;
    Some(u.to_bytes_le())
}

/// The DriverDatabase label of a package: `<inf>_<arch>_<16 hex>`, the hex the first
/// eight bytes of the SHA-256 of the INF (Windows' own labels carry a hash of the package;
/// the `_tmp` form once used offline broke later servicing).
pub fn label(inf_name: &str, arch: &str, inf_bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(inf_bytes);
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{inf_name}_{arch}_{hex}")
}

/// The files and SYSTEM hive edits that register `pkg` as the boot driver of `devices`
/// on an install rooted at `system_root` (`\Windows`): the binary in System32\drivers,
/// the service key (boot start, whatever the INF says, since the system disk hangs off
/// it), its AddReg values, and CriticalDeviceDatabase entries (before Windows 8) or
/// DriverDatabase entries and the package in the driver store (Windows 8 and later).
pub fn plan(pkg: &Package, target: &Target, system_root: &str, devices: &[PciDevice]) -> Injection {
    let svc = &pkg.service;
    let name = svc.name.clone();
    let base = format!("HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{name}");
    let file = svc.binary_file();
    let mut files = vec![(
        format!("{system_root}\\System32\\drivers\\{file}"),
        pkg.binary.1.clone(),
    )];
    let mut ops = vec![
        Op::Key(base.clone()),
        set("Type", 4, dword(svc.service_type)),
        set("Start", 4, dword(0)),
        set("ErrorControl", 4, dword(svc.error_control.max(1))),
        set(
            "Group",
            1,
            utf16z(svc.group.as_deref().unwrap_or("SCSI miniport")),
        ),
        set(
            "ImagePath",
            2,
            utf16z(&format!("system32\\drivers\\{file}")),
        ),
    ];
    for r in svc.add_reg.iter().filter(|r| r.root == "HKR") {
        let key = if r.subkey.is_empty() {
            base.clone()
        } else {
            format!("{base}\\{}", r.subkey)
        };
        ops.push(Op::Key(key));
        if let Some(n) = &r.name {
            ops.push(set(n, r.kind, r.data.clone()));
        }
    }
    let class_guid = pkg
        .driver
        .class_guid
        .clone()
        .unwrap_or_else(|| "{4D36E97B-E325-11CE-BFC1-08002BE10318}".into());
    let ids: Vec<String> = devices.iter().flat_map(|d| d.hardware_ids()).collect();
    let (mut label_out, mut store_out) = (None, None);
    if (target.major, target.minor) < (6, 2) {
        for id in &ids {
            ops.push(Op::Key(format!(
                "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CriticalDeviceDatabase\\{}",
                cddb_key(id)
            )));
            ops.push(set("Service", 1, utf16z(&name)));
            ops.push(set("ClassGUID", 1, utf16z(&class_guid)));
        }
    } else {
        let label = label(&pkg.inf_name, &target.arch, &pkg.inf_bytes);
        let cfg = format!("{}_{name}", pkg.model.install_section.to_ascii_lowercase());
        let ddb = "HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase";
        ops.push(Op::Key(format!("{ddb}\\DriverInfFiles\\{}", pkg.inf_name)));
        ops.push(set("", 7, multi(&[&label])));
        ops.push(set("Active", 1, utf16z(&label)));
        ops.push(set("Configurations", 7, multi(&[&cfg])));
        let mut version = vec![0x00, 0xff, 0x09, 0x00, 0, 0, 0, 0];
        version.extend(guid_bytes(&class_guid).unwrap_or([0; 16]));
        version.extend([0u8; 24]);
        let pkg_key = format!("{ddb}\\DriverPackages\\{label}");
        ops.push(Op::Key(pkg_key.clone()));
        ops.push(set("Version", 3, version));
        ops.push(set(
            "Provider",
            1,
            utf16z(pkg.driver.provider.as_deref().unwrap_or("")),
        ));
        ops.push(Op::Key(format!("{pkg_key}\\Configurations\\{cfg}")));
        ops.push(set("ConfigFlags", 4, dword(0)));
        ops.push(set("Service", 1, utf16z(&name)));
        for id in &ids {
            ops.push(Op::Key(format!("{ddb}\\DeviceIds\\{id}")));
            ops.push(set(&pkg.inf_name, 3, vec![0x01, 0xff, 0x00, 0x00]));
            ops.push(Op::Key(format!("{pkg_key}\\Descriptors\\{id}")));
            ops.push(set("Configuration", 1, utf16z(&cfg)));
        }
        let store = format!("{system_root}\\System32\\DriverStore\\FileRepository\\{label}");
        files.push((format!("{store}\\{}", pkg.inf_name), pkg.inf_bytes.clone()));
        files.push((format!("{store}\\{file}"), pkg.binary.1.clone()));
        label_out = Some(label);
        store_out = Some(store);
    }
    Injection {
        files,
        ops,
        label: label_out,
        store: store_out,
    }
}

fn set(name: &str, kind: u32, data: Vec<u8>) -> Op {
    Op::Set {
        name: name.to_string(),
        kind,
        data,
    }
}

/// The operations of `ops` with every key below `HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet`
/// written once for each control set of `sets` (`ControlSet00N`), each with the values that
/// follow it; other keys once, as they are.
pub fn in_control_sets(ops: &[Op], sets: &[u32]) -> Vec<Op> {
    const CCS: &str = "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet";
    // Split into groups: a key and what follows it.
    let mut groups: Vec<(Option<&str>, Vec<&Op>)> = Vec::new();
    for op in ops {
        match op {
            Op::Key(k) => groups.push((Some(k.as_str()), Vec::new())),
            other => match groups.last_mut() {
                Some((_, rest)) => rest.push(other),
                None => groups.push((None, vec![other])),
            },
        }
    }
    fn below(k: &str) -> Option<&str> {
        k.get(..CCS.len())
            .filter(|h| h.eq_ignore_ascii_case(CCS))
            .map(|_| &k[CCS.len()..])
            .filter(|rest| rest.is_empty() || rest.starts_with('\\'))
    }
    let mut out = Vec::new();
    for (key, rest) in &groups {
        let tail = key.and_then(below);
        match (key, tail) {
            (Some(_), Some(tail)) => {
                for cs in sets {
                    out.push(Op::Key(format!(
                        "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet{cs:03}{tail}"
                    )));
                    out.extend(rest.iter().map(|o| (*o).clone()));
                }
            }
            (Some(k), None) => {
                out.push(Op::Key(k.to_string()));
                out.extend(rest.iter().map(|o| (*o).clone()));
            }
            (None, _) => out.extend(rest.iter().map(|o| (*o).clone())),
        }
    }
    out
}

/// A driver package the DriverDatabase of a SYSTEM hive already holds for a service: its
/// INF, the package label and the configuration that names the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The INF (`viostor.inf`).
    pub inf: String,
    /// The package (`viostor.inf_amd64_...`).
    pub label: String,
    /// The configuration whose Service is the service.
    pub configuration: String,
}

/// Most DriverDatabase packages looked through (a Windows 10 hive holds about a thousand).
const MAX_PACKAGES: usize = 20_000;

/// The DriverDatabase package of `system` that installs `service`: the one its INF's
/// `Active` value names first, else any. `None` when no package names it.
pub fn registered(system: &Hive, service: &str) -> Result<Option<Registered>> {
    let packages = system.subkeys("DriverDatabase\\DriverPackages")?;
    let mut found = Vec::new();
    for label in packages.iter().take(MAX_PACKAGES) {
        let configs = format!("DriverDatabase\\DriverPackages\\{label}\\Configurations");
        for c in system.subkeys(&configs)? {
            let named = system.string(&format!("{configs}\\{c}"), "Service")?;
            if named.is_some_and(|n| n.eq_ignore_ascii_case(service)) {
                // `<inf>_<arch>_<hash>`: the INF is what comes before the last two parts.
                let inf = label
                    .rsplitn(3, '_')
                    .nth(2)
                    .filter(|i| i.to_ascii_lowercase().ends_with(".inf"))
                    .unwrap_or(label)
                    .to_string();
                found.push(Registered {
                    inf,
                    label: label.clone(),
                    configuration: c,
                });
            }
        }
    }
    for r in &found {
        let active = system.string(
            &format!("DriverDatabase\\DriverInfFiles\\{}", r.inf),
            "Active",
        )?;
        if active.is_some_and(|a| a.eq_ignore_ascii_case(&r.label)) {
            return Ok(Some(r.clone()));
        }
    }
    Ok(found.into_iter().next())
}

/// DriverDatabase edits that bind `ids` (`PCI\VEN_...`) to a package already registered:
/// `DeviceIds\<id>` names its INF, the package's `Descriptors\<id>` its configuration,
/// and the INF's `Active` value the package.
pub fn bind(r: &Registered, ids: &[String]) -> Vec<Op> {
    let ddb = "HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase";
    let pkg = format!("{ddb}\\DriverPackages\\{}", r.label);
    let mut ops = vec![
        Op::Key(format!("{ddb}\\DriverInfFiles\\{}", r.inf)),
        set("Active", 1, utf16z(&r.label)),
    ];
    for id in ids {
        ops.push(Op::Key(format!("{ddb}\\DeviceIds\\{id}")));
        ops.push(set(&r.inf, 3, vec![0x01, 0xff, 0x00, 0x00]));
        ops.push(Op::Key(format!("{pkg}\\Descriptors\\{id}")));
        ops.push(set("Configuration", 1, utf16z(&r.configuration)));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Op {
        Op::Key(k.into())
    }

    #[test]
    fn current_control_set_keys_are_written_for_each_control_set() {
        let v = set("Start", 4, dword(0));
        let ops = vec![
            key("HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\viostor"),
            v.clone(),
            key("HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DriverInfFiles\\viostor.inf"),
            v.clone(),
            key("HKEY_LOCAL_MACHINE\\SYSTEM\\currentcontrolset"),
            key("HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSetX\\Y"),
        ];
        let out = in_control_sets(&ops, &[1, 3]);
        assert_eq!(
            out,
            vec![
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\viostor"),
                v.clone(),
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet003\\Services\\viostor"),
                v.clone(),
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DriverInfFiles\\viostor.inf"),
                v.clone(),
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001"),
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet003"),
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSetX\\Y"),
            ]
        );
        // No control set: only what lies outside them.
        assert_eq!(
            in_control_sets(&ops, &[]),
            vec![
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DriverInfFiles\\viostor.inf"),
                v,
                key("HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSetX\\Y"),
            ]
        );
    }

    #[test]
    fn bound_ids_name_the_inf_and_the_configuration() {
        let r = Registered {
            inf: "viostor.inf".into(),
            label: "viostor.inf_amd64_3f9b2a1c5d4e6f70".into(),
            configuration: "rhelscsi_inst".into(),
        };
        let ops = bind(&r, &["PCI\\VEN_1AF4&DEV_1001".into()]);
        assert!(ops.contains(&key(
            "HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DriverPackages\\viostor.inf_amd64_3f9b2a1c5d4e6f70\\Descriptors\\PCI\\VEN_1AF4&DEV_1001"
        )));
        assert!(ops.contains(&set("viostor.inf", 3, vec![1, 0xff, 0, 0])));
        assert!(ops.contains(&set("Configuration", 1, utf16z("rhelscsi_inst"))));
    }
}
