//! New images made from a virtual disk: raw, VHD (fixed, dynamic, or fixed and sized for
//! Azure), VHDX (dynamic), qcow2 (version 3) and VMDK (monolithicSparse or
//! streamOptimized), whatever the source's container, and with the staged writes of a
//! [`crate::Overlay`] applied on the way when the source is one (a fix written as a new
//! image of another format).
//!
//! The source is read block by block; a block (a cluster, a grain) that reads as zeros is
//! left a hole (unallocated in VHD, VHDX, qcow2 and VMDK, a sparse hole in a raw file),
//! so a disk's free space costs nothing in the copy. The source is read on one thread
//! while the blocks read before are written on another. The image is written under a
//! temporary name beside the output; it is opened again by this crate's own reader, every
//! block compared with the source's (by the CRC-32C taken as it was read), while its last
//! flush runs; then it is renamed into place and its directory flushed: the output appears
//! whole or not at all, and an existing file is never written over.

mod qcow2;
mod raw;
mod vhd;
mod vhdx;
mod vmdk;

pub use vmdk::VmdkAdapter;

use crate::ids::Ids;
use crate::ReadAt;
use rehost_core::error::{Ctx, Layer, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// The format of a new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewFormat {
    /// A raw image, sparse where the disk reads as zeros.
    Raw,
    /// A fixed VHD: the disk, then a 512-byte footer (what Azure takes).
    VhdFixed,
    /// A dynamic VHD with 2 MiB blocks.
    VhdDynamic,
    /// A dynamic VHDX with 32 MiB blocks (Hyper-V's default).
    Vhdx,
    /// A fixed VHD whose disk is a whole number of MiB, as Azure takes one (a disk of
    /// another size is rounded up, the added sectors reading as zeros).
    VhdAzure,
    /// A qcow2 image, version 3, 64 KiB clusters, 16-bit refcounts, uncompressed.
    Qcow2,
    /// A monolithicSparse VMDK (hosted, 64 KiB grains, with the redundant grain directory).
    VmdkSparse,
    /// A streamOptimized VMDK (deflate-compressed grains behind markers, the grain
    /// directory at the end), as vSphere takes one for upload.
    VmdkStream,
}

impl NewFormat {
    /// The format named `name`: `raw`, `vhd` (or `vhd-dynamic`), `vhd-fixed`,
    /// `vhd-azure`, `vhdx`, `qcow2`, `vmdk` (or `vmdk-sparse`: monolithicSparse),
    /// `vmdk-stream` (or `vmdk-streamoptimized`).
    pub fn from_name(name: &str) -> Option<NewFormat> {
        Some(match name.to_ascii_lowercase().as_str() {
            "raw" | "img" => NewFormat::Raw,
            "vhd" | "vhd-dynamic" | "vpc" => NewFormat::VhdDynamic,
            "vhd-fixed" => NewFormat::VhdFixed,
            "vhd-azure" => NewFormat::VhdAzure,
            "vhdx" => NewFormat::Vhdx,
            "qcow2" => NewFormat::Qcow2,
            "vmdk" | "vmdk-sparse" | "vmdk-monolithicsparse" => NewFormat::VmdkSparse,
            "vmdk-stream" | "vmdk-streamoptimized" => NewFormat::VmdkStream,
            _ => return None,
        })
    }

    /// The format a file name's extension asks for (`.raw`, `.img`, `.vhd`, `.vhdx`,
    /// `.qcow2`, `.vmdk`: a dynamic VHD, a monolithicSparse VMDK).
    pub fn from_path(path: &Path) -> Option<NewFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        ["raw", "img", "vhd", "vhdx", "qcow2", "vmdk"]
            .contains(&ext.as_str())
            .then(|| NewFormat::from_name(&ext))?
    }

    /// Its name, as `from_name` takes it (`vhd` for the dynamic VHD, `vmdk` for the
    /// monolithicSparse VMDK).
    pub fn name(self) -> &'static str {
        match self {
            NewFormat::Raw => "raw",
            NewFormat::VhdFixed => "vhd-fixed",
            NewFormat::VhdDynamic => "vhd",
            NewFormat::Vhdx => "vhdx",
            NewFormat::VhdAzure => "vhd-azure",
            NewFormat::Qcow2 => "qcow2",
            NewFormat::VmdkSparse => "vmdk",
            NewFormat::VmdkStream => "vmdk-stream",
        }
    }

    /// The names `from_name` takes, for messages.
    pub const NAMES: &'static str = "raw, vhd (dynamic), vhd-fixed, vhd-azure, vhdx, qcow2, \
                                     vmdk (monolithicSparse), vmdk-stream (streamOptimized)";

    /// The container format it is.
    pub fn format(self) -> crate::Format {
        match self {
            NewFormat::Raw => crate::Format::Raw,
            NewFormat::VhdFixed | NewFormat::VhdDynamic | NewFormat::VhdAzure => crate::Format::Vhd,
            NewFormat::Vhdx => crate::Format::Vhdx,
            NewFormat::Qcow2 => crate::Format::Qcow2,
            NewFormat::VmdkSparse | NewFormat::VmdkStream => crate::Format::Vmdk,
        }
    }

    /// The virtual size of the new image of a disk of `size` bytes: the same, but for the
    /// Azure VHD's, which is rounded up to a whole MiB.
    pub fn virtual_size(self, size: u64) -> u64 {
        match self {
            NewFormat::VhdAzure => size.div_ceil(1 << 20).saturating_mul(1 << 20),
            _ => size,
        }
    }
}

