//! `san-policy` (Vista and later): `Services\partmgr\Parameters\SanPolicy` 3 or 4 keeps
//! disks Windows has not seen before offline, and 2 (OfflineShared) those of them on a
//! shared bus (SCSI, SAS, iSCSI, Fibre Channel: a target whose profile says `shared_bus`).
//! After a move every disk is new: the data disks stay offline (the boot disk is always
//! brought online).

use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;

const ID: &str = "san-policy";

/// What of the target the check reads.
pub fn reads(t: &Target) -> u64 {
    super::target::hash(t.shared_bus)
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    if s.version.is_some_and(|v| v < Version::VISTA) {
        return Ok(());
    }
    for &cs in &s.sets {
        let key = format!("{}\\Services\\partmgr\\Parameters", s.cs_key(cs));
        let Some(policy) = s.system.number(&key, "SanPolicy")? else {
            continue;
        };
        if policy == 2 && t.shared_bus {
            out.findings.push(
                Finding::new(
                    ID,
                    "offline-shared",
                    format!(
                        "SanPolicy is 2 (offline shared) and the target's disks sit on a \
                         shared bus ({}): its data disks keep offline after the move",
                        t.controller.name
                    ),
                )
                .with(Evidence::system(key, "SanPolicy", "2"))
                .about(Some(cs), Some("partmgr")),
            );
        } else if policy == 3 || policy == 4 {
            out.findings.push(
                Finding::new(
                    ID,
                    "offline",
                    format!(
                        "SanPolicy is {policy} ({}): disks Windows has not seen keep offline \
                         after the move",
                        if policy == 3 {
                            "offline"
                        } else {
                            "offline internal"
                        }
                    ),
                )
                .with(Evidence::system(key, "SanPolicy", policy.to_string()))
                .about(Some(cs), Some("partmgr")),
            );
        }
    }
    Ok(())
}

/// The fix: SanPolicy 1 (every disk online) where it keeps new disks offline.
pub fn fix(
    s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    _o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let mut ops = Vec::new();
    for f in findings {
        let Some(cs) = f.control_set else { continue };
        ops.push(Op::Key(reg::system(&format!(
            "{}\\Services\\partmgr\\Parameters",
            s.cs_key(cs)
        ))));
        ops.push(reg::dword("SanPolicy", 1));
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            "bring every disk online after the move (SanPolicy 1)",
            Change::system(ops),
        );
    }
    Ok(())
}

/// `--show-stop-screen`: CrashControl AutoReboot 0 in every control set `Select` names, so
/// that a STOP screen stays on the screen instead of a reboot loop, whatever else is fixed.
pub fn show_stop_screen(s: &Subject, plan: &mut Plan) {
    let mut ops = Vec::new();
    for cs in &s.sets {
        ops.push(Op::Key(reg::system(&format!(
            "{}\\Control\\CrashControl",
            s.cs_key(*cs)
        ))));
        ops.push(reg::dword("AutoReboot", 0));
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            "keep a STOP screen on the screen (CrashControl AutoReboot 0)",
            Change::system(ops),
        );
    }
}
