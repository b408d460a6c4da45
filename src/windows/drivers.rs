//! Boot storage drivers from a driver folder (a virtio-win tree, a vendor's package): the
//! PnP IDs a PCI controller presents, the INF package that installs on a given Windows for
//! them, and what injecting it offline takes: the driver file in `System32\drivers`, the
//! service key, and the entries PnP consults at boot before any INF is processed
//! (CriticalDeviceDatabase up to Windows 7, DriverDatabase from Windows 8).

use crate::error::{Ctx, Layer, Result};
use crate::formats::inf::{self, Inf, Model, ServiceInstall, Target};
use crate::formats::pe;
use crate::formats::regf::regtext::Op;
use std::path::{Path, PathBuf};

/// Most INF files a driver folder is searched for, and how deep.
const MAX_INFS: usize = 5_000;
const MAX_DEPTH: usize = 12;

/// A PCI function as PnP names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Subsystem (subsystem ID << 16 | subsystem vendor), when known.
    pub subsystem: Option<u32>,
    /// Revision, when known.
    pub revision: Option<u8>,
    /// Class code: base class, subclass, programming interface (0x010601 AHCI).
    pub class: u32,
}

impl PciDevice {
    /// The hardware IDs PnP reports for it, most specific first.
    pub fn hardware_ids(&self) -> Vec<String> {
        let base = format!("PCI\\VEN_{:04X}&DEV_{:04X}", self.vendor, self.device);
        let mut out = Vec::new();
        if let Some(s) = self.subsystem {
            if let Some(r) = self.revision {
                out.push(format!("{base}&SUBSYS_{s:08X}&REV_{r:02X}"));
            }
            out.push(format!("{base}&SUBSYS_{s:08X}"));
        }
        if let Some(r) = self.revision {
            out.push(format!("{base}&REV_{r:02X}"));
        }
        out.push(base);
        out
    }

    /// Its compatible IDs (by class code), most specific first.
    pub fn compatible_ids(&self) -> Vec<String> {
        let (cc, cls) = (self.class, self.class >> 8);
        let base = format!("PCI\\VEN_{:04X}&DEV_{:04X}", self.vendor, self.device);
        let mut out = Vec::new();
        if let Some(r) = self.revision {
            out.push(format!("{base}&REV_{r:02X}&CC_{cc:06X}"));
        }
        out.push(format!("{base}&CC_{cc:06X}"));
        out.push(format!("{base}&CC_{cls:04X}"));
        out.push(format!("PCI\\VEN_{:04X}&CC_{cc:06X}", self.vendor));
        out.push(format!("PCI\\VEN_{:04X}&CC_{cls:04X}", self.vendor));
        out.push(format!("PCI\\VEN_{:04X}", self.vendor));
        out.push(format!("PCI\\CC_{cc:06X}"));
        out.push(format!("PCI\\CC_{cls:04X}"));
        out
    }

    /// Every ID, hardware then compatible.
    pub fn ids(&self) -> Vec<String> {
        let mut v = self.hardware_ids();
        v.extend(self.compatible_ids());
        v
    }
}

/// The key name of an ID in CriticalDeviceDatabase: lower case, `\` as `#`.
pub fn cddb_key(id: &str) -> String {
    id.to_ascii_lowercase().replace('\\', "#")
}

/// A driver package found for an install.
#[derive(Debug, Clone)]
pub struct Package {
    /// The INF file on the host.
    pub inf_path: PathBuf,
    /// Its file name, lower case (`viostor.inf`).
    pub inf_name: String,
    /// The INF's bytes.
    pub inf_bytes: Vec<u8>,
    /// What it installs on the target.
    pub driver: inf::Driver,
    /// The Models line that matched the device.
    pub model: Model,
    /// Position of the matched ID in the device's ID list (0 = most specific).
    pub match_rank: usize,
    /// The function driver's service.
    pub service: ServiceInstall,
    /// The driver binary on the host and its bytes.
    pub binary: (PathBuf, Vec<u8>),
}

fn find_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().eq_ignore_ascii_case(name))
        })
}

