//! `version-skew`: the HAL and kernel the boot entry loads (hal.dll and ntoskrnl.exe, or
//! what `/HAL=` and `/KERNEL=` name), kernel32.dll and ntdll.dll must come from one build
//! (and on NT 5.x one service pack). A System State restore brings back the registry,
//! kernel32.dll and ntdll.dll of one level over the HAL and kernel of another.

use super::finding::{Evidence, Finding};
use super::fix::{FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;
use rehost_windows::hal;

const ID: &str = "version-skew";

fn parts(v: &Option<String>) -> Option<Vec<u32>> {
    // "5.1.2600.5512 (xpsp.080413-2111)": the numbers come first.
    let p: Vec<u32> = v
        .as_deref()?
        .split_whitespace()
        .next()?
        .split('.')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    (p.len() >= 3).then_some(p)
}

/// The HAL and kernel the default boot entry loads (`/HAL=`, `/KERNEL=`, else hal.dll and
/// ntoskrnl.exe) and their FileVersions.
fn loaded(s: &Subject) -> ((String, Option<String>), (String, Option<String>)) {
    let v = &s.install.versions;
    let version = |file: &str, installed: &str, known: &Option<String>| {
        if file.eq_ignore_ascii_case(installed) {
            return known.clone();
        }
        let mut errors = Vec::new();
        let root = &s.install.system_root;
        hal::pe_of(s.scene, s.install.volume, root, file, &mut errors)?
            .version?
            .file_version
    };
    let hal = s
        .loaded_hal()
        .map(|h| h.file.clone())
        .unwrap_or_else(|| "hal.dll".into());
    let kernel = s
        .loaded_kernels()
        .first()
        .map(|k| k.file.clone())
        .unwrap_or_else(|| "ntoskrnl.exe".into());
    let hv = version(&hal, "hal.dll", &v.hal);
    let kv = version(&kernel, "ntoskrnl.exe", &v.ntoskrnl);
    ((hal, hv), (kernel, kv))
}

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let v = &s.install.versions;
    let nt5 = s.nt5();
    let ((hal_file, hal_v), (kernel_file, kernel_v)) = loaded(s);
    let (h, k, k32, n) = (
        parts(&hal_v),
        parts(&kernel_v),
        parts(&v.kernel32),
        parts(&v.ntdll),
    );
    let build = |p: &Vec<u32>| p[2];
    let rev = |p: &Vec<u32>| p.get(3).copied();
    let differ = |a: &Vec<u32>, b: &Vec<u32>| build(a) != build(b) || (nt5 && rev(a) != rev(b));
    let root = &s.install.system_root;
    let ev = |file: &str, version: &Option<String>| {
        Evidence::file(
            s.install.volume,
            format!("{root}\\System32\\{file}"),
            format!("FileVersion {}", version.as_deref().unwrap_or("?")),
        )
    };
    if let (Some(k), Some(n)) = (&k, &n) {
        if differ(k, n) {
            out.findings.push(
                Finding::new(
                    ID,
                    "kernel-ntdll",
                    format!(
                        "{kernel_file} is {} but ntdll.dll is {}: the kernel and the system \
                         library come from different {}",
                        kernel_v.as_deref().unwrap_or("?"),
                        v.ntdll.as_deref().unwrap_or("?"),
                        if build(k) != build(n) {
                            "builds"
                        } else {
                            "service packs"
                        }
                    ),
                )
                .with(ev(&kernel_file, &kernel_v))
                .with(ev("ntdll.dll", &v.ntdll)),
            );
        }
    }
    if let (Some(h), Some(k)) = (&h, &k) {
        let case = if build(h) != build(k) {
            Some("hal-kernel")
        } else if nt5 && rev(h) != rev(k) {
            Some("hal-service-pack")
        } else {
            None
        };
        if let Some(case) = case {
            out.findings.push(
                Finding::new(
                    ID,
                    case,
                    format!(
                        "{hal_file} is {} but {kernel_file} is {}",
                        hal_v.as_deref().unwrap_or("?"),
                        kernel_v.as_deref().unwrap_or("?")
                    ),
                )
                .with(ev(&hal_file, &hal_v))
                .with(ev(&kernel_file, &kernel_v)),
            );
        }
    }
    if let (Some(k32), Some(n)) = (&k32, &n) {
        if differ(k32, n) {
            out.findings.push(
                Finding::new(
                    ID,
                    "kernel32-ntdll",
                    format!(
                        "kernel32.dll is {} but ntdll.dll is {}",
                        v.kernel32.as_deref().unwrap_or("?"),
                        v.ntdll.as_deref().unwrap_or("?")
                    ),
                )
                .with(ev("kernel32.dll", &v.kernel32))
                .with(ev("ntdll.dll", &v.ntdll)),
            );
        }
    }
    Ok(())
}

/// The fix: the HAL set of kernel32.dll's build, the target's HAL with its two kernels
/// ([`super::hal_fix`]).
pub fn fix(
    s: &Subject,
    t: &Target,
    findings: &[&Finding],
    o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    super::hal_fix::plan(s, t, findings, o, plan, ID)
}
