//! An image's NTFS and FAT volumes opened for writing: the disk opened for a commit (in place
//! behind the undo journal, or into a new image) or, for a dry run, read-only; the volume's
//! window over the staging overlay; the NTFS writer, or the FAT writer, on it. Operations stage their writes;
//! [`Staged::finish`] commits them, or for a dry run only counts them.

use super::fat::write::FatWriter;
use super::ntfs::write::{WriteOptions, Writer};
use rehost_core::error::{Ctx, Layer, Result};
use rehost_disk::{
    self as disk, CommitOptions, CommitReport, Overlay, WindowMut, WriteOptions as DiskOptions,
};
use rehost_disk::{ReadAt, WriteAt};
use rehost_volume::{self as volume, Content};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// An image open for staged writes into its NTFS and FAT volumes.
pub struct Staged {
    session: Option<disk::WriteSession>,
    info: disk::DiskInfo,
    stats: Arc<disk::IoStats>,
    overlay: Arc<Overlay>,
    layout: volume::Layout,
    ctx: Ctx,
    mode: Mode,
}

/// What finishing did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Staged extents (on the virtual disk) and their bytes.
    pub staged_extents: usize,
    /// Bytes staged.
    pub staged_bytes: u64,
    /// The commit, unless this was a dry run.
    pub commit: Option<CommitReport>,
    /// An interrupted commit or undo the open rolled back or finished first.
    pub recovered: Option<String>,
}

/// Opens the image at `image` for writing in `mode` and reads its partition table.
pub fn open(image: &Path, mode: Mode) -> Result<Staged> {
    let ctx = Ctx::new(image.display().to_string(), Layer::Volume);
    let (session, overlay, info, stats) = match &mode {
        Mode::DryRun => {
            let d = disk::open(image, &disk::OpenOptions::session())?;
            let ov = Arc::new(Overlay::new(d.reader(), ctx.clone()));
            (None, ov, d.info().clone(), d.stats().clone())
        }
        Mode::InPlace | Mode::Output(_) => {
            let mut o = if mode == Mode::InPlace {
                DiskOptions::in_place()
            } else {
                DiskOptions::new_image()
            };
            o.open = disk::OpenOptions::session();
            let s = disk::open_for_write(image, &o)?;
            let ov = s.overlay();
            let info = s.info().clone();
            let stats = s.stats().clone();
            (Some(s), ov, info, stats)
        }
    };
    let reader: Arc<dyn ReadAt> = overlay.clone();
    let layout = volume::scan(reader, info.logical_sector_size, &ctx)?;
    Ok(Staged {
        session,
        info,
        stats,
        overlay,
        layout,
        ctx,
        mode,
    })
}

impl Staged {
    /// The volume numbered `index` and a window of the staging overlay over it.
    fn window(&self, index: u32, layer: Layer) -> Result<(&volume::VolumeInfo, WindowMut)> {
        let ctx = &self.ctx;
        let v = self
            .layout
            .volumes
            .iter()
            .find(|v| v.index == index)
            .ok_or_else(|| ctx.invalid(format!("no volume {index}")))?;
        let inner: Arc<dyn WriteAt> = self.overlay.clone();
        let win = WindowMut::new(inner, v.offset, v.size, ctx.with_layer(layer))?;
        Ok((v, win))
    }

    /// The NTFS writer of volume `index` (as `rehost volumes` numbers it); its reader sees
    /// every write staged so far, by any writer of this image.
    pub fn writer(&self, index: u32, opts: WriteOptions) -> Result<Writer> {
        let (v, win) = self.window(index, Layer::Ntfs)?;
        if v.content != Content::Ntfs {
            return Err(self.ctx.unsupported(
                v.offset,
                format!("volume {index} is not NTFS: rehost writes into NTFS volumes only"),
            ));
        }
        Writer::open(Arc::new(win), self.ctx.with_layer(Layer::Ntfs), opts)
    }

