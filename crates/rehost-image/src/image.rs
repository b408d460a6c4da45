//! One opened image: the container, its partition layout (read once) and each volume's file
//! system (opened once, when first asked for), read-only or staged for writing.
//!
//! Every command goes through an [`Image`]: `inspect` and `check` open it read-only, `fix`,
//! `put`, `reg set` open it staged ([`Image::open_staged`]). A staged image reads through
//! its staging overlay, so whatever a writer staged is what every later read sees, and the
//! re-check of a fix reads the image as it will be, through the same session, without
//! opening it again. Its reads go through a cache that keeps bulk reads
//! ([`rehost_disk::OpenOptions::session`]): a hive read by the check, the editor, the
//! writer and the re-check comes from the file once.

use super::staged::{Mode, Outcome, ShadowCopiesWritten, VolumeWriter};
use super::FileSystem;
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use rehost_core::io::{ReadAt, WriteAt};
use rehost_disk::{
    self as disk, CommitOptions, Disk, DiskInfo, IoStats, Overlay, WindowMut,
    WriteOptions as DiskOptions,
};
use rehost_fat::write::FatWriter;
use rehost_ntfs::write::{WriteOptions, Writer};
use rehost_volume::{self as volume, Content, Layout, VolumeInfo};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How often a session did what costs reads: what a test or `--stats` can hold it to.
#[derive(Debug, Default)]
pub struct Counters {
    scans: AtomicUsize,
    fs_opens: AtomicUsize,
    fs_refreshes: AtomicUsize,
}

impl Counters {
    /// Partition-table scans.
    pub fn scans(&self) -> usize {
        self.scans.load(Ordering::Relaxed)
    }

    /// File systems opened (boot sector, `$MFT`, `$UpCase` read and checked).
    pub fn fs_opens(&self) -> usize {
        self.fs_opens.load(Ordering::Relaxed)
    }

    /// File systems refreshed after writes into their volume (NTFS: the `$MFT`'s own
    /// record read again, the rest kept; FAT: opened again, a boot sector's read).
    pub fn fs_refreshes(&self) -> usize {
        self.fs_refreshes.load(Ordering::Relaxed)
    }
}

/// One volume's file system as the session holds it.
#[derive(Default)]
struct Held {
    /// Opened, as of the last open or refresh.
    fs: Option<Arc<FileSystem>>,
    /// A writer was handed out for the volume since `fs` was made.
    written: bool,
}

/// Writes staged above the disk, and the session that will commit them.
struct Staging {
    overlay: Arc<Overlay>,
    session: Option<disk::WriteSession>,
    mode: Mode,
}

/// One opened image.
pub struct Image {
    ctx: Ctx,
    info: DiskInfo,
    stats: Arc<IoStats>,
    reader: Arc<dyn ReadAt>,
    staging: Option<Staging>,
    layout: Layout,
    /// The layout of a partition table the session rewrote ([`Image::adopt_layout`]):
    /// from then on the one the volumes are looked up in.
    adopted: std::sync::OnceLock<Layout>,
    held: Mutex<Vec<Held>>,
    counters: Arc<Counters>,
    /// A write in place may go into a volume that has shadow copies.
    allow_shadow_copies: bool,
    /// The format of the new image an `Output` mode writes, when it was named (else its
    /// extension says, or it is the source's).
    output_format: Option<disk::NewFormat>,
    /// The adapter a new VMDK an `Output` mode writes names, when it was named.
    vmdk_adapter: Option<disk::VmdkAdapter>,
    /// The volumes written (or, in a dry run, staged) that have shadow copies.
    shadow_copies: Mutex<Vec<ShadowCopiesWritten>>,
    /// The primary partition made active by a staged write of the MBR's status bytes
    /// ([`Image::set_active`]).
    pub(crate) active: Mutex<Option<u32>>,
}

impl Image {
    /// Opens the image at `path` read-only and reads its partition table.
    pub fn open(path: &Path) -> Result<Image> {
        let d = disk::open(path, &disk::OpenOptions::default())?;
        Self::from_disk(d, path.display().to_string())
    }

