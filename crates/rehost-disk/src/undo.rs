//! Journals at work: installing one before a commit, marking it complete after, rolling
//! back an interrupted commit when the image is next opened for writing, and rolling back
//! each commit for `rehost undo` ([`crate::undo()`], beside the commit).
//!
//! Every one of these is safe to interrupt and repeat. A rollback or undo first checks the
//! image against the journal (every sector holds the bytes the commit wrote, or for an
//! interrupted commit either those or the bytes before), writes the saved bytes back,
//! restores the length, flushes, and only then cuts the generation off the journal (or
//! removes the journal when it was the only one). Killed before the cut, it finds the same
//! generation next time, and the same check passes, since restored sectors hold their old
//! bytes. An undo marks the generation before it starts, so that the strict check of a
//! complete commit is relaxed only for an undo that was under way.

use super::journal::{self, Generation, Journal, State};
use super::sync::{self, Steps, WriteFile};
use rehost_core::error::{Layer, Result};
use std::path::{Path, PathBuf};

/// What opening an image for writing found and did about an interrupted operation.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The generation rolled back (an interrupted commit) or whose undo was finished.
    pub generation: u32,
    /// Whether it was an undo that was finished (else a commit that was rolled back).
    pub finished_undo: bool,
    /// Bytes written back into the image.
    pub bytes_restored: u64,
    /// The image's length now.
    pub len: u64,
}

/// What `undo` did.
#[derive(Debug, Clone)]
pub struct UndoReport {
    /// The journal that was used (and removed).
    pub journal: PathBuf,
    /// Commits undone, newest first.
    pub generations: Vec<u32>,
    /// Bytes written back into the image.
    pub bytes_restored: u64,
    /// The image's length before and after the undo.
    pub len_before: u64,
    /// The image's length now.
    pub len_after: u64,
}

/// Removes a journal left half written by a commit killed before the journal was in place.
/// The caller holds the exclusive lock.
pub(crate) fn remove_partial(image: &Path, steps: &mut Steps) -> Result<()> {
    let partial = journal::partial_path(image);
    if partial.exists() {
        sync::remove(steps, &partial, &journal::ctx(image))?;
    }
    Ok(())
}

/// Rolls back an interrupted commit or finishes an interrupted undo of `image`, whose
/// exclusive lock the caller holds.
pub(crate) fn recover(image: &Path, steps: &mut Steps) -> Result<Option<Recovery>> {
    remove_partial(image, steps)?;
    let Some(j) = journal::read(image)? else {
        return Ok(None);
    };
    let Some(g) = j.generations.last() else {
        return Ok(None);
    };
    if g.state == State::Committed {
        return Ok(None);
    }
    let bytes_restored = roll_back(image, &j, g, steps)?;
    Ok(Some(Recovery {
        generation: g.number,
        finished_undo: g.state == State::Undoing,
        bytes_restored,
        len: g.orig_len,
    }))
}

/// Whether `image` has a journal whose last commit or undo was interrupted (read only).
pub(crate) fn interrupted(image: &Path) -> Result<bool> {
    Ok(journal::read(image)?
        .and_then(|j| j.generations.last().map(|g| g.state != State::Committed))
        .unwrap_or(false))
}

/// Checks `image` against `g` leniently, writes back what `g` saved, and drops `g`.
pub(crate) fn roll_back(
    image: &Path,
    j: &Journal,
    g: &Generation,
    steps: &mut Steps,
) -> Result<u64> {
    steps.phase("rollback");
    let jf = WriteFile::open_read(&j.path, Layer::Journal)?;
    let img = WriteFile::open(image, Layer::File)?;
    g.check(&jf, &img, false)?;
    let n = g.restore(&jf, &img, steps)?;
    drop(jf);
    drop_generation(j, g, steps)?;
    Ok(n)
}

/// Cuts `g` (the last generation) off the journal, or removes the journal.
fn drop_generation(j: &Journal, g: &Generation, steps: &mut Steps) -> Result<()> {
    if g.start() == 0 {
        let ctx = rehost_core::Ctx::new(j.path.display().to_string(), Layer::Journal);
        sync::remove(steps, &j.path, &ctx)?;
        sync::sync_dir(steps, &j.path, &ctx)
    } else {
        let jf = WriteFile::open(&j.path, Layer::Journal)?;
        jf.set_len(steps, g.start())?;
        jf.sync(steps)
    }
}

/// Appends a marker for `g` at the end of the journal and flushes it.
pub(crate) fn append_marker(
    path: &Path,
    g: &Generation,
    undoing: bool,
    steps: &mut Steps,
) -> Result<()> {
    let jf = WriteFile::open(path, Layer::Journal)?;
    let at = jf.len()?;
    jf.write(steps, at, &journal::marker(g, undoing))?;
    jf.sync(steps)
}

/// Undoes the last commit recorded in the journal of `image` (a commit that did not read
/// back as staged). The caller holds the exclusive lock.
pub(crate) fn undo_last(image: &Path, steps: &mut Steps) -> Result<()> {
    let Some(j) = journal::read(image)? else {
        return Ok(());
    };
    let Some(g) = j.generations.last() else {
        return Ok(());
    };
    if g.state == State::Committed {
        append_marker(&j.path, g, true, steps)?;
    }
    roll_back(image, &j, g, steps).map(|_| ())
}

/// Puts the journal of a new commit in place: the journal so far (if any) and `generation`
/// are written under a temporary name, flushed, renamed over the journal, and the directory
/// flushed. Returns the journal as read back from its final place.
pub(crate) fn install(
    image: &Path,
    prior: Option<&Journal>,
    generation: &[u8],
    steps: &mut Steps,
) -> Result<Journal> {
    steps.phase("journal");
    let tmp = journal::partial_path(image);
    let dst = journal::journal_path(image);
    let out = WriteFile::create(&tmp, Layer::Journal)?;
    let mut at = 0u64;
    if let Some(j) = prior {
        let old = WriteFile::open_read(&j.path, Layer::Journal)?;
        let mut buf = vec![0u8; sync::WRITE_PIECE];
        while at < j.len {
            let n = (j.len - at).min(buf.len() as u64) as usize;
            if old.read_some(at, &mut buf[..n])? != n {
                return Err(old
                    .ctx
                    .corrupt(at, "the journal shrank while it was copied"));
            }
            out.write(steps, at, &buf[..n])?;
            at += n as u64;
        }
    }
    out.write(steps, at, generation)?;
    out.sync(steps)?;
    drop(out);
    let ctx = journal::ctx(image);
    sync::rename(steps, &tmp, &dst, &ctx)?;
    sync::sync_dir(steps, &dst, &ctx)?;
    match journal::read(image)? {
        Some(j)
            if j.generations
                .last()
                .is_some_and(|g| g.state == State::Pending) =>
        {
            Ok(j)
        }
        _ => Err(ctx.corrupt(0, "the journal just written does not read back")),
    }
}

/// Marks the last generation of `j` complete.
pub(crate) fn mark_committed(j: &Journal, steps: &mut Steps) -> Result<()> {
    match j.generations.last() {
        Some(g) => append_marker(&j.path, g, false, steps),
        None => Ok(()),
    }
}
