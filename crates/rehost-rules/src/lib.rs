//! The rules layer: will each install of an image boot on a target machine, and if not, why.
//!
//! A target is a profile ([`target`], data in `profiles/targets/*.toml`). A rule is one
//! cause of a failed boot, in a file of its own beside the fix that will repair it: it looks
//! at an install ([`subject::Subject`]) and a target and returns findings ([`Finding`]: a
//! case of the rule from `profiles/rules.toml` with its severity, the STOP code it predicts,
//! the evidence and whether rehost can fix it). Every control set `Select` names is
//! evaluated; what is wrong only in a set the next boot does not use is a warning.
//!
//! The verdict of an install on a target ([`Verdict`]): `no-boot` with the STOP code of the
//! first error in boot order, `unknown` when something that decides it could not be read,
//! `boots-with-warnings`, or `boots`.
//!
//! ```no_run
//! let targets = rehost_rules::target::builtin()?;
//! let kvm: Vec<_> = targets.into_iter().filter(|t| t.name == "kvm-virtio-blk").collect();
//! let report = rehost_rules::check("server.vhdx".as_ref(), &kvm)?;
//! for i in &report.installs {
//!     println!("{} on {}: {} {:?}", i.system_root.as_deref().unwrap_or("?"), i.target,
//!         i.verdict.name(), i.stop);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod finding;
pub mod fix;
pub mod subject;
pub mod target;
pub mod version;

mod boot_config;
mod boot_driver;
mod cannot;
mod class_filter;
mod cpu_driver;
mod critical_device;
mod dirty_hive;
mod dirty_volume;
mod driver_database;
mod encrypted;
mod firmware;
mod hal_fix;
mod hal_kernel_pair;
mod hal_target;
mod hypervisor_driver;
mod inject;
mod mounted_devices;
pub(crate) mod san_policy;
mod start_override;
mod storage_driver;
mod version_skew;

pub use finding::{Evidence, Finding, Severity, Shared};
pub use fix::FixOptions;
pub use target::Target;

use rehost_core::error::Result;
use rehost_windows::{self as windows, Opened};
use serde::Serialize;
use std::path::Path;
use subject::Subject;

/// What a rule adds to: its findings, and why it could not decide, if it could not.
#[derive(Default)]
pub struct Out {
    /// Findings.
    pub findings: Vec<Finding>,
    /// What could not be read or known, in words: the verdict is `unknown` unless an
    /// error is found anyway.
    pub unknown: Vec<String>,
}

/// One rule: its id and its check.
pub struct Rule {
    /// The id findings carry.
    pub id: &'static str,
    /// A hash of what of the target the check reads; `None` when it reads nothing of it.
    /// Targets that agree there get the same findings, computed once per install.
    pub reads: Option<fn(&Target) -> u64>,
    /// The check.
    pub check: fn(&Subject, &Target, &mut Out) -> Result<()>,
    /// The fix of the check's fixable findings, when the rule has one.
    pub fix: Option<fix::FixFn>,
}

impl Rule {
    /// The rule with its fix.
    pub const fn fixed(self, f: fix::FixFn) -> Rule {
        Rule {
            fix: Some(f),
            ..self
        }
    }
}

/// Every rule, in boot order: the first error a boot would hit comes first. A rule whose
/// check has a part that is the same on every target lists it apart, so that part runs
/// once per install.
pub const RULES: [Rule; 18] = [
    rule("encrypted", None, encrypted::check),
    rule("firmware", Some(firmware::reads), firmware::check).fixed(firmware::fix),
    rule("boot-config", None, boot_config::check).fixed(boot_config::fix),
    rule("dirty-volume", None, dirty_volume::check).fixed(dirty_volume::fix),
    rule("dirty-hive", None, dirty_hive::check),
    // The HAL fixes read the target's HAL: their findings are settled per HAL.
    rule(
        "hal-kernel-pair",
        Some(hal_target::reads),
        hal_kernel_pair::check,
    )
    .fixed(hal_kernel_pair::fix),
    rule("hal-target", Some(hal_target::reads), hal_target::check).fixed(hal_target::fix),
    rule(
        "storage-driver",
        Some(storage_driver::reads),
        storage_driver::check,
    )
    .fixed(storage_driver::fix),
    rule("storage-driver", None, storage_driver::check_stack),
    rule(
        "start-override",
        Some(storage_driver::reads),
        start_override::check,
    )
    .fixed(start_override::fix),
    rule(
        "critical-device",
        Some(storage_driver::reads),
        critical_device::check,
    )
    .fixed(critical_device::fix),
    rule(
        "driver-database",
        Some(storage_driver::reads),
        driver_database::check,
    )
    .fixed(driver_database::fix),
    rule("class-filter", None, class_filter::check).fixed(class_filter::fix),
    rule(
        "hypervisor-driver",
        Some(hypervisor_driver::reads),
        hypervisor_driver::check,
    )
    .fixed(hypervisor_driver::fix),
    rule("cpu-driver", Some(cpu_driver::reads), cpu_driver::check).fixed(cpu_driver::fix),
    rule("version-skew", Some(hal_target::reads), version_skew::check).fixed(version_skew::fix),
    rule("mounted-devices", None, mounted_devices::check).fixed(mounted_devices::fix),
    rule("san-policy", Some(san_policy::reads), san_policy::check).fixed(san_policy::fix),
];

