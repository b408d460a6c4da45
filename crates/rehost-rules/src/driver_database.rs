//! `driver-database` (Windows 8 and later): Windows 8 ignores the CriticalDeviceDatabase
//! and finds a new boot device's driver through `DriverDatabase` at the root of SYSTEM:
//! `DeviceIds\<id>` names an INF, `DriverInfFiles\<inf>` its active package, and the
//! package's configurations the service. Inbox drivers are there from setup; a vendor
//! driver (virtio, pvscsi) copied in without them is "installed, still 0x7B". Package
//! labels must be `<inf>_<arch>_<16 hex>`: others (`x.inf_tmp`) break later upgrades.

use super::boot_driver::driver_for;
use super::finding::{Evidence, Finding};
use super::fix::{Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use rehost_core::error::Result;
use rehost_windows::drivers;

const ID: &str = "driver-database";

/// Whether a package label has the form Windows writes: `<inf>_<arch>_<16 hex digits>`.
pub fn good_label(label: &str) -> bool {
    let mut parts = label.rsplitn(3, '_');
    let (Some(hash), Some(arch), Some(inf)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    hash.len() == 16
        && hash.chars().all(|c| c.is_ascii_hexdigit())
        && ["x86", "amd64", "arm64", "ia64", "arm"].contains(&arch.to_ascii_lowercase().as_str())
        && inf.to_ascii_lowercase().ends_with(".inf")
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    if s.version.is_some_and(|v| v < Version::WIN8) {
        return Ok(());
    }
    let Some(d) = driver_for(s, t, out) else {
        return Ok(());
    };
    if d.inbox {
        return Ok(());
    }
    // Without the driver installed, storage-driver says so, and its fix registers it here.
    let Some(boot) = s.boot_set else {
        return Ok(());
    };
    let mut installed = false;
    for name in &d.services {
        installed |= s.service(boot, name)?.is_some();
    }
    if !installed {
        return Ok(());
    }
    let ids = t.controller.ids();
    let mut bound = None;
    for id in ids {
        let (enumerator, device) = id.split_once('\\').unwrap_or(("", id));
        if !s.has_subkey(&format!("DriverDatabase\\DeviceIds\\{enumerator}"), device)? {
            continue;
        }
        let key = format!("DriverDatabase\\DeviceIds\\{id}");
        for (inf, _) in s.system.values(&key)? {
            if !inf.to_ascii_lowercase().ends_with(".inf") {
                continue;
            }
            let files = format!("DriverDatabase\\DriverInfFiles\\{inf}");
            let Some(label) = s.system.string(&files, "Active")? else {
                continue;
            };
            let package = format!("DriverDatabase\\DriverPackages\\{label}");
            let configs = format!("{package}\\Configurations");
            let mut services = Vec::new();
            for c in s.system.subkeys(&configs)? {
                if let Some(svc) = s.system.string(&format!("{configs}\\{c}"), "Service")? {
                    services.push(svc);
                }
            }
            if services
                .iter()
                .any(|x| d.services.iter().any(|y| y.eq_ignore_ascii_case(x)))
            {
                bound = Some((key, inf, label, package));
                break;
            }
        }
        if bound.is_some() {
            break;
        }
    }
    match bound {
        None => out.findings.push(
            Finding::new(
                ID,
                "no-entry",
                format!(
                    "{} is not an inbox driver and DriverDatabase has no entry that binds the {} \
                     to it (tried {} IDs): the entries its INF gives have to be written",
                    d.services.join(" + "),
                    t.controller.name,
                    ids.len()
                ),
            )
            .with(Evidence::system_key(
                format!("DriverDatabase\\DeviceIds\\{}", ids[0]),
                "missing",
            ))
            .about(None, d.services.first().map(String::as_str)),
        ),
        Some((key, inf, label, package)) if !good_label(&label) => out.findings.push(
            Finding::new(
                ID,
                "tmp-label",
                format!(
                    "{inf}'s active package is labelled {label}, not <inf>_<arch>_<16 hex>: \
                     pnputil and in-place upgrades fail on it"
                ),
            )
            .with(Evidence::system(key, &inf, "bound"))
            .with(Evidence::system_key(package, "present")),
        ),
        Some(_) => {}
    }
    Ok(())
}

/// The IDs of the target's controller DriverDatabase binds (`PCI\VEN_...`): the hardware
/// IDs of each PCI function it presents, else the profile's IDs of a device not on PCI.
fn bound_ids(t: &Target) -> Vec<String> {
    let devices = super::inject::devices(t);
    if devices.is_empty() {
        return t.controller.hardware_ids.clone();
    }
    devices.iter().flat_map(|d| d.hardware_ids()).collect()
}

/// Registers `service` as the driver of the target's controller in DriverDatabase: bound
/// to the package of it the hive already holds (its own DriverPackages entry), else to the
/// package of the `--drivers` folder (its INF's entries under an `<inf>_<arch>_<16 hex>`
/// label, and the package in the driver store where its folder exists); said in the plan
/// when neither is there. `rule` is the rule whose fix asks.
pub fn register(
    s: &Subject,
    t: &Target,
    o: &FixOptions,
    service: &str,
    rule: &'static str,
    plan: &mut Plan,
) -> Result<()> {
    let ids = bound_ids(t);
    if let Some(r) = drivers::registered(s.system, service)? {
        plan.add(
            rule,
            format!(
                "DriverDatabase: the {} bound to {service}'s package {}",
                t.controller.name, r.label
            ),
            Change::system(drivers::bind(&r, &ids)),
        );
        return Ok(());
    }
    let pkg = match super::inject::package(s, t, o, service) {
        Ok(p) => p,
        Err(why) => {
            let ask = if o.drivers.is_some() {
                String::new()
            } else {
                format!(": pass --drivers DIR with {service}'s package (its INF gives the entries)")
            };
            plan.cannot(
                rule,
                format!(
                    "DriverDatabase holds no package of {service} to bind the {} to, and {why}{ask}",
                    t.controller.name
                ),
            );
            return Ok(());
        }
    };
    let Some(target) = super::inject::inf_target(s) else {
        return Ok(());
    };
    let inj = drivers::plan(
        &pkg,
        &target,
        &s.install.system_root,
        &super::inject::devices(t),
    );
    // The service key is there already: only what lies outside the control sets (the
    // DriverDatabase) is written, and the driver store's copy.
    let ops = drivers::in_control_sets(&inj.ops, &[]);
    super::inject::put_files(s, rule, &inj, false, plan);
    plan.add(
        rule,
        format!(
            "DriverDatabase: {} from {} as package {}",
            pkg.inf_name,
            pkg.inf_path.display(),
            inj.label.as_deref().unwrap_or("?")
        ),
        Change::system(ops),
    );
    Ok(())
}

/// The fix: the controller's driver registered in DriverDatabase (`register`).
pub fn fix(
    s: &Subject,
    t: &Target,
    findings: &[&Finding],
    o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let mut done: Vec<String> = Vec::new();
    for f in findings.iter().filter(|f| f.case == "no-entry") {
        let Some(svc) = &f.service else { continue };
        if done.iter().any(|d| d.eq_ignore_ascii_case(svc)) {
            continue;
        }
        done.push(svc.clone());
        register(s, t, o, svc, ID, plan)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::good_label;

    #[test]
    fn labels_as_windows_writes_them() {
        assert!(good_label("viostor.inf_amd64_3f9b2a1c5d4e6f70"));
        assert!(good_label("stornvme.inf_amd64_0123456789abcdef"));
        assert!(!good_label("viostor.inf_tmp"));
        assert!(!good_label("viostor.inf_amd64_123"));
        assert!(!good_label("viostor_amd64_3f9b2a1c5d4e6f70"));
    }
}
