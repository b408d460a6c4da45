//! Fixing one image for one target: open it for writing (or read-only for a dry run),
//! check every install, plan each fixable finding's repair through the rule that found it,
//! apply the plans into the staging overlay, check the staged image again through the
//! overlay, and commit only when every install then boots there (or `force`).

use super::apply::{self, Applied};
use super::{FixOptions, NotFixed, Plan};
use crate::finding::Shared;
use crate::subject::Subject;
use crate::{check_opened_with, InstallCheck, Target, Verdict, RULES};
use rehost_core::error::Result;
use rehost_image::staged::{Mode, ShadowCopiesWritten};
use rehost_image::Image;
use rehost_windows as windows;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// What was done for one install.
#[derive(Debug, Clone, Serialize)]
pub struct InstallFix {
    /// The install's volume.
    pub volume: Option<u32>,
    /// `\Windows`.
    pub system_root: Option<String>,
    /// The product, for people.
    pub product: Option<String>,
    /// The verdict before.
    pub before: Verdict,
    /// Its STOP code.
    pub before_stop: Option<String>,
    /// The verdict of the staged image.
    pub after: Verdict,
    /// Its STOP code.
    pub after_stop: Option<String>,
    /// The changes applied, rule by rule, round by round.
    pub changes: Vec<Applied>,
    /// What the fixes could not repair, and why.
    pub not_fixed: Vec<NotFixed>,
    /// The findings the staged image still has.
    pub remaining: Vec<Shared>,
}

/// What a commit wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// The image written (the source, or the new image).
    pub path: String,
    /// Writes issued to the host file.
    pub host_writes: usize,
    /// Bytes written into it.
    pub bytes_written: u64,
    /// The undo journal, for a commit in place.
    pub journal: Option<String>,
    /// Bytes the commit added to the journal.
    pub journal_bytes: u64,
}

/// Most rounds of plan, apply and check one fix makes.
pub const MAX_ROUNDS: usize = 4;

/// What identifies a finding across rounds: its install, rule, case, service, control set
/// and message (one rule's case can be found for several entries of a store).
fn key(c: &InstallCheck, f: &Shared) -> String {
    format!(
        "{:?}|{:?}|{}|{}|{:?}|{:?}|{}",
        c.volume, c.system_root, f.rule, f.case, f.service, f.control_set, f.message
    )
}

/// The fix of one image for one target.
#[derive(Debug, Clone, Serialize)]
pub struct FixReport {
    /// The image.
    pub image: String,
    /// The target's name.
    pub target: String,
    /// "dry-run", "in-place" or "output".
    pub mode: &'static str,
    /// One entry per install.
    pub installs: Vec<InstallFix>,
    /// Rounds that changed something, each followed by a check of the staged image (a
    /// repair can bring to light a finding another one hid; each round fixes what the last
    /// check found new). 0 when there was nothing to fix.
    pub rounds: usize,
    /// Bytes staged.
    pub staged_bytes: u64,
    /// Whether anything was written.
    pub committed: bool,
    /// Why nothing was written, when nothing was.
    pub not_committed: Option<String>,
    /// What the commit wrote.
    pub written: Option<Written>,
    /// An interrupted commit the open rolled back first.
    pub recovered: Option<String>,
    /// The volumes written that have shadow copies (stale after a commit in place; in a
    /// dry run, what a commit in place would refuse without leave).
    pub shadow_copies: Vec<ShadowCopiesWritten>,
    /// In a dry run, why a commit in place would be refused by the image's container (a
    /// streamOptimized VMDK, compressed qcow2 clusters to rewrite, an E01 file), asked of
    /// it without writing: such an image is fixed with `--output`.
    pub in_place_refusal: Option<String>,
    /// In a dry run, what a commit in place would repair in the image's container besides
    /// the fix (a dirty qcow2's refcounts rebuilt from its tables), asked the same way.
    pub in_place_repairs: Vec<String>,
    /// What could not be read.
    pub errors: Vec<String>,
    /// Bytes read from the image file to check, plan and check again (the commit's own
    /// reads not counted).
    pub bytes_read: u64,
    /// Wall-clock time, in milliseconds.
    pub elapsed_ms: f64,
}

