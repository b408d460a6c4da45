//! Writing into an NTFS volume: files created, overwritten, resized, replaced, renamed and
//! deleted, on a writable device whose writes are staged (a [`rehost_disk::WindowMut`]
//! over a [`rehost_disk::Overlay`]): nothing reaches an image until the disk layer commits.
//!
//! One file per structure: [`bitmap`] (`$Bitmap` and the `$BITMAP` attributes),
//! [`runs`] (mapping pairs), [`record`] (FILE records and fixups), [`mft`] (record
//! allocation, `$MFT` growth, `$MFTMirr`), [`node`], [`index`] and [`index_store`] (the `$I30` B+ tree),
//! [`names`] (`$FILE_NAME`, `$STANDARD_INFORMATION`, 8.3 aliases), [`security`] (a new file's
//! security ID or descriptor), [`dirs`] (new directories), [`data`] (the unnamed
//! `$DATA`: resident and non-resident, clusters), [`links`] (delete, rename), [`listed`] (files with an attribute list), [`logfile`] (`$LogFile` reset, the dirty
//! flag), [`guard`] (when not to write), [`ops`] (the operations), [`verify`] (reading
//! back).
//!
//! Each operation either completes or changes nothing: it is planned and checked in memory
//! and written into an overlay of its own, which reaches the device only when the whole
//! operation has been staged there. After it, the writer
//! reads back what it wrote through the reader ([`crate::Ntfs`]) and fails if
//! that disagrees.
//!
//! ```no_run
//! use rehost_core::io::{Memory, ReadAt, WriteAt};
//! use rehost_core::{Ctx, Layer};
//! use rehost_disk::{Overlay, WindowMut};
//! use rehost_ntfs::write::{WriteOptions, Writer};
//! use std::sync::Arc;
//! let image = std::fs::read("volume.raw")?;
//! let ctx = Ctx::new("volume.raw", Layer::Ntfs);
//! let overlay = Arc::new(Overlay::new(Arc::new(Memory::new("volume.raw", image)), ctx.clone()));
//! let size = overlay.size();
//! let dev: Arc<dyn WriteAt> = Arc::new(WindowMut::new(overlay.clone(), 0, size, ctx.clone())?);
//! let mut w = Writer::open(dev, ctx, WriteOptions::default())?;
//! w.rename("/Windows/System32/hal.dll", "/Windows/System32/hal.dll.rehost-orig")?;
//! w.create("/Windows/System32/hal.dll", b"MZ...")?;
//! let staged = overlay.extents(); // what a commit would write
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bitmap;
pub mod data;
pub mod dirs;
pub mod guard;
pub mod index;
pub mod index_store;
pub mod io;
pub mod links;
pub mod listed;
pub mod logfile;
pub mod mft;
pub mod names;
pub mod node;
pub mod ops;
pub mod record;
pub mod runs;
pub mod security;
pub mod verify;

use super::record::AT_DATA;
use super::runlist::Run;
use super::Ntfs;
use bitmap::Bits;
use index::Tree;
use io::Vol;
use mft::Mft;
use rehost_core::error::{Ctx, Result};
use rehost_disk::{Overlay, ReadAt, WriteAt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Whether new names get an 8.3 alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortNames {
    /// As the directory does: an alias when any of its names is an 8.3 name or has one.
    #[default]
    Auto,
    /// Always, as Windows does with 8.3 name creation on.
    Always,
    /// Never, as Windows does with 8.3 name creation off.
    Never,
}

/// How the writer writes.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Set the volume's dirty flag with the first change, so that chkdsk checks the
    /// volume at the next boot.
    pub mark_dirty: bool,
    /// 8.3 aliases for new names.
    pub short_names: ShortNames,
    /// Empty `$LogFile` (fill it with 0xFF, as ntfs-3g does) with the first change, so that
    /// Windows starts a fresh log instead of reading one that predates the change.
    pub reset_logfile: bool,
    /// Write even though the volume's dirty flag is set (chkdsk is due).
    pub allow_dirty_volume: bool,
    /// Write even though Windows left the volume hibernated (a hibernation image waits in
    /// `hiberfil.sys`, or Fast Startup left `$LogFile` at version 2.0): for a caller that
    /// discards the hibernation image in the same change. A version-2.0 log is then
    /// emptied with the first change, as ntfs-3g does when it removes the hibernation file.
    pub allow_hibernated: bool,
    /// Time stamped on what changes (FILETIME); the current time when `None`.
    pub time: Option<u64>,
    /// Read every change back through the reader before reporting success.
    pub verify: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            mark_dirty: false,
            short_names: ShortNames::Auto,
            reset_logfile: true,
            allow_dirty_volume: false,
            allow_hibernated: false,
            time: None,
            verify: true,
        }
    }
}

