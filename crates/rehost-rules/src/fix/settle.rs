//! Whether a finding is fixable *here*: a case of a rule is fixable in general
//! (`profiles/rules.toml`), but whether `rehost fix`, with the options given, repairs one
//! finding depends on the image: a driver folder with the package, a cabinet with the
//! file, a hive that can be written, a volume that is not hibernated. The check settles it
//! by planning the finding's fix, as the fix would plan it, and by asking whether each
//! change could be written; a finding whose plan falls short loses its `fixable` mark and
//! says why (`cannot_fix`). So check's `[fixable]` is a promise fix keeps.

use super::{Change, FixOptions, Plan};
use crate::finding::Finding;
use crate::subject::Subject;
use crate::{Rule, Target};

/// Settles the fixable findings `r` found for `s` on `t`.
pub fn settle(r: &Rule, s: &Subject, t: &Target, findings: &mut [Finding], opts: &FixOptions) {
    let Some(fix) = r.fix else {
        return;
    };
    for f in findings.iter_mut().filter(|f| f.fixable) {
        let why = if !opts.runs(r.id) {
            Some(format!("the fix of {} is left out (--only / --skip)", r.id))
        } else {
            let mut plan = Plan::default();
            let blocking = |p: &Plan| p.not_fixed.iter().any(|n| !n.partial);
            match fix(s, t, &[&*f], opts, &mut plan) {
                Err(e) => Some(format!("its fix could not be planned: {e}")),
                Ok(()) if blocking(&plan) => Some(
                    plan.not_fixed
                        .iter()
                        .filter(|n| !n.partial)
                        .map(|n| n.why.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Ok(()) if plan.changes.is_empty() => {
                    Some("its fix finds nothing to change".to_string())
                }
                Ok(()) => unwritable(s, &plan, opts),
            }
        };
        if let Some(why) = why {
            f.fixable = false;
            f.cannot_fix = Some(why);
        }
    }
}

/// Why a planned change could not be written, if it could not: a dirty hive whose logs
/// cannot be replayed, a hibernated volume, a volume whose log Windows would replay or
/// whose dirty flag is set (the writers refuse them; `Image` and the NTFS writer say the
/// same at write time).
pub fn unwritable(s: &Subject, plan: &Plan, opts: &FixOptions) -> Option<String> {
    let mut volumes: Vec<u32> = Vec::new();
    for p in &plan.changes {
        let v = match &p.change {
            Change::Registry { hive, store, .. } => {
                if store.is_none() {
                    if let Some(why) = dirty_hive(s, hive, opts) {
                        return Some(why);
                    }
                }
                store.unwrap_or(s.install.volume)
            }
            Change::Put { volume, .. }
            | Change::Rename { volume, .. }
            | Change::BootIni { volume, .. } => *volume,
            Change::Bytes { .. } | Change::Active { .. } | Change::Gpt(_) | Change::Mbr(_) => {
                continue
            }
        };
        if !volumes.contains(&v) {
            volumes.push(v);
        }
    }
    volumes.iter().find_map(|v| volume_state(s, *v, opts))
}

fn dirty_hive(s: &Subject, hive: &str, opts: &FixOptions) -> Option<String> {
    let h = s
        .install
        .hives
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(hive))?;
    (h.dirty && h.replayed.is_none() && !opts.accept_dirty_hive).then(|| {
        format!(
            "{} is dirty and its logs cannot be replayed ({}): fix --accept-dirty-hive edits it \
             as its primary file stands and writes it back consistent (what the logs held is lost)",
            h.name,
            h.dirty_reason.as_deref().unwrap_or("no usable logs")
        )
    })
}

fn volume_state(s: &Subject, index: u32, opts: &FixOptions) -> Option<String> {
    let v = s.volume(index)?;
    if v.hibernated == Some(true) && !opts.discard_hibernation {
        return Some(format!(
            "volume {index} holds an active hibernation image, and Windows would resume the \
             old session over any change: fix --discard-hibernation empties hiberfil.sys \
             and writes (the hibernated session is lost)"
        ));
    }
    if v.logfile_clean == Some(false) && v.hibernated != Some(true) {
        return Some(format!(
            "volume {index}'s $LogFile holds changes Windows would replay over any change: \
             boot Windows and shut it down cleanly (or run chkdsk /f on it) first"
        ));
    }
    if v.dirty == Some(true) {
        return Some(format!(
            "volume {index} is marked dirty (chkdsk is due): rehost does not write it; let \
             chkdsk check it (boot Windows, or chkdsk /f) first"
        ));
    }
    None
}
