//! `hal-kernel-pair` (NT 5.x): the HAL and the kernels the boot entry loads must agree. A
//! uniprocessor HAL needs uniprocessor kernels and a multiprocessor HAL multiprocessor
//! ones (STOP 0x79 MISMATCHED_HAL); ntoskrnl.exe is the non-PAE kernel and ntkrnlpa.exe
//! the PAE one.

use super::finding::{Evidence, Finding};
use super::fix::{FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;

const ID: &str = "hal-kernel-pair";

fn flavour(p: &str) -> &'static str {
    if p == "mp" {
        "multiprocessor"
    } else {
        "uniprocessor"
    }
}

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    if !s.nt5() {
        return Ok(());
    }
    let Some(hal) = s.loaded_hal() else {
        return Ok(());
    };
    let Some(hv) = &hal.variant else {
        return Ok(());
    };
    let root = &s.install.system_root;
    let v = s.install.volume;
    let hal_ev = Evidence::file(
        v,
        format!("{root}\\System32\\{}", hal.file),
        format!(
            "OriginalFilename {}",
            hal.original.as_deref().unwrap_or("?")
        ),
    );
    for k in s.loaded_kernels() {
        let Some(kv) = &k.variant else {
            continue;
        };
        let k_ev = Evidence::file(
            v,
            format!("{root}\\System32\\{}", k.file),
            format!("OriginalFilename {}", k.original.as_deref().unwrap_or("?")),
        );
        if kv.processors != hv.processors {
            out.findings.push(
                Finding::new(
                    ID,
                    "up-mp",
                    format!(
                        "{} is {} ({}, a {} HAL) but {} is {}, a {} kernel: STOP 0x79 MISMATCHED_HAL",
                        hal.file,
                        hal.original.as_deref().unwrap_or("?"),
                        hv.description,
                        flavour(&hv.processors),
                        k.file,
                        k.original.as_deref().unwrap_or("?"),
                        flavour(&kv.processors)
                    ),
                )
                .with(hal_ev.clone())
                .with(k_ev.clone()),
            );
        }
        let wants_pae = match k.file.to_ascii_lowercase().as_str() {
            "ntoskrnl.exe" => Some(false),
            "ntkrnlpa.exe" => Some(true),
            _ => None,
        };
        if let Some(want) = wants_pae.filter(|w| *w != kv.pae) {
            out.findings.push(
                Finding::new(
                    ID,
                    "pae",
                    format!(
                        "{} is {}, a {} kernel, where Windows loads a {} kernel",
                        k.file,
                        k.original.as_deref().unwrap_or("?"),
                        if kv.pae { "PAE" } else { "non-PAE" },
                        if want { "PAE" } else { "non-PAE" }
                    ),
                )
                .with(k_ev),
            );
        }
    }
    Ok(())
}

/// The fix: the target's HAL with the kernels of its processor count, of one build
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
