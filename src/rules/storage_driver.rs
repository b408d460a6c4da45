//! `storage-driver`: the services that drive the target's boot controller on this Windows
//! version (the profile says which, and whether they are inbox) must exist, start at boot
//! (Start 0) and have their driver file, in every control set `Select` names; so must the
//! drivers of the disk stack above them (`check_stack`, the same for every target).
//! Otherwise: STOP 0x7B INACCESSIBLE_BOOT_DEVICE.

use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::{Driver, Target};
use super::Out;
use crate::error::Result;
use crate::formats::regf::regtext::Op;
use crate::windows::knowledge::Knowledge;

const ID: &str = "storage-driver";

/// The driver the profile gives for the install's version; `None` when the version is
/// unknown (said in `out`) or no driver applies.
pub fn driver_for<'t>(s: &Subject, t: &'t Target, out: &mut Out) -> Option<&'t Driver> {
    match s.version {
        Some(v) => t.controller.driver_for(v),
        None => {
            out.unknown.push(
                "the Windows version is unknown (no readable SOFTWARE hive): the driver for the \
                 target's controller cannot be chosen"
                    .into(),
            );
            None
        }
    }
}

/// What of the target the storage rules read: the controller.
pub fn reads(t: &Target) -> u64 {
    t.controller.fingerprint()
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    let Some(v) = s.version else {
        driver_for(s, t, out);
        return Ok(());
    };
    let Some(d) = t.controller.driver_for(v) else {
        out.findings.push(
            Finding::new(
                ID,
                "no-driver",
                format!(
                    "{} has no driver rehost knows for the {} ({} {v})",
                    v.releases(),
                    t.controller.name,
                    s.install.product_name.as_deref().unwrap_or("this install")
                ),
            )
            .with(Evidence::fact(format!("controller: {}", t.controller.name))),
        );
        return Ok(());
    };
    let note = if d.unverified {
        " (the profile marks this driver unverified)"
    } else {
        ""
    };
    let for_what = &t.controller.name;
    for &cs in &s.sets {
        for name in &d.services {
            let r = s.service(cs, name)?;
            if r.as_ref()
                .is_some_and(|r| r.start == Some(0) && r.file_present)
            {
                continue;
            }
            let key = format!("{}\\Services\\{name}", s.cs_key(cs));
            let file = s.driver_file(name);
            let f = match r {
                None if s.is_file(&file) => Finding::new(
                    ID,
                    "missing-service",
                    format!(
                        "{name} drives the {for_what}; its driver file is here but it has no \
                         service key in {}{note}",
                        s.cs_key(cs)
                    ),
                )
                .with(Evidence::system_key(key, "missing"))
                .with(Evidence::file(s.install.volume, file, "present")),
                None => Finding::new(
                    ID,
                    "not-installed",
                    format!(
                        "{name} drives the {for_what} and is not installed: no service key, no \
                         driver file ({}){note}",
                        if d.inbox {
                            "an inbox driver removed from the image"
                        } else {
                            "a vendor driver: it has to be added to the image"
                        }
                    ),
                )
                .with(Evidence::system_key(key, "missing"))
                .with(Evidence::file(s.install.volume, file, "missing")),
                Some(r) if r.start != Some(0) => {
                    Finding::new(
                        ID,
                        "not-boot-start",
                        format!(
                        "{name} drives the {for_what} but starts {} (Start={}), not at boot{note}",
                        start_name(r.start),
                        r.start.map(|x| x.to_string()).unwrap_or_else(|| "missing".into())
                    ),
                    )
                    .with(Evidence::system(
                        key,
                        "Start",
                        r.start
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "missing".into()),
                    ))
                }
                Some(r) if !r.file_present => Finding::new(
                    ID,
                    "file-missing",
                    format!("{name} drives the {for_what} but its driver file is missing{note}"),
                )
                .with(Evidence::system(
                    key,
                    "ImagePath",
                    r.image_path.clone().unwrap_or_else(|| "(default)".into()),
                ))
                .with(Evidence::file(s.install.volume, file, "missing")),
                Some(_) => continue,
            };
            out.findings.push(f.about(Some(cs), Some(name)));
        }
    }
    Ok(())
}

/// The check's part that is the same on every target: the drivers of the disk stack,
/// where they exist, must start at boot.
pub fn check_stack(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    for &cs in &s.sets {
        stack(s, cs, out)?;
    }
    Ok(())
}

fn stack(s: &Subject, cs: u32, out: &mut Out) -> Result<()> {
    let k = Knowledge::builtin();
    for svc in k.services.iter().filter(|x| x.always_boot) {
        let Some(r) = s.service(cs, &svc.name)? else {
            continue;
        };
        if r.start == Some(0) && r.file_present {
            continue;
        }
        let key = format!("{}\\Services\\{}", s.cs_key(cs), svc.name);
        let why = if r.start != Some(0) {
            format!("starts {} (Start={:?})", start_name(r.start), r.start)
        } else {
            "has no driver file".into()
        };
        out.findings.push(
            Finding::new(
                ID,
                "stack-service",
                format!(
                    "{} ({}) {why}: the disk stack does not start",
                    svc.name, svc.drives
                ),
            )
            .with(Evidence::system(
                key,
                "Start",
                r.start
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "missing".into()),
            ))
            .about(Some(cs), Some(&svc.name)),
        );
    }
    Ok(())
}

/// A Start value in words.
pub fn start_name(start: Option<u32>) -> &'static str {
    match start {
        Some(0) => "at boot",
        Some(1) => "at system start",
        Some(2) => "automatically",
        Some(3) => "on demand",
        Some(4) => "never (disabled)",
        _ => "in an unknown way",
    }
}

/// The fix: Start 0 for the controller's driver and the disk stack's drivers where their
/// key and file are there but they start later. A driver that is not installed, or whose
/// file is missing, needs a package to inject (`--drivers`): said, not guessed.
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
        let boot_start_only = match f.case {
            "not-boot-start" => true,
            "stack-service" => s.service(cs, svc)?.is_some_and(|r| r.file_present),
            _ => false,
        };
        if !boot_start_only {
            plan.cannot(
                ID,
                format!(
                    "{svc} in {}: {} (a driver package to inject is needed)",
                    s.cs_key(cs),
                    f.message
                ),
            );
            continue;
        }
        ops.push(Op::Key(reg::system(&format!(
            "{}\\Services\\{svc}",
            s.cs_key(cs)
        ))));
        ops.push(reg::dword("Start", 0));
        names.push(format!("{svc} in {}", s.cs_key(cs)));
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!("start at boot: {}", names.join(", ")),
            Change::Registry {
                hive: "SYSTEM".into(),
                ops,
            },
        );
    }
    Ok(())
}
