//! `critical-device` (Windows 2000 to 7): a boot device Windows has never seen gets its
//! driver from `Control\CriticalDeviceDatabase`, by the first of its hardware and compatible
//! IDs that has an entry there. Without one for the target's controller (and the devices
//! below it: IDE channels, the disk) nothing drives it at boot: 0x7B. When the driver is
//! not installed at all, storage-driver reports it, and its fix registers the device too.
//!
//! The fix writes entries (Service, ClassGUID) for the controller's own IDs, and its class
//! code when its driver binds by class, naming the profile's driver; for a device below it,
//! the entry for the first of its IDs rehost knows the service of (`storage.toml`).

use super::boot_driver::{driver_for, start_name};
use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;
use rehost_windows::drivers;
use rehost_windows::knowledge::Knowledge;

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
        // controller with the driver; the devices below it (the disk) are judged all the
        // same, so that what the fix will meet is told up front.
        let mut installed = false;
        for name in &d.services {
            installed |= s.service(cs, name)?.is_some();
        }
        let cddb = s.cddb_key(cs);
        for (n, (what, ids)) in whats.clone().zip(names).enumerate() {
            if n == 0 && !installed {
                continue;
            }
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

/// The CriticalDeviceDatabase names (`pci#ven_8086&dev_7111`) that bind the target's
/// controller when `service` drives it: the controller's own hardware IDs (vendor and
/// device, or the IDs of a device not on PCI), and its class code when the service binds
/// by class; a controller the profile knows by class only gets its class code.
pub fn controller_names(t: &Target, service: &str) -> Vec<String> {
    let c = &t.controller;
    let all = &c.cddb_names()[0];
    let own: Vec<String> = if c.pci.is_some() {
        all.iter()
            .filter(|n| n.contains("&dev_") && !n.contains("&cc_"))
            .cloned()
            .collect()
    } else {
        all.iter()
            .filter(|n| !n.starts_with("pci#cc_"))
            .cloned()
            .collect()
    };
    let by_class = Knowledge::builtin()
        .service(service)
        .is_some_and(|k| k.by_class);
    let class = all.iter().find(|n| n.starts_with("pci#cc_")).cloned();
    let mut out = own;
    if by_class || out.is_empty() {
        out.extend(class);
    }
    out
}

/// The operations that write CriticalDeviceDatabase entries `names` of control set `cs`
/// naming `service` of the device class `class` (a `storage.toml` class name).
pub fn entries(s: &Subject, cs: u32, names: &[String], service: &str, class: &str) -> Vec<Op> {
    let guid = Knowledge::builtin()
        .class_guid(class)
        .unwrap_or_else(|| class.to_string());
    let mut ops = Vec::new();
    for n in names {
        ops.push(Op::Key(reg::system(&format!("{}\\{n}", s.cddb_key(cs)))));
        ops.push(reg::set("Service", 1, reg::sz(service)));
        ops.push(reg::set("ClassGUID", 1, reg::sz(&guid)));
    }
    ops
}

/// The entries that bind the target's controller to `service` in control set `cs`.
pub fn controller_entries(s: &Subject, t: &Target, cs: u32, service: &str) -> Vec<Op> {
    let class = Knowledge::builtin()
        .service(service)
        .and_then(|k| k.class.clone())
        .unwrap_or_else(|| "SCSIAdapter".into());
    entries(s, cs, &controller_names(t, service), service, &class)
}

/// The entry that binds the device below the controller with IDs `ids` (most specific
/// first) to the service rehost knows for it: the ID's name, the service and its class;
/// `None` when rehost knows none of its IDs.
pub fn child_binding(ids: &[String]) -> Option<(String, String, String)> {
    let k = Knowledge::builtin();
    ids.iter().find_map(|id| {
        k.device(id)
            .map(|d| (drivers::cddb_key(id), d.service.clone(), d.class.clone()))
    })
}

/// The entries, in control set `cs`, for the devices below the controller that have none
/// yet (a new GenDisk or IDE channel entry, never one that exists).
pub fn missing_child_entries(s: &Subject, t: &Target, cs: u32) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for ids in t.controller.children.iter() {
        let names: Vec<String> = ids.iter().map(|i| drivers::cddb_key(i)).collect();
        if s.cddb_first(cs, &names)?.is_some() {
            continue;
        }
        if let Some((name, service, class)) = child_binding(ids) {
            ops.extend(entries(s, cs, &[name], &service, &class));
        }
    }
    Ok(ops)
}

/// The fix: for each device without an entry, or whose first entry names a service that
/// does not start at boot, entries naming the service that drives it (more specific than
/// the one that matched, so Plug and Play finds them first; an existing entry is rewritten
/// only when it is the most specific one); a device whose entry already names its own
/// service, which is there but starts later, gets that service boot-started.
pub fn fix(
    s: &Subject,
    t: &Target,
    findings: &[&Finding],
    _o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let Some(d) = s.version.and_then(|v| t.controller.driver_for(v)) else {
        plan.cannot(
            ID,
            "the driver for the target's controller on this install is unknown",
        );
        return Ok(());
    };
    let lists = t.controller.cddb_names();
    let mut ops = Vec::new();
    let mut what = Vec::new();
    for f in findings {
        let Some(cs) = f.control_set else { continue };
        let Some(e) = f.evidence.first() else {
            continue;
        };
        let Some(name) = e
            .key
            .as_deref()
            .and_then(|k| k.rsplit_once("CriticalDeviceDatabase\\"))
            .map(|(_, n)| n.to_ascii_lowercase())
        else {
            continue;
        };
        let Some(index) = lists.iter().position(|l| l.contains(&name)) else {
            plan.cannot(
                ID,
                format!("{}: {name} is not an ID of the target's devices", f.message),
            );
            continue;
        };
        // (names to write, service, class) for the device.
        let binding = if index == 0 {
            let svc = d.services[0].clone();
            let class = Knowledge::builtin()
                .service(&svc)
                .and_then(|k| k.class.clone())
                .unwrap_or_else(|| "SCSIAdapter".into());
            Some((controller_names(t, &svc), svc, class))
        } else {
            child_binding(&t.controller.children[index - 1]).map(|(n, s, c)| (vec![n], s, c))
        };
        let Some((names, service, class)) = binding else {
            plan.cannot(
                ID,
                format!(
                    "{} in {}: rehost knows no service for {name}",
                    f.message,
                    s.cs_key(cs)
                ),
            );
            continue;
        };
        let named = (f.case == "wrong-service")
            .then(|| e.data.clone())
            .flatten();
        if named.is_some_and(|n| n.eq_ignore_ascii_case(&service)) {
            // The entry is right; its service is what does not start.
            match s.service(cs, &service)? {
                Some(r) if r.file_present => {
                    ops.extend(reg::start(&s.cs_key(cs), &service, 0));
                    what.push(format!("{service} starts at boot in {}", s.cs_key(cs)));
                }
                _ => plan.cannot(
                    ID,
                    format!(
                        "{} in {}: {service} is not installed with its driver file",
                        f.message,
                        s.cs_key(cs)
                    ),
                ),
            }
            continue;
        }
        ops.extend(entries(s, cs, &names, &service, &class));
        what.push(format!(
            "{} -> {service} in {}",
            names.join(", "),
            s.cs_key(cs)
        ));
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!("CriticalDeviceDatabase: {}", what.join("; ")),
            Change::system(ops),
        );
    }
    Ok(())
}
