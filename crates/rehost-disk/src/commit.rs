//! Writing into images: open for writing, stage, commit; and undo.
//!
//! ```no_run
//! use rehost_disk::{self as disk, CommitOptions, WriteAt, WriteOptions};
//! let session = disk::open_for_write("server.vhdx".as_ref(), &WriteOptions::in_place())?;
//! session.overlay().write_at(0x10_0000, b"new bytes")?; // staged; the image is untouched
//! for line in session.plan(&CommitOptions::default())?.notes { println!("{line}"); }
//! let report = session.commit(&CommitOptions::default())?; // journal, writes, verify
//! println!("{} bytes written; undo with `rehost undo`", report.bytes_written);
//! # Ok::<(), rehost_core::Error>(())
//! ```
//!
//! [`open_for_write`] takes the image's lock ([`ImageLock`]), rolls back a commit that was
//! interrupted (from its journal, see `journal`), and opens the container with a
//! [`BlockCache`] and a staging [`Overlay`] above it. The layers above write into the
//! overlay (through [`super::WindowMut`] for a volume) and read their own writes back.
//!
//! [`WriteSession::commit`] writes in place: the container plans the host writes
//! (`target`), the undo journal of every byte they overwrite is put in place and flushed,
//! the plan is carried out phase by phase with a flush after each, the journal is marked
//! complete, and the staged extents are read back through a fresh, uncached reader of the
//! image. A commit that does not read back as staged is undone, and said so. A VMDK of
//! several files (a descriptor and its extent files) is planned file by file and each
//! file journaled beside itself, the journals tied to the descriptor's (see `several`).
//!
//! [`WriteSession::commit_to`] writes a new image of the same format instead: the source is
//! copied (holes kept: only its data runs are copied) to `NEW.rehost-partial`, the plan is
//! carried out on the copy, the copy is read back, flushed and renamed to `NEW`. The source
//! is never written. A differencing child keeps its parent link: the new child must sit
//! where its locators find the parent (the same directory as the source, for relative
//! locators).
//!
//! [`undo()`] rolls back every commit an image's journal records, newest first (`undo`
//! holds the steps, `several` the images of several files).

use super::carry_out::{apply, copy_sparse, report_of, verify, CommitOptions, CommitReport};
use super::ids::Ids;
use super::journal::{self, State};
use super::lock::ImageLock;
use super::plan::Plan;
use super::sync::{self, Observer, Steps, WriteFile};
use super::target::Target;
use super::undo::{self, Recovery, UndoReport};
use super::{detect, DiskInfo, IoStats, OpenOptions, Overlay, ReadAt};
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to open an image for writing.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// How the container is read.
    pub open: OpenOptions,
    /// Commit into the image itself (exclusive lock), or into a new image (shared lock on
    /// the source, which is then never written).
    pub in_place: bool,
}

impl WriteOptions {
    /// For a commit into the image itself.
    pub fn in_place() -> Self {
        WriteOptions {
            open: OpenOptions::default(),
            in_place: true,
        }
    }

    /// For a commit into a new image.
    pub fn new_image() -> Self {
        WriteOptions {
            in_place: false,
            ..Self::in_place()
        }
    }
}

/// An image opened for writing: holds its lock until dropped.
pub struct WriteSession {
    path: PathBuf,
    _lock: ImageLock,
    target: Arc<Target>,
    /// The other files a commit in place may write (a VMDK's extent files), journaled
    /// beside themselves.
    members: Vec<PathBuf>,
    overlay: Arc<Overlay>,
    recovery: Option<Recovery>,
    in_place: bool,
    stats: Arc<IoStats>,
}

