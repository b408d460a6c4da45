//! Durable host-file operations for commits: positional writes, resizes, flushes, renames
//! and directory flushes, each reported to an observer as a numbered [`Step`] before it is
//! taken.
//!
//! The steps are what a progress display counts, and what the crash tests stop at: a
//! process killed at step N has done steps 0 to N-1 and nothing of step N. Writes are cut
//! into pieces of at most [`WRITE_PIECE`] bytes, one step each, so that a large write has
//! points inside it too.

use rehost_core::error::{Ctx, Layer, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Largest write issued as one step.
pub const WRITE_PIECE: usize = 1 << 20;

/// One action of a commit, undo or rollback, reported before it is taken.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Steps taken before this one in the same operation.
    pub number: u64,
    /// The part of the operation it belongs to (`"journal"`, a phase of the plan such as
    /// `"data"`, `"log"` or `"header"`, `"rollback"`, `"undo"`).
    pub phase: &'static str,
    /// What is about to happen (`"image write"`, `"flush"`, `"rename"`, ...).
    pub action: &'static str,
    /// The file (or directory) it happens to.
    pub path: &'a Path,
}

/// A function told of every step before it is taken.
pub type Observer<'a> = &'a (dyn Fn(&Step) + Sync);

/// The step counter of one operation.
pub(crate) struct Steps<'a> {
    next: u64,
    phase: &'static str,
    observer: Option<Observer<'a>>,
}

impl<'a> Steps<'a> {
    /// A counter at zero telling `observer`, if any.
    pub fn new(observer: Option<Observer<'a>>) -> Self {
        Steps {
            next: 0,
            phase: "",
            observer,
        }
    }

    /// Names the part of the operation the next steps belong to.
    pub fn phase(&mut self, phase: &'static str) {
        self.phase = phase;
    }

    /// Steps taken so far.
    pub fn taken(&self) -> u64 {
        self.next
    }

    fn take(&mut self, action: &'static str, path: &Path) {
        if let Some(f) = self.observer {
            f(&Step {
                number: self.next,
                phase: self.phase,
                action,
                path,
            });
        }
        self.next += 1;
    }
}

/// A host file opened for writing, with the name its errors carry.
pub(crate) struct WriteFile<'p> {
    pub file: File,
    pub path: &'p Path,
    pub ctx: Ctx,
}

impl<'p> WriteFile<'p> {
    /// Opens an existing file for reading and writing.
    pub fn open(path: &'p Path, layer: Layer) -> Result<Self> {
        let ctx = Ctx::new(path.display().to_string(), layer);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| ctx.io(0, e))?;
        Ok(WriteFile { file, path, ctx })
    }

    /// Opens an existing file for reading only.
    pub fn open_read(path: &'p Path, layer: Layer) -> Result<Self> {
        let ctx = Ctx::new(path.display().to_string(), layer);
        let file = File::open(path).map_err(|e| ctx.io(0, e))?;
        Ok(WriteFile { file, path, ctx })
    }

    /// Opens `path` for reading and writing, creating it when missing (never truncating).
    pub fn open_or_create(path: &'p Path, layer: Layer) -> Result<Self> {
        let ctx = Ctx::new(path.display().to_string(), layer);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| ctx.io(0, e))?;
        Ok(WriteFile { file, path, ctx })
    }

    /// Creates `path` (truncating a file already there) for reading and writing.
    pub fn create(path: &'p Path, layer: Layer) -> Result<Self> {
        let ctx = Ctx::new(path.display().to_string(), layer);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| ctx.io(0, e))?;
        Ok(WriteFile { file, path, ctx })
    }

    /// The file's length now.
    pub fn len(&self) -> Result<u64> {
        let meta = self.file.metadata().map_err(|e| self.ctx.io(0, e))?;
        if meta.is_file() {
            return Ok(meta.len());
        }
        // A block device: its metadata says 0.
        rustix::fs::seek(&self.file, rustix::fs::SeekFrom::End(0))
            .map_err(|e| self.ctx.io(0, e.into()))
    }

    /// Reads up to `buf.len()` bytes at `offset`; bytes past the end of the file are left
    /// as they are. Returns how many were read.
    pub fn read_some(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.ctx.io(offset + done as u64, e)),
            }
        }
        Ok(done)
    }

    /// Writes all of `data` at `offset`, one step per piece. Pieces end on 512-byte
    /// boundaries of the file, so that a process stopped between two of them has written
    /// every sector wholly or not at all (as the journal's checks require).
    pub fn write(&self, steps: &mut Steps, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let stop = ((at + WRITE_PIECE as u64) / 512 * 512).min(end);
            let piece = &data[(at - offset) as usize..(stop - offset) as usize];
            steps.take(self.write_action(), self.path);
            self.file
                .write_all_at(piece, at)
                .map_err(|e| self.ctx.io(at, e))?;
            at = stop;
        }
        Ok(())
    }

    /// Sets the file's length.
    pub fn set_len(&self, steps: &mut Steps, len: u64) -> Result<()> {
        steps.take("resize", self.path);
        self.file.set_len(len).map_err(|e| self.ctx.io(len, e))
    }

    /// Flushes data and metadata to stable storage.
    pub fn sync(&self, steps: &mut Steps) -> Result<()> {
        steps.take("flush", self.path);
        self.file.sync_all().map_err(|e| self.ctx.io(0, e))
    }

    fn write_action(&self) -> &'static str {
        match self.ctx.layer {
            Layer::Journal => "journal write",
            _ => "image write",
        }
    }
}

/// Renames `from` to `to`, replacing `to`.
pub(crate) fn rename(steps: &mut Steps, from: &Path, to: &Path, ctx: &Ctx) -> Result<()> {
    steps.take("rename", to);
    std::fs::rename(from, to).map_err(|e| ctx.io(0, e))
}

/// Renames `from` to `to`, failing if `to` exists (checked by the kernel where the file
/// system can, else just before the rename).
pub(crate) fn rename_new(steps: &mut Steps, from: &Path, to: &Path, ctx: &Ctx) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    steps.take("rename", to);
    let exists =
        || ctx.invalid("the output appeared while it was written; rehost never writes over a file");
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(exists()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(exists());
            }
            std::fs::rename(from, to).map_err(|e| ctx.io(0, e))
        }
        Err(e) => Err(ctx.io(0, e.into())),
    }
}

/// Removes a file.
pub(crate) fn remove(steps: &mut Steps, path: &Path, ctx: &Ctx) -> Result<()> {
    steps.take("remove", path);
    std::fs::remove_file(path).map_err(|e| ctx.io(0, e))
}

/// Flushes the directory holding `path`, so that a rename or removal in it is durable.
pub(crate) fn sync_dir(steps: &mut Steps, path: &Path, ctx: &Ctx) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    steps.take("directory flush", dir);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ctx.io(0, e))
}
