//! The copy into a new image: the new file with its background flushes ([`Out`]), the
//! source's blocks read on a thread of their own ([`each_block`]), holes left where the
//! bytes are zeros, and small writes gathered into few.

use crate::ReadAt;
use rehost_core::error::{Ctx, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

/// Bytes written between two flushes started in the background.
const FLUSH_EVERY: u64 = 128 << 20;

/// The new image being written: its file, the bytes written so far, and a flush of what
/// was written before running on a thread of its own, so that the disk writes while the
/// source is read and the last flush before the read-back has little left to do.
pub(super) struct Out<'a> {
    pub(super) file: File,
    pub(super) ctx: &'a Ctx,
    pub(super) written: u64,
    unflushed: u64,
    flushing: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl<'a> Out<'a> {
    /// The new image's file, nothing written yet; `ctx` names it in errors.
    pub(super) fn new(file: File, ctx: &'a Ctx) -> Self {
        Out {
            file,
            ctx,
            written: 0,
            unflushed: 0,
            flushing: None,
        }
    }

    pub(super) fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
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
    pub(super) fn wait_flush(&mut self) -> Result<()> {
        match self.flushing.take().map(|f| f.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(self.ctx.io(0, e)),
            Some(Err(_)) => Err(self
                .ctx
                .invalid("the background flush of the new image failed")),
        }
    }

    /// Flushes the whole file (after the background flush, if one runs).
    pub(super) fn flush_all(&mut self) -> Result<()> {
        self.wait_flush()?;
        self.file.sync_all().map_err(|e| self.ctx.io(0, e))
    }

    pub(super) fn set_len(&self, len: u64) -> Result<()> {
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
pub(super) fn is_zero(b: &[u8]) -> bool {
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
pub(super) fn each_block(
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
pub(super) fn write_sparse(o: &mut Out, at: u64, data: &[u8]) -> Result<()> {
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
pub(super) struct Gather {
    at: u64,
    buf: Vec<u8>,
}

/// The most bytes [`Gather`] holds before it writes them.
const GATHER: usize = 4 << 20;

impl Gather {
    pub(super) fn new() -> Self {
        Gather {
            at: 0,
            buf: Vec::with_capacity(GATHER),
        }
    }

    /// Adds `data` at `at` in the new file, writing what was gathered first when `data`
    /// does not follow it or there would be too much.
    pub(super) fn put(&mut self, o: &mut Out, at: u64, data: &[u8]) -> Result<()> {
        if self.at + self.buf.len() as u64 != at || self.buf.len() + data.len() > GATHER {
            self.flush(o)?;
            self.at = at;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Writes what was gathered.
    pub(super) fn flush(&mut self, o: &mut Out) -> Result<()> {
        if !self.buf.is_empty() {
            o.write(self.at, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}
