//! The HAL, the kernels and the versions of the files that must match: what decides STOP
//! 0x79 and the hangs of a HAL that does not fit the machine.

use super::install::control_set_key;
use super::knowledge::Knowledge;
use super::report::{BootEntry, HalReport, Install, KernelReport, Versions};
use super::scene::Scene;
use rehost_core::error::Layer;
use rehost_formats::pe::{self, PeInfo};
use rehost_regf::hive::Hive;

/// Reads a PE image of System32; `None` when it is absent, an error string when unreadable.
pub fn pe_of(
    scene: &Scene,
    volume: u32,
    root: &str,
    file: &str,
    errors: &mut Vec<String>,
) -> Option<PeInfo> {
    let path = format!("{root}\\System32\\{file}");
    if !scene.is_file(volume, &path) {
        return None;
    }
    let parsed = scene
        .read(volume, &path)
        .and_then(|b| pe::parse(&b, &scene.ctx.with_layer(Layer::Pe), &path));
    match parsed {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    }
}

fn original(p: &Option<PeInfo>) -> Option<String> {
    p.as_ref()?.version.as_ref()?.original_filename.clone()
}

fn file_version(p: &Option<PeInfo>) -> Option<String> {
    p.as_ref()?.version.as_ref()?.file_version.clone()
}

/// The file name a boot entry's `/HAL=` or `/KERNEL=` (or BCD path) gives.
fn entry_file(path: Option<&String>) -> Option<String> {
    path.map(|p| p.rsplit(['\\', '/']).next().unwrap_or(p).to_string())
        .filter(|f| !f.is_empty())
}

/// What names a HAL or kernel file in the default boot entry, in words: `/HAL= of the
/// default boot.ini entry`, `the hal element of the default BCD entry`.
fn named_by(store: &str, switch: &str, element: &str) -> String {
    if store == "boot.ini" {
        format!("{switch} of the default boot.ini entry")
    } else {
        format!("the {element} element of the default BCD entry")
    }
}

