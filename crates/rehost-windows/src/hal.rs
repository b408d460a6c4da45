//! The HAL, the kernels and the versions of the files that must match: what decides STOP
//! 0x79 and the hangs of a HAL that does not fit the machine.

use super::install::control_set_key;
use super::knowledge::Knowledge;
use super::report::{HalReport, Install, KernelReport, Versions};
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

/// Fills the HAL, kernels, versions and architecture of `install`.
pub fn analyse(
    scene: &Scene,
    install: &mut Install,
    system: &Hive,
    cs: Option<u32>,
    errors: &mut Vec<String>,
) {
    let k = Knowledge::builtin();
    let (v, root) = (install.volume, install.system_root.clone());
    let hal = pe_of(scene, v, &root, "hal.dll", errors);
    let mut report = HalReport {
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
    if let (Some(id), false) = (&report.hardware_id, variants.is_empty()) {
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
    for file in ["ntoskrnl.exe", "ntkrnlpa.exe"] {
        let Some(p) = pe_of(scene, v, &root, file, errors) else {
            continue;
        };
        let p = Some(p);
        let orig = original(&p);
        let variant = orig.as_deref().and_then(|o| k.kernel(o)).filter(|_| nt5);
        kernels.push(KernelReport {
            file: file.to_string(),
            original_filename: orig.clone(),
            file_version: file_version(&p),
            processors: variant.map(|x| x.processors.clone()),
            pae: variant.map(|x| x.pae),
            matches_hal: match (variant, &report.processors) {
                (Some(x), Some(need)) => Some(&x.processors == need),
                _ => None,
            },
        });
        if file == "ntoskrnl.exe" {
            ntoskrnl = p;
        }
    }
    install.arch = ntoskrnl.as_ref().map(|p| p.machine.clone());
    let kernel32 = pe_of(scene, v, &root, "kernel32.dll", errors);
    let ntdll = pe_of(scene, v, &root, "ntdll.dll", errors);
    install.versions = versions(
        file_version(&hal),
        file_version(&ntoskrnl),
        file_version(&kernel32),
        file_version(&ntdll),
    );
    install.hal = report;
    install.kernels = kernels;
}

/// Compares the four versions: builds must agree everywhere; on NT 5.x the revisions tell
/// the service pack, and hal.dll must match kernel32.dll (a System State restore brings
/// back kernel32.dll and the registry but not hal.dll).
pub fn versions(
    hal: Option<String>,
    ntoskrnl: Option<String>,
    kernel32: Option<String>,
    ntdll: Option<String>,
) -> Versions {
    let parts = |s: &Option<String>| -> Option<Vec<u32>> {
        s.as_deref()
            .map(|v| v.split('.').filter_map(|p| p.parse().ok()).collect())
    };
    let named = [
        ("hal.dll", &hal),
        ("ntoskrnl.exe", &ntoskrnl),
        ("kernel32.dll", &kernel32),
        ("ntdll.dll", &ntdll),
    ];
    let known: Vec<(&str, Vec<u32>)> = named
        .iter()
        .filter_map(|(n, v)| Some((*n, parts(v)?)))
        .collect();
    let mut detail = None;
    let builds: Vec<u32> = known
        .iter()
        .filter_map(|(_, p)| p.get(2).copied())
        .collect();
    if builds.windows(2).any(|w| w[0] != w[1]) {
        detail = Some(format!(
            "builds differ: {}",
            known
                .iter()
                .map(|(n, p)| format!("{n} {}", p.get(2).unwrap_or(&0)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else if known.first().is_some_and(|(_, p)| p.first() == Some(&5)) {
        let rev = |name: &str| {
            known
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, p)| p.get(3).copied())
        };
        let mut pairs = Vec::new();
        for other in ["ntoskrnl.exe", "kernel32.dll", "ntdll.dll"] {
            if let (Some(a), Some(b)) = (rev("hal.dll"), rev(other)) {
                if a != b {
                    pairs.push(format!("hal.dll {a} vs {other} {b}"));
                }
            }
        }
        if !pairs.is_empty() {
            detail = Some(format!("service pack levels differ: {}", pairs.join(", ")));
        }
    }
    Versions {
        hal,
        ntoskrnl,
        kernel32,
        ntdll,
        skew: detail.is_some(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::versions;

    #[test]
    fn skew_by_build_and_by_nt5_revision() {
        let v = |s: &str| Some(s.to_string());
        assert!(
            !versions(
                v("6.1.7601.17514"),
                v("6.1.7601.24545"),
                v("6.1.7601.24542"),
                v("6.1.7601.24545")
            )
            .skew
        );
        assert!(versions(v("6.1.7600.16385"), v("6.1.7601.17514"), None, None).skew);
        let seed = versions(
            v("5.2.3790.1830"),
            v("5.2.3790.1830"),
            v("5.2.3790.3959"),
            v("5.2.3790.3959"),
        );
        assert!(seed.skew);
        assert!(seed.detail.unwrap().contains("kernel32.dll 3959"));
        assert!(
            !versions(
                v("5.1.2600.5512"),
                v("5.1.2600.5512"),
                v("5.1.2600.5512"),
                None
            )
            .skew
        );
    }
}