/// Opens the image at `path` for writing: takes its lock, rolls back an interrupted commit
/// (or finishes an interrupted undo), and opens the container under a staging overlay.
pub fn open_for_write(path: &Path, opts: &WriteOptions) -> Result<WriteSession> {
    // A monolithicFlat VMDK is written through its flat extent (see `write_path`).
    let written = detect::write_path(path)?;
    let path = written.as_path();
    let ctx = Ctx::new(path.display().to_string(), Layer::File);
    let meta = std::fs::metadata(path).map_err(|e| ctx.error(Location::None, e.into()))?;
    // Only a write in place looks for a descriptor naming this file as its extent.
    let lead = if opts.in_place {
        detect::lead_of(path)?
    } else {
        None
    };
    if let Some(lead) = lead {
        let instead = format!(
            "write through the descriptor, {}, or write a new image with --output",
            lead.display()
        );
        return Err(ctx.refused("", detect::extent_alone(path, &lead, &instead)));
    }
    if opts.in_place && !meta.is_file() {
        return Err(ctx.invalid(
            "only regular files are written in place (the undo journal goes beside the image); \
             write a new image with --output instead",
        ));
    }
    // A commit in place holds the image alone. A new image only reads this one: a shared
    // lock, so that any number of them are made from one source at once (an exclusive lock
    // taken for a moment, even only to look for an interrupted commit, made a second one
    // fail); it turns exclusive only to roll back an interrupted commit, when nobody else
    // has the image open.
    let mut lock = if opts.in_place {
        ImageLock::exclusive(path)?
    } else {
        ImageLock::shared(path)?
    };
    // A VMDK of several files journals each file beside it, and recovers them together.
    let members = detect::journal_members(path)?;
    let recovery = if lock.is_exclusive() {
        crate::several::recover_set(path, &members, &mut Steps::new(None))?
    } else if crate::several::interrupted_set(path, &members)? {
        if lock.set(true).is_err() {
            return Err(ctx.invalid(
                "a commit into this image was interrupted and must be rolled back, but \
                 another rehost process has the image open: retry when it is done",
            ));
        }
        let r = crate::several::recover_set(path, &members, &mut Steps::new(None))?;
        lock.set(false)?;
        r
    } else {
        None
    };
    let stats = IoStats::new();
    let target = Arc::new(detect::open_target(path, &opts.open, stats.clone())?);
    if opts.in_place {
        target.refuse_write()?;
    }
    let base = detect::cached(target.clone(), &opts.open);
    Ok(WriteSession {
        path: path.to_path_buf(),
        _lock: lock,
        overlay: Arc::new(Overlay::new(base, ctx.with_layer(Layer::Raw))),
        target,
        members,
        recovery,
        in_place: opts.in_place,
        stats,
    })
}

impl WriteSession {
    /// The staging overlay: write here, read here (the layers above see their own writes).
    pub fn overlay(&self) -> Arc<Overlay> {
        self.overlay.clone()
    }

    /// The bytes read from the image file so far.
    pub fn stats(&self) -> &Arc<IoStats> {
        &self.stats
    }

    /// What the container says about itself.
    pub fn info(&self) -> &DiskInfo {
        use super::Container;
        self.target.info()
    }

    /// The interrupted commit (or undo) this open rolled back (or finished), if any.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// The host writes a commit would make now (for a dry run).
    pub fn plan(&self, opts: &CommitOptions) -> Result<Plan> {
        self.plan_of(&self.overlay.extents(), opts)
    }

    fn plan_of(&self, extents: &[(u64, Vec<u8>)], opts: &CommitOptions) -> Result<Plan> {
        self.target.plan(
            &*self.overlay,
            extents,
            &mut Ids::new(opts.seed),
            self.overlay.size(),
        )
    }

    /// Grows the virtual disk to `new_size` bytes, staged: the overlay reads zeros past the
    /// old end until written, and the commit makes the container that size (a raw file's
    /// length; a fixed VHD's footer moved; a dynamic VHD's footers, header and BAT), behind
    /// the same journal, so that undo restores the old size and bytes. Refused where the
    /// container cannot grow, with the reason.
    pub fn grow(&self, new_size: u64) -> Result<()> {
        self.target.refuse_growth(new_size)?;
        self.overlay.grow_to(new_size)
    }

    fn report(&self, plan: &Plan, path: &Path, extents: &[(u64, Vec<u8>)]) -> CommitReport {
        report_of(plan, path, extents)
    }