/// Fills the HAL, kernels, versions and architecture of `install`: the HAL and kernel are
/// those `entry` (the default boot entry that starts the install, with its store's kind)
/// loads, hal.dll and ntoskrnl.exe unless it names others.
pub fn analyse(
    scene: &Scene,
    install: &mut Install,
    system: &Hive,
    cs: Option<u32>,
    entry: Option<(&BootEntry, &str)>,
    errors: &mut Vec<String>,
) {
    let k = Knowledge::builtin();
    let (v, root) = (install.volume, install.system_root.clone());
    let named_hal = entry
        .and_then(|(e, _)| entry_file(e.hal.as_ref()))
        .filter(|f| !f.eq_ignore_ascii_case("hal.dll"));
    let named_kernel = entry
        .and_then(|(e, _)| entry_file(e.kernel.as_ref()))
        .filter(|f| {
            !["ntoskrnl.exe", "ntkrnlpa.exe"]
                .iter()
                .any(|n| f.eq_ignore_ascii_case(n))
        });
    let store = entry.map_or("", |(_, s)| s);
    let hal_file = named_hal.clone().unwrap_or_else(|| "hal.dll".into());
    let hal = pe_of(scene, v, &root, &hal_file, errors);
    let mut report = HalReport {
        loaded_by: named_hal.as_ref().map(|_| named_by(store, "/HAL=", "hal")),
        file: hal_file,
        original_filename: original(&hal),
        file_version: file_version(&hal),
        ..Default::default()
    };
    if let Some(cs) = cs {
        for key in ["ACPI_HAL", "PCI_HAL"] {
            let path = format!("{}\\Enum\\Root\\{key}\\0000", control_set_key(cs));
            if let Ok(Some(id)) = system.value(&path, "HardwareID") {
                report.hardware_id = id.as_str().map(str::to_string);
                report.hardware_id_key = Some(path);
                break;
            }
        }
    }
    let variants = report
        .original_filename
        .as_deref()
        .map(|f| k.hals_named(f))
        .unwrap_or_default();
    // Several variants share a file name (hal.dll: the standard PC HAL, and the single
    // HAL of x64); the HardwareID tells which one this is.
    let chosen = match &report.hardware_id {
        Some(id) => variants
            .iter()
            .find(|h| h.hardware_ids.iter().any(|i| i.eq_ignore_ascii_case(id))),
        None => None,
    }
    .or(variants.first());
    report.processors = chosen.map(|h| h.processors.clone());
    // Setup's record is of hal.dll: a HAL the boot entry names instead is not compared.
    if let (Some(id), false, None) = (&report.hardware_id, variants.is_empty(), &named_hal) {
        report.agrees = Some(
            variants
                .iter()
                .any(|h| h.hardware_ids.iter().any(|i| i.eq_ignore_ascii_case(id))),
        );
    }
    // UP and MP kernels, and HALs that need one or the other, are NT 5.x's: from Vista on
    // every kernel is multiprocessor and the pairing cannot go wrong.
    let nt5 = file_version(&hal).is_some_and(|v| v.starts_with("5."));
    if !nt5 {
        report.processors = None;
    }
    let mut kernels = Vec::new();
    let mut ntoskrnl = None;
    let mut loaded_kernel = None;
    let files = named_kernel
        .iter()
        .map(String::as_str)
        .chain(["ntoskrnl.exe", "ntkrnlpa.exe"]);
    for file in files {
        let Some(p) = pe_of(scene, v, &root, file, errors) else {
            continue;
        };
        let p = Some(p);
        let orig = original(&p);
        let variant = orig.as_deref().and_then(|o| k.kernel(o)).filter(|_| nt5);
        let loaded = named_kernel.as_deref().is_none_or(|n| n == file);
        kernels.push(KernelReport {
            file: file.to_string(),
            loaded,
            loaded_by: (named_kernel.as_deref() == Some(file))
                .then(|| named_by(store, "/KERNEL=", "kernel")),
            original_filename: orig.clone(),
            file_version: file_version(&p),
            processors: variant.map(|x| x.processors.clone()),
            pae: variant.map(|x| x.pae),
            matches_hal: match (variant, &report.processors, loaded) {
                (Some(x), Some(need), true) => Some(&x.processors == need),
                _ => None,
            },
        });
        if file == "ntoskrnl.exe" {
            ntoskrnl = p.clone();
        }
        if loaded && loaded_kernel.is_none() {
            loaded_kernel = p;
        }
    }
    // The machine type of the install is ntoskrnl.exe's (a kernel named instead is of the
    // same install).
    install.arch = ntoskrnl
        .as_ref()
        .or(loaded_kernel.as_ref())
        .map(|p| p.machine.clone());
    let kernel32 = pe_of(scene, v, &root, "kernel32.dll", errors);
    let ntdll = pe_of(scene, v, &root, "ntdll.dll", errors);
    install.versions = versions(
        Named::hal(
            &report.file,
            report.original_filename.as_deref(),
            file_version(&hal),
        ),
        Named::file(
            kernels
                .iter()
                .find(|k| k.loaded)
                .map_or("ntoskrnl.exe", |k| k.file.as_str()),
            file_version(&loaded_kernel),
        ),
        file_version(&kernel32),
        file_version(&ntdll),
    );
    install.hal = report;
    install.kernels = kernels;
}

/// A file whose version is compared, named as inspect names it.
#[derive(Debug, Clone)]
pub struct Named {
    /// How the file is named in words: `the HAL (hal.dll, halaacpi.dll)`, `ntoskrnl.exe`.
    pub name: String,
    /// Its FileVersion.
    pub version: Option<String>,
}

impl Named {
    /// The HAL in `file`, built as `original`: named as the HAL, with its file and, where it
    /// differs, the name it was built under (hal.dll is one of several HALs).
    pub fn hal(file: &str, original: Option<&str>, version: Option<String>) -> Named {
        let name = match original {
            Some(o) if !o.eq_ignore_ascii_case(file) => format!("the HAL ({file}, {o})"),
            _ => format!("the HAL ({file})"),
        };
        Named { name, version }
    }

