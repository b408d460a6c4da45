//! `cpu-driver`: processor power drivers (intelppm, amdppm, amdk8, processr) forced to load
//! (Start 0 to 2, not left to Plug and Play) on a CPU of another vendor, or on a virtual
//! machine, stop with 0x7E (KB 953356). Start 3 lets Plug and Play load them only where
//! the processor matches, so it is no finding.

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use crate::error::Result;
use crate::windows::knowledge::Knowledge;

const ID: &str = "cpu-driver";

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    let k = Knowledge::builtin();
    for svc in k.services.iter().filter(|x| x.role == "cpu") {
        for &cs in &s.sets {
            let Some(r) = s.service(cs, &svc.name)? else {
                continue;
            };
            if !matches!(r.start, Some(0..=2)) {
                continue;
            }
            let vendor = svc.vendor.as_deref();
            let other = vendor.is_some_and(|v| t.cpu_vendor != "any" && v != t.cpu_vendor);
            let (case, why) = if other {
                (
                    "other-vendor",
                    format!("{} has {} CPUs", t.name, t.cpu_vendor),
                )
            } else if t.vm {
                ("vm", format!("{} is a virtual machine", t.name))
            } else if vendor.is_some() && t.cpu_vendor == "any" {
                (
                    "unknown-vendor",
                    format!("{}'s CPU vendor is not known", t.name),
                )
            } else {
                continue;
            };
            let key = format!("{}\\Services\\{}", s.cs_key(cs), svc.name);
            let start = r.start.map(|x| x.to_string()).unwrap_or_default();
            out.findings.push(
                Finding::new(
                    ID,
                    case,
                    format!(
                        "{} ({}) is forced to load (Start={start}) and {why}: STOP 0x7E",
                        svc.name, svc.drives
                    ),
                )
                .with(Evidence::system(key, "Start", start))
                .about(Some(cs), Some(&svc.name)),
            );
        }
    }
    Ok(())
}