/// The rules whose fixes wait for the check after a conversion of the partition table:
/// what they found names the old table.
const AFTER_CONVERSION: [&str; 2] = ["boot-config", "mounted-devices"];

fn converting(plan: &Plan) -> bool {
    plan.changes
        .iter()
        .any(|p| matches!(p.change, super::Change::Gpt(_) | super::Change::Mbr(_)))
}

/// The plan of every rule's fix for one install, from its findings on `t`.
pub fn plan(s: &Subject, t: &Target, findings: &[Shared], opts: &FixOptions) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut done: Vec<&str> = Vec::new();
    for r in RULES.iter() {
        let Some(fix) = r.fix else { continue };
        if done.contains(&r.id) || !opts.runs(r.id) {
            continue;
        }
        // A disk converted to GPT or MBR gets new boot files and MountedDevices from the
        // conversion: what those rules found on the old table is checked again after it.
        if converting(&plan) && AFTER_CONVERSION.contains(&r.id) {
            continue;
        }
        done.push(r.id);
        let mine: Vec<&crate::Finding> = findings
            .iter()
            .filter(|f| f.rule == r.id && f.fixable)
            .map(|f| &**f)
            .collect();
        if mine.is_empty() {
            continue;
        }
        fix(s, t, &mine, opts, &mut plan)?;
    }
    if opts.show_stop_screen && opts.runs("san-policy") {
        crate::san_policy::show_stop_screen(s, &mut plan);
    }
    Ok(plan)
}

/// Fixes the image at `image` for `t`, writing as `mode` says.
pub fn fix(
    image: &Path,
    t: &Target,
    mode: Mode,
    opts: &FixOptions,
    force: bool,
) -> Result<FixReport> {
    let started = std::time::Instant::now();
    let staged = Image::open_staged(image, mode)?
        .allow_shadow_copies(opts.allow_shadow_copies)
        .output_format(opts.output_format)
        .vmdk_adapter(opts.vmdk_adapter);
    let mut report = fix_image(staged, t, opts, force)?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(report)
}