    /// Any other file, by its name.
    pub fn file(file: &str, version: Option<String>) -> Named {
        Named {
            name: file.to_string(),
            version,
        }
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Compares the four versions: builds must agree everywhere; on NT 5.x the revisions tell
/// the service pack, and the HAL must match kernel32.dll (a System State restore brings
/// back kernel32.dll and the registry but not hal.dll). The HAL and kernel are those the
/// default boot entry loads.
pub fn versions(
    hal: Named,
    kernel: Named,
    kernel32: Option<String>,
    ntdll: Option<String>,
) -> Versions {
    let parts = |s: &Option<String>| -> Option<Vec<u32>> {
        // "5.1.2600.5512 (xpsp.080413-2111)": the numbers come first.
        s.as_deref().map(|v| {
            v.split_whitespace()
                .next()
                .unwrap_or("")
                .split('.')
                .filter_map(|p| p.parse().ok())
                .collect()
        })
    };
    let named = [
        (hal.name.as_str(), &hal.version),
        (kernel.name.as_str(), &kernel.version),
        ("kernel32.dll", &kernel32),
        ("ntdll.dll", &ntdll),
    ];
    let known: Vec<(&str, Vec<u32>)> = named
        .iter()
        .filter_map(|(n, v)| Some((*n, parts(v)?)))
        .collect();
    // The files grouped by the version they are at, in the order named: "the HAL (hal.dll,
    // halaacpi.dll) and ntoskrnl.exe are 5.2.3790.1830, kernel32.dll and ntdll.dll
    // 5.2.3790.3959".
    let grouped = |key: &dyn Fn(&Vec<u32>) -> Option<u32>| {
        let mut groups: Vec<(Option<u32>, String, Vec<&str>)> = Vec::new();
        for (n, p) in &known {
            let k = key(p);
            let shown = p.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            match groups.iter_mut().find(|(g, _, _)| *g == k) {
                Some((_, _, names)) => names.push(n),
                None => groups.push((k, shown, vec![n])),
            }
        }
        groups
            .iter()
            .enumerate()
            .map(|(i, (_, v, names))| {
                let verb = match (i, names.len()) {
                    (0, 1) => " is",
                    (0, _) => " are",
                    _ => "",
                };
                format!("{}{verb} {v}", and_list(names))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut detail = None;
    let builds: Vec<u32> = known
        .iter()
        .filter_map(|(_, p)| p.get(2).copied())
        .collect();
    if builds.windows(2).any(|w| w[0] != w[1]) {
        detail = Some(format!(
            "builds differ: {}",
            grouped(&|p: &Vec<u32>| p.get(2).copied())
        ));
    } else if known.first().is_some_and(|(_, p)| p.first() == Some(&5)) {
        let rev = |name: &str| {
            known
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, p)| p.get(3).copied())
        };
        let differs = [kernel.name.as_str(), "kernel32.dll", "ntdll.dll"]
            .iter()
            .any(|other| matches!((rev(&hal.name), rev(other)), (Some(a), Some(b)) if a != b));
        if differs {
            detail = Some(format!(
                "service pack levels differ: {}",
                grouped(&|p: &Vec<u32>| p.get(3).copied())
            ));
        }
    }
    Versions {
        hal: hal.version,
        ntoskrnl: kernel.version,
        kernel32,
        ntdll,
        skew: detail.is_some(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::{versions, Named};

    fn v(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    fn hal(version: &str) -> Named {
        Named::hal("hal.dll", Some("halaacpi.dll"), v(version))
    }

    fn kernel(version: &str) -> Named {
        Named::file("ntoskrnl.exe", v(version))
    }

    #[test]
    fn skew_by_build_and_by_nt5_revision() {
        assert!(
            !versions(
                hal("6.1.7601.17514"),
                kernel("6.1.7601.24545"),
                v("6.1.7601.24542"),
                v("6.1.7601.24545")
            )
            .skew
        );
        let builds = versions(hal("6.1.7600.16385"), kernel("6.1.7601.17514"), None, None);
        assert!(builds.skew);
        assert_eq!(
            builds.detail.unwrap(),
            "builds differ: the HAL (hal.dll, halaacpi.dll) is 6.1.7600.16385, ntoskrnl.exe \
             6.1.7601.17514"
        );
        let seed = versions(
            hal("5.2.3790.1830"),
            kernel("5.2.3790.1830"),
            v("5.2.3790.3959"),
            v("5.2.3790.3959"),
        );
        assert!(seed.skew);
        assert_eq!(
            seed.detail.unwrap(),
            "service pack levels differ: the HAL (hal.dll, halaacpi.dll) and ntoskrnl.exe are \
             5.2.3790.1830, kernel32.dll and ntdll.dll 5.2.3790.3959"
        );
        assert!(
            !versions(
                hal("5.1.2600.5512 (xpsp.080413-2111)"),
                kernel("5.1.2600.5512"),
                v("5.1.2600.5512"),
                None
            )
            .skew
        );
        // A version's build tag does not hide its revision.
        assert!(
            versions(
                hal("5.1.2600.2180 (xpsp_sp2_rtm.040803-2158)"),
                kernel("5.1.2600.5512"),
                None,
                None
            )
            .skew
        );
    }

    #[test]
    fn the_hal_is_named_by_its_file_and_what_it_was_built_as() {
        assert_eq!(
            Named::hal("hal.dll", Some("halaacpi.dll"), None).name,
            "the HAL (hal.dll, halaacpi.dll)"
        );
        assert_eq!(
            Named::hal("halmacpi.dll", Some("halmacpi.dll"), None).name,
            "the HAL (halmacpi.dll)"
        );
        assert_eq!(Named::file("ntkrpamp.exe", None).name, "ntkrpamp.exe");
    }
}