    /// The writer of volume `index` for the file system it holds: NTFS (with `opts`) or
    /// FAT (an EFI system partition).
    pub fn volume_writer(&self, index: u32, opts: WriteOptions) -> Result<VolumeWriter> {
        let fat = self.layout.volumes.iter().any(|v| {
            v.index == index
                && matches!(v.content, Content::Fat12 | Content::Fat16 | Content::Fat32)
        });
        if !fat {
            return Ok(VolumeWriter::Ntfs(Box::new(self.writer(index, opts)?)));
        }
        let (_, win) = self.window(index, Layer::Fat)?;
        Ok(VolumeWriter::Fat(FatWriter::open(
            Arc::new(win),
            self.ctx.clone(),
        )?))
    }

    /// The image as staged so far, as a disk the reading layers open: every read sees the
    /// writes staged by any writer.
    pub fn disk(&self) -> disk::Disk {
        let reader: Arc<dyn ReadAt> = self.overlay.clone();
        disk::Disk::new(self.info.clone(), reader, self.stats.clone())
    }

    /// Stages `bytes` at `offset` of the disk, inside one of its volumes but outside any
    /// file system's writer (a boot sector field). Bytes outside every volume (the
    /// partition table) are refused: the layout scanned at open would no longer hold.
    pub fn write_raw(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let end = offset.checked_add(bytes.len() as u64);
        let inside = self.layout.volumes.iter().any(|v| {
            offset >= v.offset && end.is_some_and(|e| e <= v.offset.saturating_add(v.size))
        });
        if !inside {
            return Err(self.ctx.unsupported(
                offset,
                format!(
                    "{} bytes at offset {offset} lie outside every volume: rehost does not \
                     rewrite partition tables",
                    bytes.len()
                ),
            ));
        }
        self.overlay.write_at(offset, bytes)
    }

    /// The partition layout, as scanned when the image was opened: no write of the file
    /// systems' writers can change it, and raw writes ([`Staged::write_raw`]) into it
    /// are refused, so the layers above read it from here instead of scanning again.
    pub fn layout(&self) -> &volume::Layout {
        &self.layout
    }

    /// The bytes read from the image file so far.
    pub fn bytes_read(&self) -> u64 {
        self.stats.bytes()
    }

    /// The mode.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Commits what was staged (nothing for a dry run, which only counts it).
    pub fn finish(self) -> Result<Outcome> {
        self.end(true)
    }

    /// Drops what was staged: nothing is written (an interrupted commit the open rolled
    /// back stays rolled back).
    pub fn discard(self) -> Outcome {
        let extents = self.overlay.extents();
        Outcome {
            staged_extents: extents.len(),
            staged_bytes: extents.iter().map(|(_, b)| b.len() as u64).sum(),
            commit: None,
            recovered: self.recovered(),
        }
    }

    fn recovered(&self) -> Option<String> {
        self.session.as_ref().and_then(|s| s.recovery()).map(|r| {
            if r.finished_undo {
                format!(
                    "an interrupted undo (commit {}) was finished first",
                    r.generation
                )
            } else {
                format!(
                    "an interrupted commit ({}) was rolled back first, {} bytes restored",
                    r.generation, r.bytes_restored
                )
            }
        })
    }

    fn end(self, commit: bool) -> Result<Outcome> {
        let extents = self.overlay.extents();
        let staged_bytes = extents.iter().map(|(_, b)| b.len() as u64).sum();
        let recovered = self.recovered();
        let opts = CommitOptions::default();
        let commit = match (self.session, &self.mode) {
            _ if !commit => None,
            (None, _) | (_, Mode::DryRun) => None,
            (Some(_), Mode::InPlace) if extents.is_empty() => None,
            (Some(s), Mode::InPlace) => Some(s.commit(&opts)?),
            (Some(s), Mode::Output(p)) => Some(s.commit_to(p, &opts)?),
        };
        Ok(Outcome {
            staged_extents: extents.len(),
            staged_bytes,
            commit,
            recovered,
        })
    }
}
