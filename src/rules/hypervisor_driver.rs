//! `hypervisor-driver`: the paravirtual drivers of the platform the image comes from (Xen,
//! Parallels, old Red Hat virtio) left to start at boot on another platform. As class
//! filters of the disk stack they stop it there (0x7B); virt-v2v disables them.

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use crate::error::Result;

const ID: &str = "hypervisor-driver";

/// What of the target the check reads.
pub fn reads(t: &Target) -> u64 {
    super::target::hash(&t.platform)
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
            let f = match filter {
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
