//! Images of several files: a VMDK's descriptor and its extent files, written by one
//! commit in place, each file journaled beside itself; their recovery and undo.
//!
//! The descriptor's journal leads: it is put in place first, marked complete first (the
//! commit's point of no return), and undone last; each extent file's generation takes the
//! number of the descriptor's generation of the same commit, and is marked complete only
//! after the descriptor's. So an extent file whose last generation is numbered as the
//! descriptor's last belongs to that commit: rolled back with it when it was interrupted
//! (or its undo was), marked complete when the descriptor's is. A member generation
//! numbered past the descriptor's last cannot happen, and is refused as out of step.

use super::carry_out::{apply, report_of, verify, CommitOptions, CommitReport};
use super::journal::{self, State};
use super::plan::Plan;
use super::sync::{Steps, WriteFile};
use super::undo::{self, Recovery, UndoReport};
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use std::path::{Path, PathBuf};

/// The last generation of `member`'s journal, if any: its number and state.
fn member_last(member: &Path) -> Result<Option<(u32, State)>> {
    Ok(journal::read(member)?.and_then(|j| j.generations.last().map(|g| (g.number, g.state))))
}

/// Rolls back `member`'s last generation if it is numbered `number`; the bytes restored.
fn roll_back_member(member: &Path, number: u32, steps: &mut Steps) -> Result<u64> {
    undo::remove_partial(member, steps)?;
    let Some(j) = journal::read(member)? else {
        return Ok(0);
    };
    match j.generations.last() {
        Some(g) if g.number == number => undo::roll_back(member, &j, g, steps),
        _ => Ok(0),
    }
}

/// The error of journals out of step with the descriptor's.
fn out_of_step(lead: &Path, member: &Path, what: &str) -> rehost_core::Error {
    journal::ctx(member).corrupt(
        0,
        format!(
            "{what}: the undo journal of {} is out of step with that of its descriptor {}; \
             nothing was restored",
            member.display(),
            lead.display()
        ),
    )
}

/// [`undo::recover`] for an image of several files: `lead` (whose exclusive lock the caller
/// holds) and its `members`. An interrupted commit (or undo) is rolled back in every file;
/// a commit interrupted after its point of no return is marked complete in the members.
pub(crate) fn recover_set(
    lead: &Path,
    members: &[PathBuf],
    steps: &mut Steps,
) -> Result<Option<Recovery>> {
    if members.is_empty() {
        return undo::recover(lead, steps);
    }
    undo::remove_partial(lead, steps)?;
    let j = journal::read(lead)?;
    let last = j.as_ref().and_then(|j| j.generations.last());
    if let Some(g) = last.filter(|g| g.state != State::Committed) {
        let mut restored = 0;
        for m in members {
            restored += roll_back_member(m, g.number, steps)?;
        }
        let r = undo::recover(lead, steps)?;
        return Ok(r.map(|r| Recovery {
            bytes_restored: r.bytes_restored + restored,
            ..r
        }));
    }
    let number = last.map(|g| g.number);
    for m in members {
        undo::remove_partial(m, steps)?;
        let Some(mj) = journal::read(m)? else {
            continue;
        };
        let Some(mg) = mj.generations.last() else {
            continue;
        };
        if number.is_none_or(|n| mg.number > n) {
            return Err(out_of_step(
                lead,
                m,
                &format!("its generation {} is newer", mg.number),
            ));
        }
        match mg.state {
            State::Committed => {}
            // Past the point of no return: the member's writes were all made and flushed.
            State::Pending if Some(mg.number) == number => {
                steps.phase("journal");
                let jf = WriteFile::open_read(&mj.path, Layer::Journal)?;
                let img = WriteFile::open_read(m, Layer::File)?;
                mg.check(&jf, &img, true)?;
                drop((jf, img));
                undo::append_marker(&mj.path, mg, false, steps)?;
            }
            _ => {
                return Err(out_of_step(
                    lead,
                    m,
                    &format!("its generation {} is unfinished", mg.number),
                ))
            }
        }
    }
    Ok(None)
}