const fn rule(
    id: &'static str,
    reads: Option<fn(&Target) -> u64>,
    check: fn(&Subject, &Target, &mut Out) -> Result<()>,
) -> Rule {
    Rule {
        id,
        reads,
        check,
        fix: None,
    }
}

/// Whether an install boots on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing stands in the way.
    Boots,
    /// It boots, with warnings.
    BootsWithWarnings,
    /// It does not boot: the first error says how it stops.
    NoBoot,
    /// rehost cannot tell: `why` says what it could not read.
    Unknown,
}

impl Verdict {
    /// The name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Boots => "boots",
            Verdict::BootsWithWarnings => "boots-with-warnings",
            Verdict::NoBoot => "no-boot",
            Verdict::Unknown => "unknown",
        }
    }

    /// `boots` or `boots-with-warnings`.
    pub fn boots(self) -> bool {
        matches!(self, Verdict::Boots | Verdict::BootsWithWarnings)
    }
}

/// The check of one install (or of a volume where one could not be read) on one target.
#[derive(Debug, Clone, Serialize)]
pub struct InstallCheck {
    /// The volume holding the install.
    pub volume: Option<u32>,
    /// `\Windows`.
    pub system_root: Option<String>,
    /// The product, for people.
    pub product: Option<String>,
    /// The target's name.
    pub target: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The STOP code or symptom of the first error, for `no-boot`.
    pub stop: Option<String>,
    /// Why the verdict is `unknown`.
    pub why: Vec<String>,
    /// Every finding, in boot order.
    pub findings: Vec<Shared>,
}

/// The check of one image.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The image file.
    pub image: String,
    /// One entry per install and target.
    pub installs: Vec<InstallCheck>,
    /// What could not be read while inspecting it.
    pub errors: Vec<String>,
    /// Bytes read from the image files.
    pub bytes_read: u64,
    /// Wall-clock time, in milliseconds.
    pub elapsed_ms: f64,
}

/// Checks the image at `path` against `targets`, read-only.
pub fn check(path: &Path, targets: &[Target]) -> Result<CheckReport> {
    check_with(path, targets, &FixOptions::default())
}

/// Checks the image at `path` against `targets`, read-only, settling what is fixable for
/// a fix with `opts` (a driver folder, `--accept-dirty-hive`, ...).
pub fn check_with(path: &Path, targets: &[Target], opts: &FixOptions) -> Result<CheckReport> {
    let started = std::time::Instant::now();
    let opened = windows::open(path)?;
    let mut r = check_opened_with(&opened, targets, opts);
    r.bytes_read = opened.disk.stats().bytes();
    r.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(r)
}

/// Checks an opened image against `targets`; fixable means what a fix with no options
/// repairs.
pub fn check_opened(o: &Opened, targets: &[Target]) -> CheckReport {
    check_opened_with(o, targets, &FixOptions::default())
}

/// Checks an opened image against `targets`; fixable means what a fix with `opts`
/// repairs ([`fix::settle`]).
pub fn check_opened_with(o: &Opened, targets: &[Target], opts: &FixOptions) -> CheckReport {
    let mut installs = Vec::new();
    let reader = o.disk.reader();
    for (i, h) in o.report.installs.iter().zip(&o.hives) {
        let s = Subject::new(
            &o.report,
            i,
            &o.scene,
            &h.system,
            h.software.as_ref(),
            &*reader,
        );
        installs.extend(check_install(&s, targets, opts));
    }
    if o.report.installs.is_empty() {
        for t in targets {
            installs.push(no_install(o, t));
        }
    }
    CheckReport {
        image: o.report.image.clone(),
        installs,
        errors: o.report.errors.clone(),
        bytes_read: o.disk.stats().bytes(),
        elapsed_ms: o.report.elapsed_ms,
    }
}