/// Fixes an image opened with [`Image::open_staged`] for `t`, in the mode it was opened
/// with: one session from the first check to the commit, the staged image checked again
/// through it.
pub fn fix_image(staged: Image, t: &Target, opts: &FixOptions, force: bool) -> Result<FixReport> {
    let started = std::time::Instant::now();
    let name = staged.name().to_string();
    let mode = staged.mode().cloned().ok_or_else(|| {
        staged
            .ctx()
            .invalid("fix needs an image opened for staged writes")
    })?;
    let targets = std::slice::from_ref(t);
    let mut opened = windows::open_image(&staged)?;
    let mut checks = check_opened_with(&opened, targets, opts);
    let errors = checks.errors.clone();
    let mut installs: Vec<InstallFix> = checks
        .installs
        .iter()
        .map(|c| InstallFix {
            volume: c.volume,
            system_root: c.system_root.clone(),
            product: c.product.clone(),
            before: c.verdict,
            before_stop: c.stop.clone(),
            after: c.verdict,
            after_stop: c.stop.clone(),
            changes: Vec::new(),
            not_fixed: Vec::new(),
            remaining: Vec::new(),
        })
        .collect();
    // Rounds: plan what the check finds fixable and has not been planned for yet, apply it,
    // check the staged image again through the session; stop when a round finds nothing
    // new to fix (a repair can bring a finding to light that another one hid).
    let mut planned: HashSet<String> = HashSet::new();
    let mut rounds = 0;
    while rounds < MAX_ROUNDS {
        let round = rounds + 1;
        let reader = opened.disk.reader();
        let mut applied = false;
        for (n, (i, h)) in opened.report.installs.iter().zip(&opened.hives).enumerate() {
            let Some(c) = checks.installs.get(n) else {
                continue;
            };
            let Some(f) = installs
                .iter_mut()
                .find(|f| f.volume == c.volume && f.system_root == c.system_root)
            else {
                continue;
            };
            let new: Vec<Shared> = c
                .findings
                .iter()
                .filter(|x| x.fixable && planned.insert(key(c, x)))
                .cloned()
                .collect();
            if new.is_empty() {
                continue;
            }
            let s = Subject::new(
                &opened.report,
                i,
                &opened.scene,
                &h.system,
                h.software.as_ref(),
                &*reader,
            );
            let p = plan(&s, t, &new, opts)?;
            if converting(&p) {
                // Their fixes waited for the converted table: planned in the next round.
                for x in new.iter().filter(|x| AFTER_CONVERSION.contains(&x.rule)) {
                    planned.remove(&key(c, x));
                }
            }
            let mut changes = apply::apply(&staged, &opened, i, &p, opts)?;
            applied |= !changes.is_empty();
            for ch in &mut changes {
                ch.round = round;
            }
            f.changes.extend(changes);
            for nf in p.not_fixed {
                if !f
                    .not_fixed
                    .iter()
                    .any(|x| x.rule == nf.rule && x.why == nf.why)
                {
                    f.not_fixed.push(nf);
                }
            }
        }
        if !applied {
            break;
        }
        rounds = round;
        opened = windows::open_image(&staged)?;
        checks = check_opened_with(&opened, targets, opts);
    }
    for f in installs.iter_mut() {
        if let Some(c) = checks
            .installs
            .iter()
            .find(|c| c.volume == f.volume && c.system_root == f.system_root)
        {
            f.after = c.verdict;
            f.after_stop = c.stop.clone();
            f.remaining = c.findings.clone();
        } else {
            f.after = Verdict::Unknown;
        }
    }
    let boots = !installs.is_empty() && installs.iter().all(|f| f.after.boots());
    let mode_name = match mode {
        Mode::DryRun => "dry-run",
        Mode::InPlace => "in-place",
        Mode::Output(_) => "output",
    };
    let not_committed = match (&mode, boots, force) {
        (Mode::DryRun, false, false) if !installs.is_empty() => Some(format!(
            "dry run: nothing written; --in-place would refuse: the staged image still does \
             not boot on {} (--force writes it anyway)",
            t.name
        )),
        (Mode::DryRun, _, _) => Some("dry run: nothing written".to_string()),
        (_, false, false) => Some(if installs.is_empty() {
            "no Windows install was found: nothing written".to_string()
        } else {
            format!(
                "the staged image still does not boot on {}: nothing written (--force writes it anyway)",
                t.name
            )
        }),
        _ => None,
    };
    drop(opened);
    let bytes_read = staged.bytes_read();
    let (committed, written, staged_bytes, recovered, shadow_copies, in_place) =
        if not_committed.is_none() {
            let out = staged.finish()?;
            let written = out.commit.as_ref().map(|c| Written {
                path: c.path.display().to_string(),
                host_writes: c.host_writes,
                bytes_written: c.bytes_written,
                journal: c.journal.as_ref().map(|j| j.display().to_string()),
                journal_bytes: c.journal_bytes,
            });
            let shadow = out.shadow_copies;
            (
                written.is_some(),
                written,
                out.staged_bytes,
                out.recovered,
                shadow,
                (out.in_place_refusal, out.in_place_repairs),
            )
        } else {
            let out = staged.discard();
            let shadow = out.shadow_copies;
            let in_place = (out.in_place_refusal, out.in_place_repairs);
            (
                false,
                None,
                out.staged_bytes,
                out.recovered,
                shadow,
                in_place,
            )
        };
    Ok(FixReport {
        image: name,
        target: t.name.clone(),
        mode: mode_name,
        installs,
        rounds,
        staged_bytes,
        committed,
        not_committed,
        written,
        recovered,
        shadow_copies,
        in_place_refusal: in_place.0,
        in_place_repairs: in_place.1,
        errors,
        bytes_read,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
