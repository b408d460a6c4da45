//! Boot storage drivers from a driver folder (a virtio-win tree, a vendor's package): the
//! PnP IDs a PCI controller presents, and the INF package that installs on a given Windows
//! for them. What injecting it offline takes (the driver file in `System32\drivers`, the
//! service key, and the entries PnP consults at boot before any INF is processed:
//! CriticalDeviceDatabase up to Windows 7, DriverDatabase from Windows 8) is in
//! [`super::register`], re-exported here.

use rehost_core::error::{Ctx, Layer, Result};
use rehost_core::names;
use rehost_formats::inf::{self, Inf, Model, ServiceInstall, Target};
use rehost_formats::pe;
use std::path::{Path, PathBuf};

pub use super::register::{bind, in_control_sets, label, plan, registered, Injection, Registered};

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
    /// A PCI function from an ID as PnP and the target profiles write it
    /// (`VEN_1AF4&DEV_1001[&SUBSYS_00021AF4][&REV_00]`, a `PCI\` prefix allowed) and its
    /// class code (six hex digits; four get programming interface 0). `None` when the
    /// vendor or device is missing or a field is not hex.
    pub fn parse(id: &str, class: Option<&str>) -> Option<PciDevice> {
        let id = id
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("PCI\\"))
            .map_or(id, |_| &id[4..]);
        let (mut vendor, mut device, mut subsystem, mut revision) = (None, None, None, None);
        for field in id.split('&') {
            let (name, hex) = field.split_once('_')?;
            let n = u32::from_str_radix(hex, 16).ok()?;
            match name.to_ascii_uppercase().as_str() {
                "VEN" if hex.len() == 4 => vendor = Some(n as u16),
                "DEV" if hex.len() == 4 => device = Some(n as u16),
                "SUBSYS" if hex.len() == 8 => subsystem = Some(n),
                "REV" if hex.len() == 2 => revision = Some(n as u8),
                _ => return None,
            }
        }
        let class = match class {
            None => 0,
            Some(c) if c.len() == 6 => u32::from_str_radix(c, 16).ok()?,
            Some(c) if c.len() == 4 => u32::from_str_radix(c, 16).ok()? << 8,
            Some(_) => return None,
        };
        Some(PciDevice {
            vendor: vendor?,
            device: device?,
            subsystem,
            revision,
            class,
        })
    }

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

/// The file `relative` (`\`-separated, from an INF) below `dir`, each part matched
/// case-insensitively against the directory's own entries, as Windows would: `Err` when the
/// name would leave `dir` ([`names::contained`]), `Ok(None)` when it is not there.
fn find_below(
    dir: &Path,
    relative: &str,
) -> std::result::Result<Option<PathBuf>, names::UnsafeName> {
    let parts = names::contained(relative)?;
    let mut at = dir.to_path_buf();
    for part in parts {
        match find_ci(&at, part) {
            Some(p) => at = p,
            None => return Ok(None),
        }
    }
    Ok(at.is_file().then_some(at))
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
        // The INF's name becomes a file and registry key names in the image.
        let inf_name = path
            .file_name()
            .map(|f| f.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if let Err(e) = names::single(&inf_name) {
            skipped.push(format!("{shown}: the INF's file name {e}"));
            continue;
        }
        // Where SourceDisksNames and SourceDisksFiles put the binary, else beside the INF.
        let dirp = path.parent().unwrap_or(Path::new("."));
        let located = find_below(dirp, &service.source).and_then(|f| match f {
            Some(f) => Ok(Some(f)),
            None => find_below(dirp, service.binary_file()),
        });
        let sys = match located {
            Ok(Some(sys)) => sys,
            Ok(None) if service.source == service.binary_file() => {
                skipped.push(format!("{shown}: {} is not beside it", service.source));
                continue;
            }
            Ok(None) => {
                skipped.push(format!(
                    "{shown}: neither {} nor {} beside it is there",
                    service.source,
                    service.binary_file()
                ));
                continue;
            }
            Err(e) => {
                skipped.push(format!("{shown}: the driver file {e}"));
                continue;
            }
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
            inf_name,
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

#[cfg(test)]
mod tests {
    use super::PciDevice;

    #[test]
    fn pci_ids_parse_as_profiles_and_pnp_write_them() {
        let d =
            PciDevice::parse("VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00", Some("010000")).unwrap();
        assert_eq!(
            (d.vendor, d.device, d.subsystem, d.revision, d.class),
            (0x1af4, 0x1001, Some(0x0002_1af4), Some(0), 0x010000)
        );
        assert_eq!(
            d.hardware_ids()[0],
            "PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00"
        );
        let d = PciDevice::parse("pci\\ven_8086&dev_7111", Some("0101")).unwrap();
        assert_eq!((d.subsystem, d.revision, d.class), (None, None, 0x010100));
        for bad in [
            "VEN_1AF4",
            "DEV_1001",
            "VEN_1AF4&DEV_10",
            "VEN_1AF4&DEV_1001&REV_0",
            "VEN_1AF4&DEV_1001&SUBSYS_1",
            "VEN_1AF4&DEV_1001&CC_0100",
            "VEN_XYZW&DEV_1001",
            "",
        ] {
            assert_eq!(PciDevice::parse(bad, None), None, "{bad}");
        }
        assert_eq!(PciDevice::parse("VEN_1AF4&DEV_1001", Some("01")), None);
    }
}