    /// The image in an opened disk (named `name` in messages), read-only.
    pub fn from_disk(d: Disk, name: String) -> Result<Image> {
        Self::assemble(name, d.info().clone(), d.stats().clone(), d.reader(), None)
    }

    /// An image in any [`ReadAt`] (a device, a buffer), read-only, named `name`.
    pub fn from_reader(reader: Arc<dyn ReadAt>, name: &str) -> Result<Image> {
        let info = DiskInfo::raw(name, reader.size());
        Self::assemble(name.to_string(), info, IoStats::new(), reader, None)
    }

    /// Opens the image at `path` for staged writes in `mode`: for a commit in place
    /// (behind the undo journal) or into a new image, or, for a dry run, read-only with
    /// the writes only counted.
    pub fn open_staged(path: &Path, mode: Mode) -> Result<Image> {
        let name = path.display().to_string();
        let ctx = Ctx::new(name.clone(), Layer::Volume);
        match &mode {
            Mode::DryRun => {
                let d = disk::open(path, &disk::OpenOptions::session())?;
                let overlay = Arc::new(Overlay::new(d.reader(), ctx));
                let staging = Staging {
                    overlay,
                    session: None,
                    mode,
                };
                Self::assemble(
                    name,
                    d.info().clone(),
                    d.stats().clone(),
                    d.reader(),
                    Some(staging),
                )
            }
            Mode::InPlace | Mode::Output(_) => {
                let mut o = if mode == Mode::InPlace {
                    DiskOptions::in_place()
                } else {
                    DiskOptions::new_image()
                };
                o.open = disk::OpenOptions::session();
                let s = disk::open_for_write(path, &o)?;
                let (info, stats, overlay) = (s.info().clone(), s.stats().clone(), s.overlay());
                let staging = Staging {
                    overlay: overlay.clone(),
                    session: Some(s),
                    mode,
                };
                Self::assemble(name, info, stats, overlay, Some(staging))
            }
        }
    }

    fn assemble(
        name: String,
        info: DiskInfo,
        stats: Arc<IoStats>,
        base: Arc<dyn ReadAt>,
        staging: Option<Staging>,
    ) -> Result<Image> {
        let ctx = Ctx::new(name, Layer::Volume);
        let reader: Arc<dyn ReadAt> = match &staging {
            Some(s) => s.overlay.clone(),
            None => base,
        };
        let counters = Arc::new(Counters::default());
        counters.scans.fetch_add(1, Ordering::Relaxed);
        let layout = volume::scan(reader.clone(), info.logical_sector_size, &ctx)?;
        let held = Mutex::new(layout.volumes.iter().map(|_| Held::default()).collect());
        Ok(Image {
            ctx,
            info,
            stats,
            reader,
            staging,
            layout,
            adopted: std::sync::OnceLock::new(),
            held,
            counters,
            allow_shadow_copies: false,
            output_format: None,
            vmdk_adapter: None,
            shadow_copies: Mutex::new(Vec::new()),
            active: Mutex::new(None),
        })
    }

    /// Lets a write in place go into a volume that has Volume Shadow Copy snapshots, which
    /// the session otherwise refuses ([`ErrorKind::ShadowCopies`]): an offline write is
    /// not copied into the snapshots' stores first, so each of them then reads the new
    /// bytes as its own. What was written into such volumes is said in
    /// [`Outcome::shadow_copies`].
    pub fn allow_shadow_copies(mut self, allow: bool) -> Image {
        self.allow_shadow_copies = allow;
        self
    }

    /// Writes the new image of an `Output` mode in `format` (a conversion, whatever the
    /// output's extension and the source's format); `None`: the format its extension
    /// names, or else the source's.
    pub fn output_format(mut self, format: Option<disk::NewFormat>) -> Image {
        self.output_format = format;
        self
    }

    /// Names `adapter` in the descriptor of the new VMDK an `Output` mode writes; `None`:
    /// the source VMDK's adapter, else IDE.
    pub fn vmdk_adapter(mut self, adapter: Option<disk::VmdkAdapter>) -> Image {
        self.vmdk_adapter = adapter;
        self
    }

    /// The image's name in messages (its path).
    pub fn name(&self) -> &str {
        &self.ctx.image
    }

