//! Host files: the bytes of an image file (or block device) as positional reads, counted.

use rehost_core::error::{Ctx, Layer, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of what was read from host files: the figure `--stats` prints.
#[derive(Debug, Default)]
pub struct IoStats {
    bytes: AtomicU64,
    reads: AtomicU64,
}

impl IoStats {
    /// New counters at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(IoStats::default())
    }

    /// Records one read of `n` bytes.
    pub fn record(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes read from host files so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Read operations issued to host files so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

enum Backing {
    Mapped(memmap2::Mmap),
    Pread(File),
}

/// An image file or block device opened read-only, read by position.
///
/// Raw images are memory-mapped; container files are read with `pread`. Either way each
/// read is counted in the shared [`IoStats`].
pub struct HostFile {
    ctx: Ctx,
    backing: Backing,
    size: u64,
    stats: Arc<IoStats>,
}

impl HostFile {
    /// Opens `path` read-only. With `map`, the file is memory-mapped (raw images).
    pub fn open(path: &Path, map: bool, stats: Arc<IoStats>) -> Result<Self> {
        let ctx = Ctx::new(path.display().to_string(), Layer::File);
        let open_error = |e: std::io::Error| ctx.error(rehost_core::Location::None, e.into());
        let file = File::open(path).map_err(open_error)?;
        let size = device_size(&file).map_err(open_error)?;
        let backing = if map && size > 0 {
            match map_read_only(&file, size) {
                Ok(m) => Backing::Mapped(m),
                Err(_) => Backing::Pread(file),
            }
        } else {
            Backing::Pread(file)
        };
        Ok(HostFile {
            ctx,
            backing,
            size,
            stats,
        })
    }

    /// The path, as given, for messages.
    pub fn name(&self) -> &str {
        &self.ctx.image
    }

    /// The error context of this file (image name, file layer).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The counters this file adds to.
    pub fn stats(&self) -> &Arc<IoStats> {
        &self.stats
    }

    /// Reads up to `buf.len()` bytes at `offset`, returning how many were available before
    /// the end of the file.
    pub fn read_some_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let n = (self.size - offset).min(buf.len() as u64) as usize;
        self.read_at_exact(offset, &mut buf[..n])?;
        Ok(n)
    }

    fn read_at_exact(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !super::in_bounds(offset, buf.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, self.size));
        }
        match &self.backing {
            Backing::Mapped(m) => {
                let start = offset as usize;
                buf.copy_from_slice(&m[start..start + buf.len()]);
            }
            Backing::Pread(f) => f
                .read_exact_at(buf, offset)
                .map_err(|e| self.ctx.io(offset, e))?,
        }
        self.stats.record(buf.len() as u64);
        Ok(())
    }
}

impl super::ReadAt for HostFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read_at_exact(offset, buf)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// The size of a regular file or a block device (whose metadata length is 0).
fn device_size(file: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    let end = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(end)
}

/// The one place rehost maps memory.
///
/// Safety: the map is read-only and private to this process. Another process truncating the
/// image while it is read would fault; rehost documents that images must not be modified
/// while they are analysed, as every reader of a live file must.
/// The length is given because a block device's metadata says 0.
#[allow(unsafe_code)]
fn map_read_only(file: &File, len: u64) -> std::io::Result<memmap2::Mmap> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: see above; the mapping never outlives `HostFile`, which owns it.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}
