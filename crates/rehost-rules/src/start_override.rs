//! `start-override` (Windows 8 and later): inbox storage drivers keep Start 0 and are
//! disabled by `Services\<svc>\StartOverride` values (3). Windows honours them, so a
//! controller's driver with a nonzero StartOverride value does not start at boot: 0x7B.

use super::boot_driver::driver_for;
use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;

const ID: &str = "start-override";

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    if s.version.is_some_and(|v| v < Version::WIN8) {
        return Ok(());
    }
    let Some(d) = driver_for(s, t, out) else {
        return Ok(());
    };
    for &cs in &s.sets {
        for name in &d.services {
            let Some(r) = s.service(cs, name)? else {
                continue;
            };
            let set: Vec<&(String, u32)> =
                r.start_override.iter().filter(|(_, v)| *v != 0).collect();
            if set.is_empty() {
                continue;
            }
            let key = format!("{}\\Services\\{name}\\StartOverride", s.cs_key(cs));
            let mut f = Finding::new(
                ID,
                "disabled",
                format!(
                    "{name} drives the {}; its Start is {} but StartOverride sets {}: \
                     Windows does not start it at boot",
                    t.controller.name,
                    r.start
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "missing".into()),
                    set.iter()
                        .map(|(n, v)| format!("{n}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            for (n, v) in set {
                f = f.with(Evidence::system(key.clone(), n, v.to_string()));
            }
            out.findings.push(f.about(Some(cs), Some(name)));
        }
    }
    Ok(())
}

/// The fix: the nonzero StartOverride values of the controller's driver deleted (Start is
/// already 0, or the storage-driver fix makes it so), in each control set found.
pub fn fix(
    _s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    _o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let mut ops = Vec::new();
    let mut names = Vec::new();
    for f in findings {
        for e in &f.evidence {
            let (Some(key), Some(value)) = (&e.key, &e.value) else {
                continue;
            };
            ops.push(Op::Key(reg::system(key)));
            ops.push(Op::DeleteValue(value.clone()));
        }
        if let Some(svc) = f.service.as_ref().filter(|s| !names.contains(*s)) {
            names.push(svc.clone());
        }
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!(
                "let {} start at boot: StartOverride values removed",
                names.join(", ")
            ),
            Change::system(ops),
        );
    }
    Ok(())
}