/// Runs every rule on one install for each target; a rule runs once for all the targets
/// that agree on what it reads of them.
fn check_install(s: &Subject, targets: &[Target], opts: &FixOptions) -> Vec<InstallCheck> {
    let mut done: Vec<(Vec<Shared>, Vec<String>)> = Vec::new();
    let mut by_key: std::collections::HashMap<(usize, u64), usize> = Default::default();
    targets
        .iter()
        .map(|t| {
            let mut findings = Vec::new();
            let mut why: Vec<String> = Vec::new();
            for (n, r) in RULES.iter().enumerate() {
                let key = (n, r.reads.map(|f| f(t)).unwrap_or_default());
                let i = match by_key.get(&key) {
                    Some(i) => *i,
                    None => {
                        let mut o = run(r, s, t);
                        fix::settle::settle(r, s, t, &mut o.findings, opts);
                        let shared = o.findings.into_iter().map(|f| Shared(f.into())).collect();
                        done.push((shared, o.unknown));
                        by_key.insert(key, done.len() - 1);
                        done.len() - 1
                    }
                };
                findings.extend(done[i].0.iter().cloned());
                for u in &done[i].1 {
                    if !why.contains(u) {
                        why.push(u.clone());
                    }
                }
            }
            let (verdict, stop) = verdict(&findings, &why);
            InstallCheck {
                volume: Some(s.install.volume),
                system_root: Some(s.install.system_root.clone()),
                product: s.install.product_name.clone(),
                target: t.name.clone(),
                verdict,
                stop,
                why,
                findings,
            }
        })
        .collect()
}

/// One rule on one install and target; a read error makes the answer unknown. Errors in a
/// control set the next boot does not use become warnings.
fn run(r: &Rule, s: &Subject, t: &Target) -> Out {
    let mut out = Out::default();
    if let Err(e) = (r.check)(s, t, &mut out) {
        out.unknown.push(format!("{}: {e}", r.id));
    }
    for f in &mut out.findings {
        if let (Some(cs), Some(boot)) = (f.control_set, s.boot_set) {
            if cs != boot && f.severity == Severity::Error {
                f.severity = Severity::Warning;
                f.message = format!(
                    "{} (only in {}: the next boot uses {})",
                    f.message,
                    s.set_name(cs),
                    s.cs_key(boot)
                );
            }
        }
    }
    out
}

/// The verdict of a set of findings, and of what could not be known.
pub fn verdict(findings: &[Shared], unknown: &[String]) -> (Verdict, Option<String>) {
    if let Some(e) = findings.iter().find(|f| f.severity == Severity::Error) {
        return (Verdict::NoBoot, e.stop.clone());
    }
    if !unknown.is_empty() {
        return (Verdict::Unknown, None);
    }
    if findings.iter().any(|f| f.severity == Severity::Warning) {
        return (Verdict::BootsWithWarnings, None);
    }
    (Verdict::Boots, None)
}

/// An image where no install could be read: `unknown`, saying why (an encrypted volume
/// the boot configuration points at, or nothing that looks like Windows).
fn no_install(o: &Opened, t: &Target) -> InstallCheck {
    let mut out = Out::default();
    encrypted::without_install(&o.report, &mut out);
    if out.findings.is_empty() {
        out.unknown
            .push("no Windows install was found on the image".into());
    }
    let volume = out
        .findings
        .iter()
        .flat_map(|f| &f.evidence)
        .find_map(|e| e.volume);
    let findings: Vec<Shared> = out.findings.into_iter().map(|f| Shared(f.into())).collect();
    let (verdict, stop) = verdict(&findings, &out.unknown);
    InstallCheck {
        volume,
        system_root: None,
        product: None,
        target: t.name.clone(),
        verdict,
        stop,
        why: out.unknown,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_cases_and_every_case_a_rule() {
        let cases = finding::cases();
        for r in &RULES {
            assert!(
                cases.iter().any(|c| c.rule == r.id),
                "rule {} has no case in rules.toml",
                r.id
            );
        }
        for c in cases {
            assert!(
                RULES.iter().any(|r| r.id == c.rule),
                "rules.toml names an unknown rule {}",
                c.rule
            );
            // Every case is one its rule's code can give.
            let file = format!(
                "{}/src/{}.rs",
                env!("CARGO_MANIFEST_DIR"),
                c.rule.replace('-', "_")
            );
            let code = std::fs::read_to_string(&file).unwrap();
            assert!(
                code.contains(&format!("\"{}\"", c.case)),
                "{file} never gives case {}",
                c.case
            );
        }
    }
}
