//! `storage-driver`: the services that drive the target's boot controller on this Windows
//! version (the profile says which, and whether they are inbox) must exist, start at boot
//! (Start 0) and have their driver file, in every control set `Select` names; so must the
//! drivers of the disk stack above them (`check_stack`, the same for every target).
//! Otherwise: STOP 0x7B INACCESSIBLE_BOOT_DEVICE.

use super::boot_driver::{driver_for, start_name};
use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;
use rehost_windows::devices;
use rehost_windows::drivers::{self, Package};
use rehost_windows::knowledge::Knowledge;

const ID: &str = "storage-driver";

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
                    // Every cause at once: a driver that starts late may also lack its file.
                    let and_file = if r.file_present {
                        ""
                    } else {
                        ", and its driver file is missing"
                    };
                    let f = Finding::new(
                        ID,
                        "not-boot-start",
                        format!(
                            "{name} drives the {for_what} but starts {} (Start={}), not at \
                             boot{and_file}{note}",
                            start_name(r.start),
                            r.start
                                .map(|x| x.to_string())
                                .unwrap_or_else(|| "missing".into())
                        ),
                    )
                    .with(Evidence::system(
                        key,
                        "Start",
                        r.start
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "missing".into()),
                    ));
                    if r.file_present {
                        f
                    } else {
                        f.with(Evidence::file(s.install.volume, file, "missing"))
                    }
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
            format!(
                "starts {} (Start={})",
                start_name(r.start),
                r.start.map_or("missing".to_string(), |v| v.to_string())
            )
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

/// What the findings about one service say it lacks.
struct Need {
    service: String,
    /// Control sets without its key.
    no_key: Vec<u32>,
    /// Control sets whose key names a driver file that is not there, with the file.
    no_file: Vec<(u32, String)>,
}

/// The fix. A driver whose key and file are there but that starts later: Start 0. One
/// whose file is missing: the file and its registration from a package of the `--drivers`
/// folder (service key as its INF gives it, CriticalDeviceDatabase or DriverDatabase
/// entries for the target's controller), or, for a driver that is part of Windows, the
/// file from the install's own cabinets; one whose file is there but has no key: the
/// minimal service key virt-v2v writes, with the controller's entries. A key is never
/// written for a driver whose file is neither in the image nor being injected.
pub fn fix(
    s: &Subject,
    t: &Target,
    findings: &[&Finding],
    o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let mut ops = Vec::new();
    let mut names = Vec::new();
    let mut needs: Vec<Need> = Vec::new();
    for f in findings {
        let (Some(cs), Some(svc)) = (f.control_set, &f.service) else {
            continue;
        };
        let at = match needs
            .iter()
            .position(|n| n.service.eq_ignore_ascii_case(svc))
        {
            Some(i) => i,
            None => {
                needs.push(Need {
                    service: svc.clone(),
                    no_key: Vec::new(),
                    no_file: Vec::new(),
                });
                needs.len() - 1
            }
        };
        match s.service(cs, svc)? {
            None => needs[at].no_key.push(cs),
            Some(r) => {
                if r.start != Some(0) {
                    ops.extend(reg::start(&s.cs_key(cs), svc, 0));
                    names.push(format!("{svc} in {}", s.cs_key(cs)));
                }
                if !r.file_present {
                    let file =
                        devices::driver_path(&s.install.system_root, svc, r.image_path.as_deref());
                    needs[at].no_file.push((cs, file));
                }
            }
        }
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!("start at boot: {}", names.join(", ")),
            Change::system(ops),
        );
    }
    for n in needs
        .iter()
        .filter(|n| !n.no_key.is_empty() || !n.no_file.is_empty())
    {
        provide(s, t, o, n, plan)?;
    }
    Ok(())
}

/// Whether `service` is part of Windows: a driver of the disk stack, or the controller's
/// driver when the profile says it is inbox.
fn inbox(s: &Subject, t: &Target, service: &str) -> bool {
    let profile = s.version.and_then(|v| t.controller.driver_for(v));
    match profile {
        Some(d) if d.services.iter().any(|x| x.eq_ignore_ascii_case(service)) => d.inbox,
        _ => true,
    }
}

/// The name of the driver file `n` lacks (what its key names, else `default`).
fn drivers_file(n: &Need, default: &str) -> String {
    n.no_file
        .first()
        .and_then(|(_, f)| f.rsplit('\\').next())
        .unwrap_or(default)
        .to_string()
}