fn inf_files(dir: &Path, ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| ctx.io(0, e))?;
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((p, depth + 1));
                }
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("inf")) {
                out.push(p);
                if out.len() > MAX_INFS {
                    return Err(ctx.invalid(format!(
                        "more than {MAX_INFS} INF files below {}",
                        dir.display()
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// The PE machine name (`x86`, `x64`) a Target architecture's binaries carry.
fn machine_for(arch: &str) -> &str {
    match arch {
        "amd64" => "x64",
        other => other,
    }
}

/// The packages below `dir` that install a boot-start-capable function driver for
/// `device` on `target`, best first: the most specific ID matched, then the newest
/// decoration, then the newest DriverVer. A package whose binary is missing or built for
/// another machine is left out, and why goes into `skipped`.
pub fn find_packages(
    dir: &Path,
    target: &Target,
    device: &PciDevice,
    skipped: &mut Vec<String>,
) -> Result<Vec<Package>> {
    let ctx = Ctx::new(dir.display().to_string(), Layer::Inf);
    let ids = device.ids();
    let mut found = Vec::new();
    for path in inf_files(dir, &ctx)? {
        let bytes = std::fs::read(&path).map_err(|e| ctx.io(0, e))?;
        let shown = path.display().to_string();
        let parsed = Inf::parse(&inf::decode(&bytes)).and_then(|i| i.driver(target));
        let driver = match parsed {
            Ok(d) => d,
            Err(e) => {
                skipped.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let best = driver
            .models
            .iter()
            .filter_map(|m| {
                let rank = ids
                    .iter()
                    .position(|id| m.ids.iter().any(|mi| mi.eq_ignore_ascii_case(id)))?;
                Some((rank, m))
            })
            .min_by_key(|(r, _)| *r);
        let Some((rank, model)) = best else { continue };
        let Some(service) = driver
            .services
            .iter()
            .find(|s| s.flags & 2 != 0)
            .or(driver.services.first())
        else {
            skipped.push(format!("{shown}: matches but adds no service"));
            continue;
        };
        let dirp = path.parent().unwrap_or(Path::new("."));
        let Some(sys) = find_ci(dirp, service.binary_file()) else {
            skipped.push(format!(
                "{shown}: {} is not beside it",
                service.binary_file()
            ));
            continue;
        };
        let sys_bytes = std::fs::read(&sys).map_err(|e| ctx.io(0, e))?;
        match pe::parse(
            &sys_bytes,
            &ctx.with_layer(Layer::Pe),
            &sys.display().to_string(),
        ) {
            Ok(p) if p.machine == machine_for(&target.arch) => {}
            Ok(p) => {
                skipped.push(format!(
                    "{}: built for {}, the install is {}",
                    sys.display(),
                    p.machine,
                    target.arch
                ));
                continue;
            }
            Err(e) => {
                skipped.push(e.to_string());
                continue;
            }
        }
        found.push(Package {
            inf_name: path
                .file_name()
                .map(|f| f.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default(),
            inf_path: path,
            inf_bytes: bytes,
            model: model.clone(),
            match_rank: rank,
            service: service.clone(),
            binary: (sys, sys_bytes),
            driver,
        });
    }
    found.sort_by(|a, b| {
        a.match_rank
            .cmp(&b.match_rank)
            .then_with(|| driver_ver(&b.driver).cmp(&driver_ver(&a.driver)))
    });
    Ok(found)
}

/// DriverVer as (yyyy, mm, dd, version parts) for ordering.
fn driver_ver(d: &inf::Driver) -> (u32, u32, u32, Vec<u32>) {
    let Some(v) = &d.driver_ver else {
        return (0, 0, 0, Vec::new());
    };
    let (date, ver) = v.split_once(',').unwrap_or((v, ""));
    let n: Vec<u32> = date
        .split('/')
        .map(|x| x.trim().parse().unwrap_or(0))
        .collect();
    let parts = ver
        .split('.')
        .map(|x| x.trim().parse().unwrap_or(0))
        .collect();
    (
        n.get(2).copied().unwrap_or(0),
        n.first().copied().unwrap_or(0),
        n.get(1).copied().unwrap_or(0),
        parts,
    )
}

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
    let file = svc.binary_file().to_ascii_lowercase();
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
    let mut label_out = None;
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
    }
    Injection {
        files,
        ops,
        label: label_out,
    }
}

fn set(name: &str, kind: u32, data: Vec<u8>) -> Op {
    Op::Set {
        name: name.to_string(),
        kind,
        data,
    }
}