    /// The error context (image, volume layer).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// What the container says about itself.
    pub fn info(&self) -> &DiskInfo {
        &self.info
    }

    /// The partition layout, read when the image was opened. No writer of a session can
    /// move a partition: the file systems' writers stay inside their volumes, raw writes
    /// ([`Image::write_raw`]) outside every volume are refused, and the MBR's active flag
    /// ([`Image::set_active`]) shows in [`Image::staged_layout`]. A new partition table
    /// staged outside the volumes ([`Image::write_outside`], after [`Image::grow`]) is read
    /// by scanning [`Image::reader`] again; this layout stays the one read at open.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The partition layout as the staged writes leave it: [`Image::layout`] with the
    /// active flag [`Image::set_active`] staged, if any.
    pub fn staged_layout(&self) -> Layout {
        let mut l = self.current().clone();
        if let Some(a) = *self.active.lock().unwrap_or_else(|p| p.into_inner()) {
            for v in &mut l.volumes {
                v.bootable = v.index == a;
            }
        }
        l
    }

    /// The image as the layers above read it: the disk, or for a staged image the
    /// overlay above it, so that every read sees every staged write.
    pub fn reader(&self) -> Arc<dyn ReadAt> {
        self.reader.clone()
    }

    /// The image as a [`Disk`] (its description, reader and counters), for the layers
    /// that take one.
    pub fn disk(&self) -> Disk {
        Disk::new(self.info.clone(), self.reader.clone(), self.stats.clone())
    }

    /// Bytes read from the image's files so far.
    pub fn bytes_read(&self) -> u64 {
        self.stats.bytes()
    }

    /// The host-file counters.
    pub fn stats(&self) -> &Arc<IoStats> {
        &self.stats
    }

    /// What the session did so far (scans, file systems opened): a handle that outlives
    /// the image.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Where volume `index` stands in the layout (and in `held`).
    /// The layout the volumes are looked up in: the one adopted after a staged
    /// conversion, else the one read at open.
    fn current(&self) -> &Layout {
        self.adopted.get().unwrap_or(&self.layout)
    }

    /// Takes the partition table staged outside the volumes (a GPT written over an MBR
    /// disk by [`Image::write_outside`]) as the session's layout: the staged disk is
    /// scanned again, and from then on [`Image::volume`], [`Image::fs`], the writers and
    /// [`Image::staged_layout`] see its volumes ([`Image::layout`] stays the one read at
    /// open). A volume at the same offset, of the same size and content, as one of the old
    /// layout keeps its opened file system; the others are opened afresh. Refused when the
    /// staged table cannot be read whole or a session adopted one already. Returns it.
    pub fn adopt_layout(&self) -> Result<&Layout> {
        self.staging()?;
        if self.adopted.get().is_some() {
            return Err(self
                .ctx
                .unsupported(0, "the session adopted a new partition table already"));
        }
        self.counters.scans.fetch_add(1, Ordering::Relaxed);
        let new = volume::scan(
            self.reader.clone(),
            self.info.logical_sector_size,
            &self.ctx,
        )?;
        if !new.errors.is_empty() {
            return Err(self.ctx.corrupt(
                0,
                format!("the staged partition table: {}", new.errors.join("; ")),
            ));
        }
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let kept: Vec<Held> = new
            .volumes
            .iter()
            .map(|v| {
                let old = self.layout.volumes.iter().position(|o| {
                    o.offset == v.offset && o.size == v.size && o.content == v.content
                });
                match old.and_then(|at| held.get_mut(at)) {
                    Some(h) => std::mem::take(h),
                    None => Held::default(),
                }
            })
            .collect();
        *held = kept;
        drop(held);
        Ok(self.adopted.get_or_init(|| new))
    }

    fn position(&self, index: u32) -> Result<usize> {
        self.current()
            .volumes
            .iter()
            .position(|v| v.index == index)
            .ok_or_else(|| self.ctx.invalid(format!("no volume {index}")))
    }

    /// The volume numbered `index` (as `rehost volumes` numbers them).
    pub fn volume(&self, index: u32) -> Result<&VolumeInfo> {
        Ok(&self.current().volumes[self.position(index)?])
    }