/// What a directory's other files give a new file: the security of a sibling.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    /// A security ID, or a descriptor to copy ([`security`]).
    security: security::Security,
    /// Whether the directory uses 8.3 aliases.
    short_names: bool,
}

/// An NTFS volume open for writing.
pub struct Writer {
    vol: Vol,
    ntfs: Ntfs,
    opts: WriteOptions,
    clusters: Bits,
    bitmap_runs: Vec<Run>,
    /// Clusters of the metafiles, which no file's runs may reach.
    meta: Vec<(u64, u64, &'static str)>,
    mft: Mft,
    templates: HashMap<u64, Template>,
    started: bool,
    changes: u64,
}

/// The directory trees an operation changes, by directory record.
#[derive(Default)]
pub(crate) struct Op {
    trees: BTreeMap<u64, Tree>,
}

impl Writer {
    /// Opens the NTFS volume on `dev` for writing, after checking that it may be written:
    /// not BitLocker-encrypted, `$LogFile` clean and not left by Fast Startup or
    /// hibernation, no hibernation image waiting, `$MFTMirr` agreeing with `$MFT`, the
    /// dirty flag clear (unless allowed).
    pub fn open(dev: Arc<dyn WriteAt>, ctx: Ctx, mut opts: WriteOptions) -> Result<Writer> {
        let ctx = ctx.with_layer(rehost_core::Layer::Ntfs);
        guard::check_encryption(&*dev, &ctx)?;
        let reader: Arc<dyn ReadAt> = dev.clone();
        let ntfs = Ntfs::open(reader, ctx.clone())?;
        if guard::check_state(&ntfs, &opts)? {
            opts.reset_logfile = true;
        }
        let boot = ntfs.boot().clone();
        let vol = Vol {
            dev,
            ctx: ntfs.ctx().clone(),
            cluster: boot.cluster_size as u64,
            record_size: boot.record_size as usize,
            index_block: boot.index_record_size as usize,
            total_clusters: boot.total_clusters(),
            mft_lcn: boot.mft_lcn,
        };
        let (clusters, bitmap_runs) = load_cluster_bitmap(&vol, &ntfs)?;
        let meta = guard::metafile_extents(&ntfs)?;
        guard::check_metafiles(&meta, &clusters, &vol.ctx)?;
        let mft = Mft::load(&vol, &ntfs)?;
        guard::check_mirror(&vol, &mft)?;
        Ok(Writer {
            vol,
            ntfs,
            opts,
            clusters,
            bitmap_runs,
            meta,
            mft,
            templates: HashMap::new(),
            started: false,
            changes: 0,
        })
    }

    /// The reader, over the volume as changed so far.
    pub fn reader(&self) -> &Ntfs {
        &self.ntfs
    }

    /// Operations completed so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Free clusters left.
    pub fn free_clusters(&self) -> u64 {
        self.clusters
            .clear_runs(0, self.clusters.len())
            .iter()
            .map(|r| r.1)
            .sum()
    }

    fn now(&self) -> u64 {
        self.opts.time.unwrap_or_else(names::filetime_now)
    }

