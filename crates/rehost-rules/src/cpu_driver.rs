//! `cpu-driver`: processor power drivers (intelppm, amdppm, amdk8, processr) forced to load
//! (Start 0 to 2, not left to Plug and Play) on a CPU of another vendor, or on a virtual
//! machine, stop with 0x7E (KB 953356). Start 3 lets Plug and Play load them only where
//! the processor matches, so it is no finding.

use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;

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
            let (case, why) = if other {
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
    let mut ops = Vec::new();
    let mut names = Vec::new();
    for f in findings {
        let (Some(cs), Some(svc)) = (f.control_set, &f.service) else {
            continue;
        };
        ops.extend(reg::start(&s.cs_key(cs), svc, 4));
        names.push(format!("{svc} in {}", s.cs_key(cs)));
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!("disable {}", names.join(", ")),
            Change::Registry {
                hive: "SYSTEM".into(),
                store: None,
                ops,
            },
        );
    }
    Ok(())
}