impl std::fmt::Display for NewFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NewFormat::Raw => "raw",
            NewFormat::VhdFixed => "fixed VHD",
            NewFormat::VhdDynamic => "dynamic VHD",
            NewFormat::Vhdx => "dynamic VHDX",
            NewFormat::VhdAzure => "fixed VHD for Azure",
            NewFormat::Qcow2 => "qcow2",
            NewFormat::VmdkSparse => "monolithicSparse VMDK",
            NewFormat::VmdkStream => "streamOptimized VMDK",
        })
    }
}

/// How to make a new image.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Derive the new image's identifiers from this seed (reproducible bytes), instead of
    /// the system's random source.
    pub seed: Option<u64>,
    /// The adapter a new VMDK's descriptor names (`None`: IDE).
    pub vmdk_adapter: Option<VmdkAdapter>,
}

/// What making a new image did.
#[derive(Debug, Clone)]
pub struct CreateReport {
    /// The new image.
    pub path: PathBuf,
    /// Its format.
    pub format: NewFormat,
    /// The new image's virtual disk size (the source's, unless the format rounds it up).
    pub virtual_size: u64,
    /// Blocks of the new image's block size that hold data (the rest are holes).
    pub blocks_written: u64,
    /// Blocks in all.
    pub blocks: u64,
    /// Bytes written into the new file.
    pub bytes_written: u64,
    /// The new file's length.
    pub file_len: u64,
    /// What the format changed and the caller should be told (a size rounded up).
    pub notes: Vec<String>,
}

/// Bytes written between two flushes started in the background.
const FLUSH_EVERY: u64 = 128 << 20;

/// The new image being written: its file, the bytes written so far, and a flush of what
/// was written before running on a thread of its own, so that the disk writes while the
/// source is read and the last flush before the read-back has little left to do.
struct Out<'a> {
    file: File,
    ctx: &'a Ctx,
    written: u64,
    unflushed: u64,
    flushing: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Out<'_> {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| self.ctx.io(offset, e))?;
        self.written += data.len() as u64;
        self.unflushed += data.len() as u64;
        if self.unflushed >= FLUSH_EVERY && self.flushing.as_ref().is_none_or(|f| f.is_finished()) {
            self.wait_flush()?;
            let file = self.file.try_clone().map_err(|e| self.ctx.io(0, e))?;
            self.flushing = Some(std::thread::spawn(move || file.sync_data()));
            self.unflushed = 0;
        }
        Ok(())
    }

    /// Waits for the flush running in the background, if any; its error is the write's.
    fn wait_flush(&mut self) -> Result<()> {
        match self.flushing.take().map(|f| f.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(self.ctx.io(0, e)),
            Some(Err(_)) => Err(self
                .ctx
                .invalid("the background flush of the new image failed")),
        }
    }

    /// Flushes the whole file (after the background flush, if one runs).
    fn flush_all(&mut self) -> Result<()> {
        self.wait_flush()?;
        self.file.sync_all().map_err(|e| self.ctx.io(0, e))
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| self.ctx.io(len, e))
    }
}

impl Drop for Out<'_> {
    /// A flush still running (the image failed before its last flush) is waited for, so
    /// that no thread outlives the new image's removal.
    fn drop(&mut self) {
        if let Some(f) = self.flushing.take() {
            let _ = f.join();
        }
    }
}

/// Whether every byte of `b` is zero.
fn is_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0)
        && words.remainder().iter().all(|&x| x == 0)
}

/// The granularity of the holes left inside a block that holds data.
const PIECE: usize = 64 << 10;

/// The blocks a new image holds: each block with data, by index, with the CRC-32C of its
/// bytes (what reading the new image back must find), and the number of blocks.
pub(super) type Blocks = (Vec<(u64, u32)>, u64);

/// Buffers of a block each that the copy's two threads pass between them: one being read,
/// one waiting, one being written.
const BUFFERS: usize = 3;