    /// Runs one operation: on success its changes are written and read back; on failure
    /// nothing it planned is written and the in-memory state is read again from the volume.
    fn run<T>(&mut self, f: impl FnOnce(&mut Self, &mut Op) -> Result<T>) -> Result<T> {
        // The operation writes into an overlay of its own, passed on to the device only
        // when it has committed: a failed one leaves no byte behind.
        let device = self.vol.dev.clone();
        let below: Arc<dyn ReadAt> = device.clone();
        let staging = Arc::new(Overlay::new(below, self.vol.ctx.clone()));
        self.vol.dev = staging.clone();
        let mut op = Op::default();
        let out = f(self, &mut op).and_then(|v| self.commit(&mut op).map(|_| v));
        self.vol.dev = device;
        let out = out.and_then(|v| {
            for (at, bytes) in staging.extents() {
                self.vol.dev.write_at(at, &bytes)?;
            }
            Ok(v)
        });
        match out {
            Ok(v) => {
                self.changes += 1;
                // The reader reads through the device, so it sees every change but a grown
                // MFT, which it maps when it opens.
                if self.mft.records() != self.ntfs.record_count() {
                    let reader: Arc<dyn ReadAt> = self.vol.dev.clone();
                    self.ntfs = Ntfs::open(reader, self.vol.ctx.clone())?;
                    self.meta = guard::metafile_extents(&self.ntfs)?;
                }
                Ok(v)
            }
            Err(e) => {
                self.reload()?;
                Err(e)
            }
        }
    }

    /// Reads the bitmaps and the MFT's place again (after a failed operation).
    fn reload(&mut self) -> Result<()> {
        let reader: Arc<dyn ReadAt> = self.vol.dev.clone();
        self.ntfs = Ntfs::open(reader, self.vol.ctx.clone())?;
        let (c, r) = load_cluster_bitmap(&self.vol, &self.ntfs)?;
        self.clusters = c;
        self.bitmap_runs = r;
        self.meta = guard::metafile_extents(&self.ntfs)?;
        self.mft = Mft::load(&self.vol, &self.ntfs)?;
        self.templates.clear();
        Ok(())
    }

    /// Writes what an operation planned: record changes of every tree first (any refusal
    /// comes before the first write), then records, bitmaps and index blocks.
    fn commit(&mut self, op: &mut Op) -> Result<()> {
        for t in op.trees.values_mut() {
            t.stage_records(&self.vol, &mut self.mft)?;
        }
        let first = !self.started;
        if first && self.opts.mark_dirty {
            logfile::set_dirty(&self.vol, &mut self.mft)?;
        }
        self.mft.flush(&self.vol)?;
        if let Some((from, to)) = self.clusters.take_dirty() {
            self.vol.write_runs(
                &self.bitmap_runs,
                from as u64,
                &self.clusters.bytes()[from..to],
                "$Bitmap",
            )?;
        }
        for t in op.trees.values_mut() {
            t.write_blocks(&self.vol)?;
        }
        if first && self.opts.reset_logfile {
            logfile::reset(&self.vol, &self.ntfs)?;
        }
        self.started = true;
        Ok(())
    }
}

/// `$Bitmap` in memory, and its runs.
fn load_cluster_bitmap(vol: &Vol, ntfs: &Ntfs) -> Result<(Bits, Vec<Run>)> {
    let ctx = &vol.ctx;
    let f = ntfs.file(6)?;
    let desc = f
        .stream_desc(AT_DATA, "", ctx, "$Bitmap")?
        .ok_or_else(|| ctx.corrupt_at_path("$Bitmap", "no $DATA"))?;
    let need = vol.total_clusters.div_ceil(8);
    if desc.resident.is_some() || desc.data_size < need || desc.data_size > 1 << 29 {
        return Err(ctx.corrupt_at_path(
            "$Bitmap",
            format!(
                "{} bytes for {} clusters",
                desc.data_size, vol.total_clusters
            ),
        ));
    }
    let mut bytes = vec![0u8; desc.data_size as usize];
    let init = desc.initialized_size.min(desc.data_size) as usize;
    vol.read_runs(&desc.runs, 0, &mut bytes[..init], "$Bitmap")?;
    Ok((Bits::new(bytes, vol.total_clusters), desc.runs))
}
