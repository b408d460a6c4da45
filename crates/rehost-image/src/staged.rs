//! Staged writes: where they go ([`Mode`]), the writer of a volume for the file system it
//! holds ([`VolumeWriter`]), what finishing did ([`Outcome`]). The session that stages
//! them is the [`Image`] opened with [`Image::open_staged`]; [`Image::finish`] commits
//! them, or for a dry run only counts them.

use super::fat::write::FatWriter;
use super::ntfs::write::{WriteOptions, Writer};
use super::Image;
use rehost_core::error::Result;
use rehost_disk::CommitReport;
use serde::Serialize;
use std::path::PathBuf;

/// The NTFS writer's options for writes into images: `$LogFile` is left as it is. The
/// writer refuses a volume whose log Windows would replay, so the log it writes into is
/// clean, and Windows starts from a clean log as it finds it (what ntfs-3g does on a
/// read-write mount of a clean volume); emptying it would stage and journal the whole log,
/// typically 64 MiB, for nothing. `reset_logfile` asks for the emptying anyway.
pub fn image_options(mark_dirty: bool, reset_logfile: bool) -> WriteOptions {
    WriteOptions {
        mark_dirty,
        reset_logfile,
        ..WriteOptions::default()
    }
}

/// Where staged writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Nowhere: the image is opened read-only and the writes are only counted.
    DryRun,
    /// Into the image, behind its undo journal.
    InPlace,
    /// Into a new image of the same format.
    Output(PathBuf),
}

/// The writer of one volume of a staged image, for the file system it holds.
pub enum VolumeWriter {
    /// An NTFS volume.
    Ntfs(Box<Writer>),
    /// A FAT volume (an EFI system partition).
    Fat(FatWriter),
}

impl VolumeWriter {
    /// Creates `path` or replaces its content; the directories on its path are created
    /// where missing.
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<()> {
        match self {
            VolumeWriter::Ntfs(w) => {
                let comps = rehost_core::entry::components(path);
                if let Some((_, dirs)) = comps.split_last() {
                    w.mkdir_all(&dirs.join("/"))?;
                }
                w.put(path, data).map(|_| ())
            }
            VolumeWriter::Fat(w) => w.put(path, data),
        }
    }

    /// Replaces the content of the existing file `path`.
    pub fn replace(&mut self, path: &str, data: &[u8]) -> Result<()> {
        match self {
            VolumeWriter::Ntfs(w) => w.replace(path, data),
            VolumeWriter::Fat(w) => w.replace(path, data),
        }
    }

    /// Renames or moves the file `from` to `to`.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        match self {
            VolumeWriter::Ntfs(w) => w.rename(from, to),
            VolumeWriter::Fat(w) => w.rename(from, to),
        }
    }
}

/// The writers of the volumes of one image written so far, one per volume (NTFS or FAT),
/// opened when first needed and kept: each sees what the others staged.
pub struct Writers<'a> {
    image: &'a Image,
    opts: WriteOptions,
    open: Vec<(u32, VolumeWriter)>,
}

impl<'a> Writers<'a> {
    /// No writer open yet; NTFS writers will be opened with `opts`.
    pub fn new(image: &'a Image, opts: WriteOptions) -> Self {
        Writers {
            image,
            opts,
            open: Vec::new(),
        }
    }

    /// The writer of volume `volume`, opened on first use.
    pub fn get(&mut self, volume: u32) -> Result<&mut VolumeWriter> {
        let at = match self.open.iter().position(|(v, _)| *v == volume) {
            Some(at) => at,
            None => {
                let w = self.image.volume_writer(volume, self.opts.clone())?;
                self.open.push((volume, w));
                self.open.len() - 1
            }
        };
        Ok(&mut self.open[at].1)
    }
}

/// What finishing did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Staged extents (on the virtual disk) and their bytes.
    pub staged_extents: usize,
    /// Bytes staged.
    pub staged_bytes: u64,
    /// The disk's new size when it was grown ([`Image::grow`]): a dry run says so here.
    pub grown_to: Option<u64>,
    /// The commit, unless this was a dry run.
    pub commit: Option<CommitReport>,
    /// An interrupted commit or undo the open rolled back or finished first.
    pub recovered: Option<String>,
    /// The volumes written that have Volume Shadow Copy snapshots: after a commit in place
    /// (allowed by [`Image::allow_shadow_copies`]) their snapshots are stale; after a commit
    /// into a new image, the new image's are (the source's stay whole); in a dry run, a
    /// commit in place would be refused unless allowed.
    pub shadow_copies: Vec<ShadowCopiesWritten>,
    /// In a dry run, why the container would refuse a commit in place of what was staged
    /// (a streamOptimized VMDK, compressed qcow2 clusters rewritten, an E01 file), asked of
    /// it without writing ([`Image::in_place_refusal`]); `None` otherwise.
    pub in_place_refusal: Option<String>,
    /// In a dry run, what a commit in place would repair in the container besides the
    /// write (a dirty qcow2's refcounts rebuilt), asked of it the same way.
    pub in_place_repairs: Vec<String>,
}

/// A volume written that has shadow copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowCopiesWritten {
    /// The volume, numbered as the image's layout numbers it.
    pub volume: u32,
    /// The shadow copies its catalog lists.
    pub count: usize,
    /// Its catalog is damaged: there may be more.
    pub damaged: bool,
}