    /// Marks volume `at` (a position) written: its file system is refreshed when next
    /// asked for.
    fn mark_written(&self, at: usize) {
        self.held.lock().unwrap_or_else(|p| p.into_inner())[at].written = true;
    }

    /// The file system of volume `index`, opened the first time it is asked for and kept;
    /// after a writer was handed out for the volume, refreshed so that it sees the writes.
    // An FAT file system (through fatfs) cannot move between threads, so neither can a
    // session that holds one: a fleet opens each image on the worker that runs it.
    #[allow(clippy::arc_with_non_send_sync)]
    pub fn fs(&self, index: u32) -> Result<Arc<FileSystem>> {
        let at = self.position(index)?;
        let v = &self.current().volumes[at];
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let h = &mut held[at];
        let fresh = match (&h.fs, h.written) {
            (Some(fs), false) => return Ok(fs.clone()),
            (Some(fs), true) => {
                self.counters.fs_refreshes.fetch_add(1, Ordering::Relaxed);
                match &**fs {
                    FileSystem::Ntfs(n) => FileSystem::Ntfs(Box::new(n.refreshed()?)),
                    FileSystem::Fat(_) => self.open_fs(v)?,
                }
            }
            (None, _) => {
                self.counters.fs_opens.fetch_add(1, Ordering::Relaxed);
                self.open_fs(v)?
            }
        };
        let fs = Arc::new(fresh);
        h.fs = Some(fs.clone());
        h.written = false;
        Ok(fs)
    }

    fn open_fs(&self, v: &VolumeInfo) -> Result<FileSystem> {
        let dev = volume::open_volume(self.reader.clone(), v, &self.ctx)?;
        FileSystem::open(Arc::new(dev), v.content, &self.ctx)
    }

    /// The volume numbered `wanted`, or the one a user most likely means: the only NTFS
    /// volume, else the NTFS volume holding `\Windows`, else the only FAT volume of a disk
    /// without NTFS. The error for none lists the volumes.
    pub fn choose(&self, wanted: Option<u32>) -> Result<(&VolumeInfo, Arc<FileSystem>)> {
        let vols = &self.current().volumes;
        if let Some(n) = wanted {
            let v = vols.iter().find(|v| v.index == n).ok_or_else(|| {
                self.ctx
                    .invalid(format!("no volume {n}; {}", self.describe_volumes()))
            })?;
            return Ok((v, self.fs(n)?));
        }
        let ntfs: Vec<&VolumeInfo> = vols.iter().filter(|v| v.content == Content::Ntfs).collect();
        if ntfs.len() == 1 {
            return Ok((ntfs[0], self.fs(ntfs[0].index)?));
        }
        let with_windows: Vec<(&VolumeInfo, Arc<FileSystem>)> = ntfs
            .iter()
            .filter_map(|v| self.fs(v.index).ok().map(|fs| (*v, fs)))
            .filter(|(_, fs)| fs.stat("Windows").is_ok_and(|e| e.is_dir))
            .collect();
        if let [(v, fs)] = &with_windows[..] {
            return Ok((v, fs.clone()));
        }
        let fat: Vec<&VolumeInfo> = vols.iter().filter(|v| v.content.is_fat()).collect();
        if ntfs.is_empty() && fat.len() == 1 {
            return Ok((fat[0], self.fs(fat[0].index)?));
        }
        Err(self.ctx.invalid(format!(
            "which volume? choose one with --volume N; {}",
            self.describe_volumes()
        )))
    }

    /// The volumes, one line each, or why there are none (the partition table's errors
    /// and notes, or that the disk holds no table and no file system at its start).
    pub fn describe_volumes(&self) -> String {
        let l = self.current();
        if l.volumes.is_empty() {
            let mut why: Vec<String> = l.errors.iter().chain(&l.notes).cloned().collect();
            if why.is_empty() {
                why.push(format!(
                    "the disk ({} bytes) has no partition table and no file system rehost \
                     recognises at offset 0",
                    self.info.virtual_size
                ));
            }
            return format!("the image has no volumes:\n  {}", why.join("\n  "));
        }
        let lines: Vec<String> = l
            .volumes
            .iter()
            .map(|v| {
                format!(
                    "  {:>2}  offset {:>12}  size {:>14} bytes  {}",
                    v.index,
                    v.offset,
                    v.size,
                    v.content.name()
                )
            })
            .collect();
        format!("the volumes are:\n{}", lines.join("\n"))
    }

