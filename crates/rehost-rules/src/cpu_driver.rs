//! `cpu-driver`: processor power drivers (intelppm, amdppm, amdk8, Processor) forced to load
//! (Start 0 to 2, not left to Plug and Play) on a CPU of another vendor stop with 0x7E, or
//! 0xFC when PAE is on (KB 953356); on a virtual machine they are a warning. Start 3 lets
//! Plug and Play load them only where the processor matches, so it is no finding.

use super::finding::{Evidence, Finding};
use super::fix::{FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;
use rehost_windows::halsource;

const ID: &str = "cpu-driver";

/// What of the target the check reads.
pub fn reads(t: &Target) -> u64 {
    super::target::hash((t.vm, &t.cpu_vendor))
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    for (cs, svc, r) in s.present("cpu")?.iter() {
        let cs = *cs;
        {
            if !matches!(r.start, Some(0..=2)) {
                continue;
            }
            let vendor = svc.vendor.as_deref();
            let other = vendor.is_some_and(|v| t.cpu_vendor != "any" && v != t.cpu_vendor);
            let (case, why) = if other && pae_on(s) {
                (
                    "other-vendor-pae",
                    format!("the target has {} CPUs, and PAE is on", t.cpu_vendor),
                )
            } else if other {
                (
                    "other-vendor",
                    format!("the target has {} CPUs", t.cpu_vendor),
                )
            } else if t.vm {
                ("vm", "the target is a virtual machine".to_string())
            } else if vendor.is_some() && t.cpu_vendor == "any" {
                (
                    "unknown-vendor",
                    "the target's CPU vendor is not known".to_string(),
                )
            } else {
                continue;
            };
            let key = format!("{}\\Services\\{}", s.cs_key(cs), svc.name);
            let start = r.start.map(|x| x.to_string()).unwrap_or_default();
            let mut f = Finding::new(
                ID,
                case,
                format!(
                    "{} ({}) is forced to load (Start={start}) and {why}",
                    svc.name, svc.drives
                ),
            );
            if let Some(stop) = &f.stop {
                f.message = format!("{}: STOP {stop}", f.message);
            }
            out.findings.push(
                f.with(Evidence::system(key, "Start", start))
                    .about(Some(cs), Some(&svc.name)),
            );
        }
    }
    Ok(())
}

/// Whether the install runs with PAE (and so no-execute) on a target: x64 always; x86
/// Vista and later whenever DEP is on, which it is by default on a processor with NX
/// (every target rehost knows); NT 5.x as its kernel's release and its boot.ini switches
/// decide ([`halsource::boots_pae`]).
fn pae_on(s: &Subject) -> bool {
    if !s.nt5() || s.install.arch.as_deref() == Some("x64") {
        return true;
    }
    let switches = s
        .default_entry()
        .map(|e| e.switches.clone())
        .unwrap_or_default();
    s.install
        .kernels
        .iter()
        .find(|k| k.file.eq_ignore_ascii_case("ntoskrnl.exe"))
        .and_then(|k| k.file_version.as_deref())
        .is_some_and(|v| halsource::boots_pae(v, &switches))
}

/// The fix: Start 4 (disabled) for each power driver found forced to load, in its
/// control set. The keys stay: deleting them broke later driver installs (virt-v2v went
/// back on it).
pub fn fix(
    s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    _o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    plan.disable_services(ID, s, findings);
    Ok(())
}