    /// Commits in place, behind the undo journal (see the module documentation).
    pub fn commit(self, opts: &CommitOptions) -> Result<CommitReport> {
        let ctx = Ctx::new(self.path.display().to_string(), Layer::File);
        if !self.in_place {
            return Err(ctx.invalid("the image was opened to write a new image, not in place"));
        }
        let extents = self.overlay.extents();
        let mut files = self.target.plan_files(
            &self.path,
            &*self.overlay,
            &extents,
            &mut Ids::new(opts.seed),
            self.overlay.size(),
        )?;
        if files.len() > 1 {
            return crate::several::commit(&self.path, &self.members, files, &extents, opts);
        }
        let Some((_, plan)) = files.pop() else {
            return Err(ctx.invalid("the container planned no file"));
        };
        let mut report = self.report(&plan, &self.path, &extents);
        if plan.is_empty() {
            return Ok(report);
        }
        let mut steps = Steps::new(opts.observer);
        let img = WriteFile::open(&self.path, Layer::File)?;
        if img.len()? != plan.file_len {
            return Err(ctx.invalid("the image changed size since it was opened"));
        }
        let prior = journal::read(&self.path)?;
        let number = prior
            .as_ref()
            .and_then(|j| j.generations.last())
            .map_or(0, |g| g.number + 1);
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let generation = journal::encode(&plan, &img, number, &name)?;
        let j = undo::install(&self.path, prior.as_ref(), &generation, &mut steps)?;
        if let Err(e) = apply(&plan, &img, &mut steps) {
            // A write failed (a full disk, an I/O error): roll back at once if we can.
            drop(img);
            let how = match undo::recover(&self.path, &mut steps) {
                Ok(_) => "the image was rolled back".to_string(),
                Err(r) => format!(
                    "rolling back failed too ({r}); it will be rolled back when the image is \
                     next opened for writing"
                ),
            };
            return Err(ctx.error(
                e.location.clone(),
                ErrorKind::Io(std::io::Error::other(format!("{e}; {how}"))),
            ));
        }
        steps.phase("journal");
        undo::mark_committed(&j, &mut steps)?;
        drop(img);
        if let Err(e) = verify(&self.path, &extents, !plan.repairs.is_empty()) {
            steps.phase("undo");
            undo::undo_last(&self.path, &mut steps)?;
            return Err(ctx.error(
                Location::None,
                ErrorKind::Corrupt(format!("{e}; the commit was undone")),
            ));
        }
        report.journal = Some(j.path);
        report.journal_bytes = generation.len() as u64 + 32;
        report.steps = steps.taken();
        Ok(report)
    }