    pub(crate) fn staging_overlay(&self) -> Result<Arc<Overlay>> {
        Ok(self.staging()?.overlay.clone())
    }

    fn staging(&self) -> Result<&Staging> {
        self.staging
            .as_ref()
            .ok_or_else(|| self.ctx.invalid("the image was opened read-only"))
    }

    /// A window of the staging overlay over volume `index`; the volume's file system is
    /// refreshed the next time it is asked for.
    fn window(&self, index: u32, layer: Layer) -> Result<(&VolumeInfo, WindowMut)> {
        let overlay = self.staging()?.overlay.clone();
        let at = self.position(index)?;
        let v = &self.current().volumes[at];
        self.guard_shadow_copies(v)?;
        self.mark_written(at);
        let inner: Arc<dyn WriteAt> = overlay;
        let win = WindowMut::new(inner, v.offset, v.size, self.ctx.with_layer(layer))?;
        Ok((v, win))
    }

    /// The NTFS writer of volume `index`; its reader sees every write staged so far, by
    /// any writer of this image.
    pub fn writer(&self, index: u32, opts: WriteOptions) -> Result<Writer> {
        let v = self.volume(index)?;
        if v.content != Content::Ntfs {
            return Err(self.ctx.unsupported(
                v.offset,
                format!("volume {index} is not NTFS: rehost writes into NTFS volumes only"),
            ));
        }
        let (_, win) = self.window(index, Layer::Ntfs)?;
        Writer::open(Arc::new(win), self.ctx.with_layer(Layer::Ntfs), opts)
    }

    /// The writer of volume `index` for the file system it holds: NTFS (with `opts`) or
    /// FAT (an EFI system partition).
    pub fn volume_writer(&self, index: u32, opts: WriteOptions) -> Result<VolumeWriter> {
        let v = self.volume(index)?;
        if !v.content.is_fat() {
            return Ok(VolumeWriter::Ntfs(Box::new(self.writer(index, opts)?)));
        }
        let (_, win) = self.window(index, Layer::Fat)?;
        Ok(VolumeWriter::Fat(FatWriter::open(
            Arc::new(win),
            self.ctx.clone(),
        )?))
    }

    /// Stages `bytes` at `offset` of the disk, inside one of its volumes but outside any
    /// file system's writer (a boot sector field). Bytes outside every volume (the
    /// partition table) are refused: the layout read at open would no longer hold.
    pub fn write_raw(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let staging = self.staging()?;
        let end = offset.checked_add(bytes.len() as u64);
        let inside = self.current().volumes.iter().position(|v| {
            offset >= v.offset && end.is_some_and(|e| e <= v.offset.saturating_add(v.size))
        });
        let Some(at) = inside else {
            return Err(self.ctx.unsupported(
                offset,
                format!(
                    "{} bytes at offset {offset} lie outside every volume: rehost does not \
                     rewrite partition tables",
                    bytes.len()
                ),
            ));
        };
        self.guard_shadow_copies(&self.current().volumes[at])?;
        self.mark_written(at);
        staging.overlay.write_at(offset, bytes)
    }

    /// Grows the disk by `by` bytes at its end, staged: the bytes past the old end read as
    /// zeros until written, and the commit makes the container that size behind the undo
    /// journal (undo restores the old size). Refused where the container cannot grow,
    /// saying why. The layout stays the one read at open; [`Image::disk_size`] is the new
    /// size. Returns it.
    pub fn grow(&self, by: u64) -> Result<u64> {
        let staging = self.staging()?;
        let new_size = staging
            .overlay
            .size()
            .checked_add(by)
            .ok_or_else(|| self.ctx.invalid(format!("growing by {by} bytes overflows")))?;
        match &staging.session {
            Some(s) => s.grow(new_size)?,
            None => {
                disk::refuse_growth(Path::new(&self.info.path), new_size)?;
                staging.overlay.grow_to(new_size)?;
            }
        }
        Ok(new_size)
    }

