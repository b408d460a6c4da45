//! `hypervisor-driver`: the paravirtual drivers of the platform the image comes from (Xen,
//! Parallels) left to start at boot on another platform. As class filters of the disk
//! stack they stop it there (0x7B); virt-v2v disables them. Where the target's profile says
//! a platform's drivers stand idle (AWS PV drivers on Nitro), they are only noted.
//!
//! The fix disables each one found (Start 4) and takes a filter out of every class list of
//! its control set that names it: a disabled driver left in a filter list stops the stack
//! as surely as a missing one (the 0x7B that removing Xen drivers by halves gives).

use super::finding::{Evidence, Finding};
use super::fix::{Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;
use rehost_windows::knowledge::Knowledge;

const ID: &str = "hypervisor-driver";

/// What of the target the check reads.
pub fn reads(t: &Target) -> u64 {
    super::target::hash((&t.platform, &t.idle_platforms))
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    for (cs, svc, r) in s.present("hypervisor")?.iter() {
        let cs = *cs;
        let Some(platform) = &svc.platform else {
            continue;
        };
        if platform.eq_ignore_ascii_case(&t.platform) {
            continue;
        }
        {
            let filter = s.install.class_filters.iter().find(|c| {
                c.control_set == cs
                    && c.upper
                        .iter()
                        .chain(&c.lower)
                        .any(|f| f.eq_ignore_ascii_case(&svc.name))
            });
            let idle = t
                .idle_platforms
                .iter()
                .any(|p| p.eq_ignore_ascii_case(platform));
            let f = match filter {
                _ if idle && (filter.is_some() || matches!(r.start, Some(0 | 1))) => Finding::new(
                    ID,
                    "idle",
                    format!(
                        "{} ({}, a {platform} driver) is installed; on a {} target it \
                             stands idle",
                        svc.name, svc.drives, t.platform
                    ),
                ),
                _ if idle => continue,
                Some(c) => Finding::new(
                    ID,
                    "filter",
                    format!(
                        "{} ({}, a {platform} driver) filters the {} class; on a {} target it \
                         stops the disk stack",
                        svc.name, svc.drives, c.class, t.platform
                    ),
                )
                .with(Evidence::system_key(
                    format!("{}\\Control\\Class", s.cs_key(cs)),
                    format!("{} lists {}", c.class, svc.name),
                )),
                None if matches!(r.start, Some(0 | 1)) => Finding::new(
                    ID,
                    "left-boot-start",
                    format!(
                        "{} ({}, a {platform} driver) still starts at {} on a {} target",
                        svc.name,
                        svc.drives,
                        if r.start == Some(0) {
                            "boot"
                        } else {
                            "system start"
                        },
                        t.platform
                    ),
                ),
                None => continue,
            };
            let start = r
                .start
                .map(|x| x.to_string())
                .unwrap_or_else(|| "missing".into());
            let key = format!("{}\\Services\\{}", s.cs_key(cs), svc.name);
            out.findings.push(
                f.with(Evidence::system(key, "Start", start))
                    .about(Some(cs), Some(&svc.name)),
            );
        }
    }
    Ok(())
}

/// The fix: Start 4 for each driver found (the key stays), and a filter taken out of the
/// UpperFilters and LowerFilters of every class that lists it in that control set.
pub fn fix(
    s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    _o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let k = Knowledge::builtin();
    let filters: Vec<(u32, String)> = plan
        .disable_services(ID, s, findings)
        .into_iter()
        .filter(|f| f.case == "filter")
        .filter_map(|f| Some((f.control_set?, f.service.clone()?)))
        .collect();
    for (cs, svc) in &filters {
        for c in s
            .install
            .class_filters
            .iter()
            .filter(|c| c.control_set == *cs)
        {
            let Some(guid) = k.class_guid(&c.class) else {
                continue;
            };
            let key = format!("{}\\Control\\Class\\{guid}", s.cs_key(*cs));
            for (list, listed) in [("UpperFilters", &c.upper), ("LowerFilters", &c.lower)] {
                let Some(ops) = super::class_filter::without(plan, &key, list, listed, &[svc])
                else {
                    continue;
                };
                plan.add(
                    ID,
                    format!(
                        "{svc} taken out of the {} class's {list} in {}",
                        c.class,
                        s.cs_key(*cs)
                    ),
                    Change::system(ops),
                );
            }
        }
    }
    Ok(())
}