/// The file and registration `n` lacks.
fn provide(s: &Subject, t: &Target, o: &FixOptions, n: &Need, plan: &mut Plan) -> Result<()> {
    let svc = n.service.as_str();
    let default_file = format!("{}.sys", svc.to_ascii_lowercase());
    let file_missing = !n.no_file.is_empty() || !s.is_file(&s.driver_file(svc));
    if !file_missing {
        return register_key(s, t, o, n, &default_file, plan);
    }
    // A package from the driver folder.
    let why_not_package = match super::inject::package(s, t, o, svc) {
        Ok(pkg) => return inject(s, t, n, &pkg, plan),
        Err(why) => why,
    };
    if !inbox(s, t, svc) {
        let why = if o.drivers.is_some() {
            format!("{svc} is not in the image and is not part of Windows, and {why_not_package}")
        } else {
            format!(
                "{svc} is not in the image and is not part of Windows: pass --drivers DIR \
                 with its package (a virtio-win tree, the vendor's driver folder)"
            )
        };
        plan.cannot(ID, why);
        return Ok(());
    }
    // A driver of Windows: on NT 5.x its file from the install's cabinets (driver.cab, the
    // service pack's); later releases keep no such cabinets.
    if !s.nt5() {
        plan.cannot(
            ID,
            format!(
                "{svc}'s driver file {} is not in the image ({why_not_package}): it is part \
                 of Windows; copy it from the same release's install media (or pass --drivers \
                 DIR with its package)",
                drivers_file(n, &default_file)
            ),
        );
        return Ok(());
    }
    let file = drivers_file(n, &default_file);
    let (found, searched) = super::inject::from_cabinets(s, &file);
    let Some(c) = found else {
        plan.cannot(
            ID,
            format!(
                "{svc}'s driver file {file} is not in the image, nor in {} \
                 ({why_not_package})",
                if searched.is_empty() {
                    "any cabinet of the install".to_string()
                } else {
                    searched.join(", ")
                }
            ),
        );
        return Ok(());
    };
    let path = super::inject::drivers_path(s, &file);
    plan.add(
        ID,
        format!(
            "{svc}'s driver file, version {}, from {}",
            c.version, c.source
        ),
        Change::Put {
            volume: s.install.volume,
            path: path.clone(),
            bytes: c.bytes,
        },
    );
    // Keys whose ImagePath names another place now name the file written.
    let mut ops = Vec::new();
    for &(cs, ref wanted) in &n.no_file {
        if !wanted.eq_ignore_ascii_case(&path) {
            ops.push(Op::Key(reg::system(&format!(
                "{}\\Services\\{svc}",
                s.cs_key(cs)
            ))));
            ops.push(reg::set(
                "ImagePath",
                2,
                reg::sz(&format!("system32\\drivers\\{file}")),
            ));
        }
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!("{svc}'s ImagePath names the file written"),
            Change::system(ops),
        );
    }
    register_key(s, t, o, n, &file, plan)
}

/// The minimal service key in the control sets without one, with the entries that bind
/// the target's controller to it (CriticalDeviceDatabase before Windows 8, DriverDatabase
/// from 8 for a driver that is not inbox).
fn register_key(
    s: &Subject,
    t: &Target,
    o: &FixOptions,
    n: &Need,
    file: &str,
    plan: &mut Plan,
) -> Result<()> {
    if n.no_key.is_empty() {
        return Ok(());
    }
    let svc = n.service.as_str();
    let profile = s.version.and_then(|v| t.controller.driver_for(v));
    let drives = profile.filter(|d| d.services.iter().any(|x| x.eq_ignore_ascii_case(svc)));
    let before_8 = s.version.is_some_and(|v| v < Version::WIN8);
    let mut ops = Vec::new();
    for &cs in &n.no_key {
        ops.extend(super::inject::service_key(s, cs, svc, file));
        if let (Some(d), true) = (drives, before_8) {
            if d.services[0].eq_ignore_ascii_case(svc) {
                ops.extend(super::critical_device::controller_entries(s, t, cs, svc));
            }
            ops.extend(super::critical_device::missing_child_entries(s, t, cs)?);
        }
    }
    plan.add(
        ID,
        format!(
            "{svc}: a service key for its driver file{}",
            if before_8 && drives.is_some() {
                ", and CriticalDeviceDatabase entries for the target's devices"
            } else {
                ""
            }
        ),
        Change::system(ops),
    );
    if let (Some(d), false) = (drives, before_8) {
        if !d.inbox {
            super::driver_database::register(s, t, o, svc, ID, plan)?;
        }
    }
    Ok(())
}

/// A package injected: its driver file (and the package in the driver store on Windows 8
/// and later), its service key and the entries that bind the target's controller, in every
/// control set that lacks the driver.
fn inject(s: &Subject, t: &Target, n: &Need, pkg: &Package, plan: &mut Plan) -> Result<()> {
    let Some(target) = super::inject::inf_target(s) else {
        return Ok(());
    };
    let devices = super::inject::devices(t);
    let inj = drivers::plan(pkg, &target, &s.install.system_root, &devices);
    let mut sets: Vec<u32> = n
        .no_key
        .iter()
        .copied()
        .chain(n.no_file.iter().map(|(cs, _)| *cs))
        .collect();
    sets.sort_unstable();
    sets.dedup();
    super::inject::put_files(s, ID, &inj, true, plan);
    let mut ops = drivers::in_control_sets(&inj.ops, &sets);
    if s.version.is_some_and(|v| v < Version::WIN8) {
        for &cs in &sets {
            ops.extend(super::critical_device::missing_child_entries(s, t, cs)?);
        }
    }
    plan.add(
        ID,
        format!(
            "inject {} from {}{}",
            pkg.service.name,
            pkg.inf_path.display(),
            inj.label
                .as_deref()
                .map(|l| format!(" as package {l}"))
                .unwrap_or_default()
        ),
        Change::system(ops),
    );
    Ok(())
}