    /// Commits into a new image at `new`, which must not exist (see the module
    /// documentation).
    pub fn commit_to(self, new: &Path, opts: &CommitOptions) -> Result<CommitReport> {
        let ctx = Ctx::new(new.display().to_string(), Layer::File);
        if std::fs::symlink_metadata(new).is_ok() {
            return Err(ctx.invalid(
                "the output exists; rehost never writes over it: remove it or choose another name",
            ));
        }
        // Named here: the first file made in it is the temporary one, which the error of its
        // creation would name instead.
        if let Some(dir) = new
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Err(ctx.invalid(format!(
                "there is no directory {} to write the new image in",
                dir.display()
            )));
        }
        if !self.members.is_empty() {
            return Err(ctx.invalid(
                "a VMDK of several files is not copied file by file: it is written into a new                  image by conversion (`convert_to`)",
            ));
        }
        let mut tmp = new.as_os_str().to_os_string();
        tmp.push(".rehost-partial");
        let tmp = PathBuf::from(tmp);
        let extents = self.overlay.extents();
        let plan = self.plan_of(&extents, opts)?;
        let mut report = self.report(&plan, new, &extents);
        let mut steps = Steps::new(opts.observer);
        // The partial output is locked while it is written: a second writer of the same
        // output is refused and does not remove it.
        let out = WriteFile::open_or_create(&tmp, Layer::File)?;
        let _lock = ImageLock::exclusive(&tmp)?;
        let result = (|| {
            steps.phase("copy");
            out.set_len(&mut steps, 0)?;
            copy_sparse(&self.path, &out, &mut steps)?;
            if out.len()? != plan.file_len {
                return Err(ctx.invalid("the source changed size while it was copied"));
            }
            apply(&plan, &out, &mut steps)?;
            verify(&tmp, &extents, !plan.repairs.is_empty())?;
            steps.phase("rename");
            sync::rename_new(&mut steps, &tmp, new, &ctx)?;
            sync::sync_dir(&mut steps, new, &ctx)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        report.steps = steps.taken();
        Ok(report)
    }
}

/// Refuses growing the image at `path` to `new_size` bytes where its container cannot
/// grow (what [`WriteSession::grow`] refuses), for a dry run that has no write session.
pub fn refuse_growth(path: &Path, new_size: u64) -> Result<()> {
    detect::open_target(path, &OpenOptions::default(), IoStats::new())?.refuse_growth(new_size)
}

/// The adapter a new VMDK made from the image at `path` names (`ddb.adapterType`): `asked`,
/// else the source's when the source is a VMDK whose descriptor names one of
/// [`crate::VmdkAdapter`]'s, else IDE; with a note when the source names an adapter that
/// is not carried.
pub fn vmdk_adapter_for(
    path: &Path,
    asked: Option<crate::VmdkAdapter>,
) -> Result<(crate::VmdkAdapter, Option<String>)> {
    if let Some(a) = asked {
        return Ok((a, None));
    }
    let target = detect::open_target(path, &OpenOptions::default(), IoStats::new())?;
    Ok(carried_adapter(&target, None))
}

/// [`vmdk_adapter_for`] of an opened source.
fn carried_adapter(
    target: &Target,
    asked: Option<crate::VmdkAdapter>,
) -> (crate::VmdkAdapter, Option<String>) {
    if let Some(a) = asked {
        return (a, None);
    }
    let Target::Vmdk(v) = target else {
        return (crate::VmdkAdapter::default(), None);
    };
    match v.descriptor().adapter_type.as_deref() {
        None => (crate::VmdkAdapter::default(), None),
        Some(name) => match crate::VmdkAdapter::from_name(name) {
            Some(a) => (a, None),
            None => (
                crate::VmdkAdapter::default(),
                Some(format!(
                    "the source's adapter type {name:?} is none of {}: the new VMDK names                      ide (--vmdk-adapter chooses another)",
                    crate::VmdkAdapter::NAMES
                )),
            ),
        },
    }
}

/// Why a commit in place of `extents` (sorted, disjoint virtual-disk extents staged over
/// the image at `path`, read as staged through `view`, a disk of `new_size` bytes) would be
/// refused, asked of the container without writing anything: for a dry run, which opens
/// the image read-only and so never meets the refusal a commit in place meets (a
/// streamOptimized VMDK, a qcow2 image whose compressed clusters the write would rewrite or
/// that QEMU left dirty with persistent bitmaps, an E01 evidence file, a disk that cannot
/// grow). `None` when the container would take the write; the reason as said to the user
/// otherwise.
pub fn in_place_refusal(
    path: &Path,
    view: &dyn ReadAt,
    extents: &[(u64, Vec<u8>)],
    new_size: u64,
) -> Result<Option<String>> {
    Ok(in_place_check(path, view, extents, new_size)?.refusal)
}

/// What a commit in place would meet, asked of the container without writing (see
/// [`in_place_refusal`]).
#[derive(Debug, Clone, Default)]
pub struct InPlace {
    /// Why it would be refused, as said to the user.
    pub refusal: Option<String>,
    /// What it would repair in the container besides storing the write (a dirty qcow2's
    /// refcounts rebuilt), as said to the user.
    pub repairs: Vec<String>,
}

/// [`in_place_refusal`], with what the commit would repair when it is not refused.
pub fn in_place_check(
    path: &Path,
    view: &dyn ReadAt,
    extents: &[(u64, Vec<u8>)],
    new_size: u64,
) -> Result<InPlace> {
    let written = detect::write_path(path)?;
    if let Some(lead) = detect::lead_of(&written)? {
        let instead = format!(
            "write through the descriptor, {}, or write a new image with --output",
            lead.display()
        );
        return Ok(InPlace {
            refusal: Some(detect::extent_alone(&written, &lead, &instead)),
            repairs: Vec::new(),
        });
    }
    let target = detect::open_target(&written, &OpenOptions::default(), IoStats::new())?;
    // A seed: the plan's new identifiers are never used.
    let planned = target.refuse_write().and_then(|()| {
        target.plan_files(&written, view, extents, &mut Ids::new(Some(0)), new_size)
    });
    match planned {
        Ok(plans) => Ok(InPlace {
            refusal: None,
            repairs: plans.into_iter().flat_map(|(_, p)| p.repairs).collect(),
        }),
        Err(e) => match e.kind {
            ErrorKind::Refused(why) => Ok(InPlace {
                refusal: Some(why),
                repairs: Vec::new(),
            }),
            _ => Err(e),
        },
    }
}

impl WriteSession {
    /// Writes the disk as staged into a new image of another format at `new` (which must
    /// not exist): the source as it is with the staged extents over it, copied block by
    /// block (see [`mod@crate::create`]), read back and compared. The source is not written.
    pub fn convert_to(
        self,
        new: &Path,
        format: crate::NewFormat,
        opts: &CommitOptions,
    ) -> Result<CommitReport> {
        let extents = self.overlay.extents();
        let len_before = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let (adapter, adapter_note) = carried_adapter(&self.target, opts.vmdk_adapter);
        let mut created = crate::create(
            self.overlay.as_ref(),
            new,
            format,
            &crate::CreateOptions {
                seed: opts.seed,
                vmdk_adapter: Some(adapter),
            },
        )?;
        if format.format() == crate::Format::Vmdk {
            created.notes.extend(adapter_note);
        }
        Ok(CommitReport {
            path: created.path,
            staged_extents: extents.len(),
            staged_bytes: extents.iter().map(|(_, b)| b.len() as u64).sum(),
            host_writes: created.blocks_written as usize,
            bytes_written: created.bytes_written,
            len_before,
            len_after: created.file_len,
            journal: None,
            journal_bytes: 0,
            steps: 0,
            notes: std::iter::once(format!(
                "written as a {format} from the {} source: {} of {} blocks hold data",
                self.info().format,
                created.blocks_written,
                created.blocks
            ))
            .chain(created.notes)
            .collect(),
        })
    }
}

/// Restores `image` as it was before the first commit its journal records: every commit is
/// undone, newest first, and the journal is removed. An interrupted commit is rolled back
/// the same way. Takes the image's exclusive lock.
pub fn undo(image: &Path, observer: Option<Observer>) -> Result<UndoReport> {
    // A monolithicFlat VMDK was written through its flat extent, and is undone there.
    let written = detect::write_path(image)?;
    let image = written.as_path();
    if let Some(lead) = detect::lead_of(image)? {
        let instead = format!(
            "undo through the descriptor: `rehost undo {}`",
            lead.display()
        );
        return Err(journal::ctx(image).refused("", detect::extent_alone(image, &lead, &instead)));
    }
    let _lock = ImageLock::exclusive(image)?;
    let mut steps = Steps::new(observer);
    undo::remove_partial(image, &mut steps)?;
    let members = detect::journal_members(image)?;
    let Some(j) = journal::read(image)? else {
        return Err(journal::ctx(image).error(
            Location::None,
            ErrorKind::NotFound(format!(
                "there is no undo journal beside {}: nothing to undo",
                image.display()
            )),
        ));
    };
    let len_before = std::fs::metadata(image)
        .map_err(|e| journal::ctx(image).io(0, e))?
        .len();
    let mut report = UndoReport {
        journal: j.path.clone(),
        generations: Vec::new(),
        bytes_restored: 0,
        len_before,
        len_after: len_before,
    };
    if !members.is_empty() {
        crate::several::undo(image, &members, &mut steps, &mut report)?;
        return Ok(report);
    }
    for g in j.generations.iter().rev() {
        if g.state == State::Committed {
            let jf = WriteFile::open_read(&j.path, Layer::Journal)?;
            let img = WriteFile::open_read(image, Layer::File)?;
            g.check(&jf, &img, true)?;
            steps.phase("undo");
            undo::append_marker(&j.path, g, true, &mut steps)?;
        }
        report.bytes_restored += undo::roll_back(image, &j, g, &mut steps)?;
        report.generations.push(g.number);
        report.len_after = g.orig_len;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_images_are_made_from_one_source_by_many_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.raw");
        std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
        // Eight writers of new images from one source, over and over: each takes the
        // source's shared lock; none may find it locked by another.
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let session = open_for_write(&path, &WriteOptions::new_image());
                        assert!(session.is_ok(), "{:?}", session.err());
                    }
                });
            }
        });
        // A commit in place still excludes them, and they it.
        let inplace = open_for_write(&path, &WriteOptions::in_place()).unwrap();
        assert!(open_for_write(&path, &WriteOptions::new_image()).is_err());
        drop(inplace);
        let reader = open_for_write(&path, &WriteOptions::new_image()).unwrap();
        assert!(open_for_write(&path, &WriteOptions::in_place()).is_err());
        drop(reader);
    }
}
