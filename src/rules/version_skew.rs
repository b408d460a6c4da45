//! `version-skew`: hal.dll, ntoskrnl.exe, kernel32.dll and ntdll.dll must come from one
//! build (and on NT 5.x one service pack). A System State restore brings back the
//! registry, kernel32.dll and ntdll.dll of one level over the HAL and kernel of another.

use super::finding::{Evidence, Finding};
use super::hal_kernel_pair::nt5;
use super::subject::Subject;
use super::target::Target;
use super::Out;
use crate::error::Result;

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

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let v = &s.install.versions;
    let nt5 = nt5(s);
    let (h, k, k32, n) = (
        parts(&v.hal),
        parts(&v.ntoskrnl),
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
                        "ntoskrnl.exe is {} but ntdll.dll is {}: the kernel and the system \
                         library come from different {}",
                        v.ntoskrnl.as_deref().unwrap_or("?"),
                        v.ntdll.as_deref().unwrap_or("?"),
                        if build(k) != build(n) {
                            "builds"
                        } else {
                            "service packs"
                        }
                    ),
                )
                .with(ev("ntoskrnl.exe", &v.ntoskrnl))
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
                        "hal.dll is {} but ntoskrnl.exe is {}",
                        v.hal.as_deref().unwrap_or("?"),
                        v.ntoskrnl.as_deref().unwrap_or("?")
                    ),
                )
                .with(ev("hal.dll", &v.hal))
                .with(ev("ntoskrnl.exe", &v.ntoskrnl)),
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