    /// The disk's size as staged (grown by [`Image::grow`]), or as opened.
    pub fn disk_size(&self) -> u64 {
        self.reader.size()
    }

    /// Checks that `len` bytes at `offset` lie inside the disk (as grown) and outside every
    /// volume of the layout read at open.
    fn outside_volumes(&self, offset: u64, len: u64) -> Result<()> {
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= self.disk_size())
            .ok_or_else(|| self.ctx.out_of_bounds(offset, len, self.disk_size()))?;
        if let Some(v) = self
            .layout
            .volumes
            .iter()
            .chain(self.adopted.get().iter().flat_map(|l| l.volumes.iter()))
            .find(|v| offset < v.offset.saturating_add(v.size) && v.offset < end)
        {
            return Err(self.ctx.unsupported(
                offset,
                format!(
                    "{len} bytes at offset {offset} reach into volume {}: a volume is written \
                     through its writer or write_raw",
                    v.index
                ),
            ));
        }
        Ok(())
    }

    /// Stages `bytes` at `offset` of the disk outside every volume of the layout read at
    /// open: a partition table (the protective MBR, the GPT headers and arrays), or a new
    /// partition's bytes in free or grown space. The layout stays the one read at open.
    pub fn write_outside(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let staging = self.staging()?;
        self.outside_volumes(offset, bytes.len() as u64)?;
        staging.overlay.write_at(offset, bytes)
    }

    /// A window of the staging overlay over `len` bytes at `offset`, outside every volume
    /// of the layout read at open (a new partition, such as an EFI system partition to
    /// format), its errors named for `layer`.
    pub fn outside_window(&self, offset: u64, len: u64, layer: Layer) -> Result<WindowMut> {
        let overlay = self.staging()?.overlay.clone();
        self.outside_volumes(offset, len)?;
        let inner: Arc<dyn WriteAt> = overlay;
        WindowMut::new(inner, offset, len, self.ctx.with_layer(layer))
    }

    /// Before a write into volume `v` is staged: refuses it when the image is opened for a
    /// commit in place, the volume (NTFS) has shadow copies (or a damaged catalog that may
    /// list some), and that was not allowed ([`Image::allow_shadow_copies`]); otherwise
    /// notes such a volume for the outcome. Read once per write handed out, through the
    /// session's cache.
    fn guard_shadow_copies(&self, v: &VolumeInfo) -> Result<()> {
        if v.content != Content::Ntfs {
            return Ok(());
        }
        let dev = volume::open_volume(self.reader.clone(), v, &self.ctx)?;
        let Some(s) = rehost_ntfs::vss::read(&dev, &self.ctx)? else {
            return Ok(());
        };
        if !s.any() {
            return Ok(());
        }
        let (count, damaged) = (s.count(), s.damaged.is_some());
        if self.mode() == Some(&Mode::InPlace) && !self.allow_shadow_copies {
            return Err(self.ctx.with_layer(Layer::Vss).error(
                Location::Offset(v.offset + rehost_ntfs::vss::header::VOLUME_HEADER_OFFSET),
                ErrorKind::ShadowCopies {
                    volume: v.index,
                    count,
                    damaged,
                },
            ));
        }
        let mut noted = self.shadow_copies.lock().unwrap_or_else(|p| p.into_inner());
        if !noted.iter().any(|n| n.volume == v.index) {
            noted.push(ShadowCopiesWritten {
                volume: v.index,
                count,
                damaged,
            });
        }
        Ok(())
    }

    /// The volumes written so far that have shadow copies.
    pub fn shadow_copies_written(&self) -> Vec<ShadowCopiesWritten> {
        self.shadow_copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How the image was opened: `None` read-only, else the staged mode.
    pub fn mode(&self) -> Option<&Mode> {
        self.staging.as_ref().map(|s| &s.mode)
    }

    /// In a dry run, why the container would refuse to commit in place what is staged now
    /// (see [`disk::in_place_refusal`]), asked without writing; `None` when it would take
    /// it, when nothing is staged, and outside a dry run (where the open or the commit
    /// itself refuses). A container that cannot even plan the write says why here too.
    pub fn in_place_refusal(&self) -> Option<String> {
        self.in_place_check().refusal
    }

    /// In a dry run, what the container would meet committing in place what is staged now:
    /// the refusal ([`Image::in_place_refusal`]), or what it would repair besides (a dirty
    /// qcow2's refcounts rebuilt). Empty outside a dry run and when nothing is staged.
    pub fn in_place_check(&self) -> disk::InPlace {
        let Some(s) = self.staging.as_ref().filter(|s| s.mode == Mode::DryRun) else {
            return disk::InPlace::default();
        };
        let extents = s.overlay.extents();
        if extents.is_empty() && s.overlay.grown_by() == 0 {
            return disk::InPlace::default();
        }
        let path = Path::new(&self.info.path);
        disk::in_place_check(path, s.overlay.as_ref(), &extents, s.overlay.size()).unwrap_or_else(
            |e| disk::InPlace {
                refusal: Some(e.to_string()),
                repairs: Vec::new(),
            },
        )
    }

    /// Commits what was staged (nothing for a dry run, which only counts it).
    pub fn finish(self) -> Result<Outcome> {
        self.end(true)
    }

    /// Drops what was staged: nothing is written (an interrupted commit the open rolled
    /// back stays rolled back).
    pub fn discard(self) -> Outcome {
        let recovered = self.recovered();
        let disk::InPlace {
            refusal: in_place_refusal,
            repairs: in_place_repairs,
        } = self.in_place_check();
        let extents = self
            .staging
            .as_ref()
            .map(|s| s.overlay.extents())
            .unwrap_or_default();
        Outcome {
            staged_extents: extents.len(),
            staged_bytes: extents.iter().map(|(_, b)| b.len() as u64).sum(),
            grown_to: self.grown_to(),
            commit: None,
            recovered,
            shadow_copies: self.shadow_copies_written(),
            in_place_refusal,
            in_place_repairs,
        }
    }

    /// The disk's new size, if it was grown.
    fn grown_to(&self) -> Option<u64> {
        let o = &self.staging.as_ref()?.overlay;
        (o.grown_by() > 0).then(|| o.size())
    }

    fn recovered(&self) -> Option<String> {
        let s = self.staging.as_ref()?.session.as_ref()?;
        s.recovery().map(|r| {
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
        let recovered = self.recovered();
        let shadow_copies = self.shadow_copies_written();
        let disk::InPlace {
            refusal: in_place_refusal,
            repairs: in_place_repairs,
        } = self.in_place_check();
        let grown_to = self.grown_to();
        let output_format = self.output_format;
        let vmdk_adapter = self.vmdk_adapter;
        let Some(staging) = self.staging else {
            return Err(self.ctx.invalid("the image was opened read-only"));
        };
        let extents = staging.overlay.extents();
        let staged_bytes = extents.iter().map(|(_, b)| b.len() as u64).sum();
        let opts = CommitOptions {
            vmdk_adapter,
            ..CommitOptions::default()
        };
        let commit = match (staging.session, &staging.mode) {
            _ if !commit => None,
            (None, _) | (_, Mode::DryRun) => None,
            (Some(_), Mode::InPlace) if extents.is_empty() && grown_to.is_none() => None,
            (Some(s), Mode::InPlace) => Some(s.commit(&opts)?),
            // A named output format is a conversion; so is an output whose extension
            // names another container format, and a new VMDK or qcow2 (the formats that
            // are not copied with the staged writes over them, but written anew).
            (Some(s), Mode::Output(p)) => Some(
                match output_format.or_else(|| {
                    disk::NewFormat::from_path(p).filter(|f| {
                        f.format() != s.info().format
                            || matches!(f.format(), disk::Format::Vmdk | disk::Format::Qcow2)
                    })
                }) {
                    Some(format) => s.convert_to(p, format, &opts)?,
                    None => s.commit_to(p, &opts)?,
                },
            ),
        };
        Ok(Outcome {
            staged_extents: extents.len(),
            staged_bytes,
            grown_to,
            commit,
            recovered,
            shadow_copies,
            in_place_refusal,
            in_place_repairs,
        })
    }
}