/// [`undo::interrupted`] for an image of several files.
pub(crate) fn interrupted_set(lead: &Path, members: &[PathBuf]) -> Result<bool> {
    if undo::interrupted(lead)? {
        return Ok(true);
    }
    for m in members {
        if member_last(m)?.is_some_and(|(_, s)| s != State::Committed) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`undo::undo_last`] for an image of several files: the last commit undone in every file.
pub(crate) fn undo_last_set(lead: &Path, members: &[PathBuf], steps: &mut Steps) -> Result<()> {
    let Some(j) = journal::read(lead)? else {
        return Ok(());
    };
    let Some(g) = j.generations.last() else {
        return Ok(());
    };
    if g.state == State::Committed {
        undo::append_marker(&j.path, g, true, steps)?;
    }
    for m in members {
        roll_back_member(m, g.number, steps)?;
    }
    undo::roll_back(lead, &j, g, steps).map(|_| ())
}

/// [`crate::undo()`] for an image of several files: every commit undone in every file, newest
/// first, each file checked before anything is restored.
pub(crate) fn undo(
    image: &Path,
    members: &[PathBuf],
    steps: &mut Steps,
    report: &mut UndoReport,
) -> Result<()> {
    // An interrupted commit or undo first, and members brought in step.
    if let Some(r) = recover_set(image, members, steps)? {
        report.bytes_restored += r.bytes_restored;
        report.generations.push(r.generation);
        report.len_after = r.len;
    }
    while let Some(j) = journal::read(image)? {
        let Some(g) = j.generations.last() else { break };
        let jf = WriteFile::open_read(&j.path, Layer::Journal)?;
        let img = WriteFile::open_read(image, Layer::File)?;
        g.check(&jf, &img, true)?;
        drop((jf, img));
        for m in members {
            let Some(mj) = journal::read(m)? else {
                continue;
            };
            if let Some(mg) = mj.generations.last().filter(|mg| mg.number == g.number) {
                let jf = WriteFile::open_read(&mj.path, Layer::Journal)?;
                let img = WriteFile::open_read(m, Layer::File)?;
                mg.check(&jf, &img, true)?;
            }
        }
        steps.phase("undo");
        undo::append_marker(&j.path, g, true, steps)?;
        for m in members {
            report.bytes_restored += roll_back_member(m, g.number, steps)?;
        }
        report.bytes_restored += undo::roll_back(image, &j, g, steps)?;
        report.generations.push(g.number);
        report.len_after = g.orig_len;
    }
    for m in members {
        if member_last(m)?.is_some() {
            return Err(out_of_step(
                image,
                m,
                "it keeps generations the descriptor's journal does not",
            ));
        }
    }
    Ok(())
}

/// Commits in place into several files (a VMDK's descriptor first, then its extent
/// files), each behind a journal of its own, tied to the descriptor's (see the module documentation):
/// journals put in place, the descriptor's first; the writes, each file flushed; the
/// descriptor's journal marked complete, then the others'; the read-back.
pub(crate) fn commit(
    lead: &Path,
    members: &[PathBuf],
    files: Vec<(PathBuf, Plan)>,
    extents: &[(u64, Vec<u8>)],
    opts: &CommitOptions,
) -> Result<CommitReport> {
    let ctx = Ctx::new(lead.display().to_string(), Layer::File);
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let known: Vec<PathBuf> = members.iter().map(|m| canon(m)).collect();
    for (p, _) in &files[1..] {
        if !known.contains(&canon(p)) {
            return Err(ctx.invalid(format!(
                "the commit would write {}, which the descriptor does not name beside it",
                p.display()
            )));
        }
    }
    let mut report = report_of(&files[0].1, lead, extents);
    for (p, plan) in &files[1..] {
        report.host_writes += plan.writes().count();
        report.bytes_written += plan.bytes_written();
        report
            .notes
            .extend(plan.notes.iter().map(|n| format!("{}: {n}", p.display())));
    }
    let mut steps = Steps::new(opts.observer);
    let prior = journal::read(lead)?;
    let number = prior
        .as_ref()
        .and_then(|j| j.generations.last())
        .map_or(0, |g| g.number + 1);
    let mut journals = Vec::with_capacity(files.len());
    for (i, (p, plan)) in files.iter().enumerate() {
        let path = if i == 0 { lead } else { p.as_path() };
        if i > 0 && plan.is_empty() {
            continue;
        }
        let img = WriteFile::open(path, Layer::File)?;
        if img.len()? != plan.file_len {
            return Err(ctx.invalid(format!(
                "{} changed size since it was opened",
                path.display()
            )));
        }
        let prior = if i == 0 {
            prior.clone()
        } else {
            journal::read(path)?
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let generation = journal::encode(plan, &img, number, &name)?;
        drop(img);
        let installed = undo::install(path, prior.as_ref(), &generation, &mut steps);
        let j = match installed {
            Ok(j) => j,
            Err(e) => {
                return Err(roll_back_files(lead, members, &ctx, e, &mut steps));
            }
        };
        report.journal_bytes += generation.len() as u64 + 32;
        journals.push((path.to_path_buf(), j));
    }
    // The extent files first, the descriptor (whose new CID says the disk changed)
    // last.
    for (i, (p, plan)) in files.iter().enumerate().rev() {
        let path = if i == 0 { lead } else { p.as_path() };
        if plan.is_empty() {
            continue;
        }
        let done = WriteFile::open(path, Layer::File).and_then(|f| apply(plan, &f, &mut steps));
        if let Err(e) = done {
            return Err(roll_back_files(lead, members, &ctx, e, &mut steps));
        }
    }
    steps.phase("journal");
    for (_, j) in &journals {
        undo::mark_committed(j, &mut steps)?;
    }
    if let Err(e) = verify(lead, extents, false) {
        steps.phase("undo");
        undo_last_set(lead, members, &mut steps)?;
        return Err(ctx.error(
            Location::None,
            ErrorKind::Corrupt(format!("{e}; the commit was undone")),
        ));
    }
    report.len_before = files[0].1.file_len;
    report.len_after = files[0].1.new_len;
    report.journal = journals.first().map(|(_, j)| j.path.clone());
    report.steps = steps.taken();
    Ok(report)
}

/// `e`, a failed write into several files, with what rolling them back did.
fn roll_back_files(
    lead: &Path,
    members: &[PathBuf],
    ctx: &Ctx,
    e: rehost_core::Error,
    steps: &mut Steps,
) -> rehost_core::Error {
    let how = match recover_set(lead, members, steps) {
        Ok(_) => "the image's files were rolled back".to_string(),
        Err(r) => format!(
            "rolling back failed too ({r}); they will be rolled back when the image is \
             next opened for writing"
        ),
    };
    ctx.error(
        e.location.clone(),
        ErrorKind::Io(std::io::Error::other(format!("{e}; {how}"))),
    )
}
