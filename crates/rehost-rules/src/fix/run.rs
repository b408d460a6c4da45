//! Fixing one image for one target: open it for writing (or read-only for a dry run),
//! check every install, plan each fixable finding's repair through the rule that found it,
//! apply the plans into the staging overlay, check the staged image again through the
//! overlay, and commit only when every install then boots there (or `force`).

use super::apply::{self, Applied};
use super::{FixOptions, NotFixed, Plan};
use crate::finding::Shared;
use crate::subject::Subject;
use crate::{check_opened, Target, Verdict, RULES};
use rehost_core::error::Result;
use rehost_image::staged::Mode;
use rehost_image::Image;
use rehost_windows as windows;
use serde::Serialize;
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
    /// The changes applied, rule by rule.
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
    /// What could not be read.
    pub errors: Vec<String>,
    /// Bytes read from the image file to check, plan and check again (the commit's own
    /// reads not counted).
    pub bytes_read: u64,
    /// Wall-clock time, in milliseconds.
    pub elapsed_ms: f64,
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
    let mut report = fix_image(Image::open_staged(image, mode)?, t, opts, force)?;
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
    let before = windows::open_image(&staged)?;
    let checks = check_opened(&before, std::slice::from_ref(t));
    let reader = before.disk.reader();
    let mut installs = Vec::new();
    for (n, (i, h)) in before.report.installs.iter().zip(&before.hives).enumerate() {
        let s = Subject::new(
            &before.report,
            i,
            &before.scene,
            &h.system,
            h.software.as_ref(),
            &*reader,
        );
        let c = &checks.installs[n];
        let p = plan(&s, t, &c.findings, opts)?;
        let changes = apply::apply(&staged, &before, i, &p)?;
        installs.push(InstallFix {
            volume: c.volume,
            system_root: c.system_root.clone(),
            product: c.product.clone(),
            before: c.verdict,
            before_stop: c.stop.clone(),
            after: c.verdict,
            after_stop: c.stop.clone(),
            changes,
            not_fixed: p.not_fixed,
            remaining: Vec::new(),
        });
    }
    let after = windows::open_image(&staged)?;
    let again = check_opened(&after, std::slice::from_ref(t));
    for f in installs.iter_mut() {
        if let Some(c) = again
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
    let errors = checks.errors.clone();
    drop(before);
    drop(after);
    let bytes_read = staged.bytes_read();
    let (committed, written, staged_bytes, recovered) = if not_committed.is_none() {
        let out = staged.finish()?;
        let written = out.commit.as_ref().map(|c| Written {
            path: c.path.display().to_string(),
            host_writes: c.host_writes,
            bytes_written: c.bytes_written,
            journal: c.journal.as_ref().map(|j| j.display().to_string()),
            journal_bytes: c.journal_bytes,
        });
        (written.is_some(), written, out.staged_bytes, out.recovered)
    } else {
        let out = staged.discard();
        (false, None, out.staged_bytes, out.recovered)
    };
    Ok(FixReport {
        image: name,
        target: t.name.clone(),
        mode: mode_name,
        installs,
        staged_bytes,
        committed,
        not_committed,
        written,
        recovered,
        errors,
        bytes_read,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