/// Reads the source's blocks of `block` bytes in turn, skipping those its allocation map
/// says were never written; calls `data` with the index and bytes of each that is not all
/// zeros. Returns the blocks with data (and their checksums), and the number of blocks.
///
/// The source is read (and each block checked for zeros and summed) on a thread of its own,
/// a block ahead of `data`, which writes the last: reading and writing overlap, and the
/// buffers go round between the two, so no block costs a fresh allocation.
fn each_block(
    src: &dyn ReadAt,
    block: u64,
    mut data: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Blocks> {
    let size = src.size();
    let blocks = size.div_ceil(block);
    let allocated = src.allocated()?;
    let len = block.min(size.max(1)) as usize;
    std::thread::scope(|s| {
        let (full, filled) = mpsc::sync_channel::<Result<(u64, usize, Vec<u8>, u32)>>(1);
        let (give_back, returned) = mpsc::channel::<Vec<u8>>();
        s.spawn(move || {
            let mut ranges = allocated.as_deref().unwrap_or(&[]).iter().peekable();
            let mut made = 0;
            let mut spare: Option<Vec<u8>> = None;
            for k in 0..blocks {
                let at = k * block;
                let n = block.min(size - at) as usize;
                if allocated.is_some() {
                    while ranges.next_if(|r| r.0.saturating_add(r.1) <= at).is_some() {}
                    if ranges.peek().is_none_or(|r| r.0 >= at + n as u64) {
                        continue;
                    }
                }
                let mut buf = match spare.take().map(Ok).unwrap_or_else(|| returned.try_recv()) {
                    Ok(b) => b,
                    Err(_) if made < BUFFERS => {
                        made += 1;
                        vec![0u8; len]
                    }
                    Err(_) => match returned.recv() {
                        Ok(b) => b,
                        Err(_) => return, // the writer stopped
                    },
                };
                if let Err(e) = src.read_once(at, &mut buf[..n]) {
                    let _ = full.send(Err(e));
                    return;
                }
                if is_zero(&buf[..n]) {
                    spare = Some(buf);
                    continue;
                }
                let sum = crc32c::crc32c(&buf[..n]);
                if full.send(Ok((k, n, buf, sum))).is_err() {
                    return;
                }
            }
        });
        let mut with_data = Vec::new();
        for msg in filled.iter() {
            let (k, n, buf, sum) = msg?;
            data(k, &buf[..n])?;
            with_data.push((k, sum));
            let _ = give_back.send(buf);
        }
        Ok((with_data, blocks))
    })
}

/// Writes the pieces of `data` that are not all zeros at `at` in the new file: the rest
/// stay holes, which read as zeros.
fn write_sparse(o: &mut Out, at: u64, data: &[u8]) -> Result<()> {
    for (i, piece) in data.chunks(PIECE).enumerate() {
        if !is_zero(piece) {
            o.write(at + (i * PIECE) as u64, piece)?;
        }
    }
    Ok(())
}

/// Writes that follow each other in the new file gathered into one, up to `GATHER` bytes:
/// the formats whose clusters or grains are smaller than the blocks read write them in
/// few calls.
struct Gather {
    at: u64,
    buf: Vec<u8>,
}

/// The most bytes [`Gather`] holds before it writes them.
const GATHER: usize = 4 << 20;

impl Gather {
    fn new() -> Self {
        Gather {
            at: 0,
            buf: Vec::with_capacity(GATHER),
        }
    }

    /// Adds `data` at `at` in the new file, writing what was gathered first when `data`
    /// does not follow it or there would be too much.
    fn put(&mut self, o: &mut Out, at: u64, data: &[u8]) -> Result<()> {
        if self.at + self.buf.len() as u64 != at || self.buf.len() + data.len() > GATHER {
            self.flush(o)?;
            self.at = at;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Writes what was gathered.
    fn flush(&mut self, o: &mut Out) -> Result<()> {
        if !self.buf.is_empty() {
            o.write(self.at, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Makes a new image of `format` at `out` (which must not exist) holding the virtual disk
/// `src`, then reads it back through this crate's reader and compares it with `src`.
pub fn create(
    src: &dyn ReadAt,
    out: &Path,
    format: NewFormat,
    opts: &CreateOptions,
) -> Result<CreateReport> {
    let ctx = Ctx::new(out.display().to_string(), Layer::File);
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(ctx.invalid(
            "the output exists; rehost never writes over it: remove it or choose another name",
        ));
    }
    if let Some(dir) = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        return Err(ctx.invalid(format!(
            "there is no directory {} to write the new image in",
            dir.display()
        )));
    }
    let mut tmp = out.as_os_str().to_os_string();
    tmp.push(".rehost-partial");
    let tmp = PathBuf::from(tmp);
    let tctx = Ctx::new(tmp.display().to_string(), Layer::File);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| tctx.io(0, e))?;
    let mut o = Out {
        file,
        ctx: &tctx,
        written: 0,
        unflushed: 0,
        flushing: None,
    };
    let mut ids = Ids::new(opts.seed);
    let result = (|| {
        let mut notes = Vec::new();
        let ((with_data, blocks), block) = match format {
            NewFormat::Raw => (raw::write(src, &mut o)?, raw::BLOCK),
            NewFormat::VhdFixed => (
                vhd::write_fixed(src, src.size(), &mut o, &mut ids)?,
                vhd::BLOCK,
            ),
            NewFormat::VhdAzure => {
                let size = format.virtual_size(src.size());
                if size != src.size() {
                    notes.push(format!(
                        "the disk's {} bytes were rounded up to {size} ({} MiB), as Azure \
                         wants a whole number of MiB; the added sectors read as zeros",
                        src.size(),
                        size >> 20
                    ));
                }
                (vhd::write_fixed(src, size, &mut o, &mut ids)?, vhd::BLOCK)
            }
            NewFormat::VhdDynamic => (vhd::write_dynamic(src, &mut o, &mut ids, &ctx)?, vhd::BLOCK),
            NewFormat::Vhdx => (vhdx::write(src, &mut o, &mut ids, &ctx)?, vhdx::BLOCK),
            NewFormat::Qcow2 => (qcow2::write(src, &mut o, &ctx)?, qcow2::BLOCK),
            NewFormat::VmdkSparse | NewFormat::VmdkStream => {
                let name = out
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| ctx.invalid("a VMDK's descriptor names its file in UTF-8"))?;
                let stream = format == NewFormat::VmdkStream;
                (
                    vmdk::write(
                        src,
                        &mut o,
                        &mut ids,
                        name,
                        stream,
                        opts.vmdk_adapter.unwrap_or_default(),
                        &ctx,
                    )?,
                    vmdk::BLOCK,
                )
            }
        };
        let file_len = o.file.metadata().map_err(|e| tctx.io(0, e))?.len();
        // The read-back runs while the last flush does: both read what the page cache
        // holds, flushed or not, and the image is renamed into place only after both.
        std::thread::scope(|s| {
            let check = s.spawn(|| verify(src, &tmp, format, &with_data, block));
            let flushed = o.flush_all();
            let checked = check
                .join()
                .unwrap_or_else(|_| Err(tctx.invalid("the read-back of the new image stopped")));
            flushed.and(checked)
        })?;
        std::fs::rename(&tmp, out).map_err(|e| ctx.io(0, e))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ctx.io(0, e))?;
        }
        Ok(CreateReport {
            path: out.to_path_buf(),
            format,
            virtual_size: format.virtual_size(src.size()),
            blocks_written: with_data.len() as u64,
            blocks,
            bytes_written: o.written,
            file_len,
            notes,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads the new image at `path` through this crate's reader: the blocks that hold data
/// must read as what was written (their CRC-32C, taken as each was read from the source, so
/// the source is not read and decoded twice), and its allocation map (where the format has
/// one) must name no other block. The rest of a raw or fixed VHD file was never written:
/// holes.
fn verify(
    src: &dyn ReadAt,
    path: &Path,
    format: NewFormat,
    with_data: &[(u64, u32)],
    block: u64,
) -> Result<()> {
    let ctx = Ctx::new(path.display().to_string(), Layer::File);
    let disk = crate::open(path, &crate::OpenOptions::default())?;
    let expected = format.virtual_size(src.size());
    if disk.info().format != format.format() || disk.size() != expected {
        return Err(ctx.corrupt(
            0,
            format!(
                "the new image reads back as a {} disk of {} bytes, not a {} of {}",
                disk.info().format,
                disk.size(),
                format.format(),
                expected
            ),
        ));
    }
    let size = src.size();
    let mut b = vec![0u8; block.min(size) as usize];
    for &(k, sum) in with_data {
        let at = k * block;
        let n = block.min(size - at) as usize;
        disk.read_once(at, &mut b[..n])?;
        if crc32c::crc32c(&b[..n]) != sum {
            return Err(ctx.corrupt(
                at,
                "the new image does not read back as the source: it is removed",
            ));
        }
    }
    if let Some(ranges) = disk.allocated()? {
        for (o, l) in ranges {
            let (first, last) = (o / block, (o + l - 1) / block);
            if (first..=last).any(|k| with_data.binary_search_by_key(&k, |d| d.0).is_err()) {
                return Err(ctx.corrupt(
                    o,
                    "the new image's allocation table names a block that holds no data",
                ));
            }
        }
    }
    Ok(())
}
