//! `critical-device` (Windows 2000 to 7): a boot device Windows has never seen gets its
//! driver from `Control\CriticalDeviceDatabase`, by the first of its hardware and compatible
//! IDs that has an entry there. Without one for the target's controller (and the devices
//! below it: IDE channels, the disk) nothing drives it at boot: 0x7B. When the driver is
//! not installed at all, storage-driver reports it, and its fix registers the device too.

use super::finding::{Evidence, Finding};
use super::storage_driver::{driver_for, start_name};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use crate::error::Result;

const ID: &str = "critical-device";

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    if s.version.is_some_and(|v| v >= Version::WIN8) {
        return Ok(());
    }
    let Some(d) = driver_for(s, t, out) else {
        return Ok(());
    };
    let names = t.controller.cddb_names();
    let whats = std::iter::once(t.controller.name.as_str())
        .chain(t.controller.children.iter().map(|ids| ids[0].as_str()));
    for &cs in &s.sets {
        // Without the driver installed, storage-driver says so, and its fix registers the
        // device with the driver.
        let mut installed = false;
        for name in &d.services {
            installed |= s.service(cs, name)?.is_some();
        }
        if !installed {
            continue;
        }
        let cddb = s.cddb_key(cs);
        for (what, ids) in whats.clone().zip(names) {
            match s.cddb_first(cs, ids)? {
                None => out.findings.push(
                    Finding::new(
                        ID,
                        "no-entry",
                        format!(
                            "no CriticalDeviceDatabase entry matches the {what} (tried {} IDs)",
                            ids.len()
                        ),
                    )
                    .with(Evidence::system_key(
                        format!("{cddb}\\{}", ids[0]),
                        format!("missing, as are the {} less specific IDs", ids.len() - 1),
                    ))
                    .about(Some(cs), d.services.first().map(String::as_str)),
                ),
                Some((key, service)) => {
                    let key = format!("{cddb}\\{key}");
                    let Some(service) = service else {
                        out.findings.push(
                            Finding::new(
                                ID,
                                "wrong-service",
                                format!("the CriticalDeviceDatabase entry for the {what} names no service"),
                            )
                            .with(Evidence::system(key, "Service", "missing"))
                            .about(Some(cs), None),
                        );
                        continue;
                    };
                    // The profile's own services are judged by storage-driver.
                    if d.services.iter().any(|x| x.eq_ignore_ascii_case(&service)) {
                        continue;
                    }
                    let r = s.service(cs, &service)?;
                    let ready = r
                        .as_ref()
                        .is_some_and(|r| r.start == Some(0) && r.file_present);
                    if !ready {
                        let state = match &r {
                            None => "is not installed".to_string(),
                            Some(r) if r.start != Some(0) => {
                                format!("starts {}", start_name(r.start))
                            }
                            Some(_) => "has no driver file".to_string(),
                        };
                        out.findings.push(
                            Finding::new(
                                ID,
                                "wrong-service",
                                format!(
                                    "the first CriticalDeviceDatabase entry for the {what} names \
                                     {service}, which {state}"
                                ),
                            )
                            .with(Evidence::system(key, "Service", service.clone()))
                            .about(Some(cs), Some(&service)),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
