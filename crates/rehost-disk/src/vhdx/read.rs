//! Reading the virtual disk: payload blocks by their BAT state, sector bitmaps of partially
//! present blocks, the parent for what a differencing disk does not hold.
//!
//! A read is cut into runs: consecutive blocks stored back to back in the file become one
//! read of the file, consecutive blocks taken from the parent one read of the parent, and
//! consecutive zero blocks one fill.

use super::bat::{self, Entry};
use super::Vhdx;
use crate::read_parent;
use rehost_core::error::Result;

const MIB: u64 = 1 << 20;

/// Where a run of the read comes from.
#[derive(Debug, Clone, Copy)]
enum From {
    /// The file, from this offset.
    File(u64),
    /// Zeros.
    Zero,
    /// The parent, from this virtual offset.
    Parent(u64),
}

/// A run of the read not yet issued: `len` bytes of the buffer from `at`.
#[derive(Debug, Clone, Copy)]
struct Run {
    from: From,
    at: usize,
    len: usize,
}

impl Run {
    /// Whether `from` continues this run directly.
    fn continues(&self, from: From) -> bool {
        let len = self.len as u64;
        match (self.from, from) {
            (From::File(a), From::File(b)) => a.checked_add(len) == Some(b),
            (From::Zero, From::Zero) => true,
            (From::Parent(a), From::Parent(b)) => a.checked_add(len) == Some(b),
            _ => false,
        }
    }
}

impl Vhdx {
    /// Reads `buf` at virtual offset `offset` (checked against the virtual size).
    pub(super) fn read_virtual(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let bs = self.bat.block_size;
        let mut run: Option<Run> = None;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (block, within) = (pos / bs, pos % bs);
            let n = ((bs - within) as usize).min(buf.len() - done);
            let entry = self.bat.payload(block).ok_or_else(|| {
                self.ctx
                    .out_of_bounds(pos, n as u64, self.info.virtual_size)
            })?;
            let from = match entry.state {
                bat::FULLY_PRESENT => From::File(self.payload_at(&entry, within, n)?),
                bat::NOT_PRESENT if self.parent.is_some() => From::Parent(pos),
                bat::NOT_PRESENT
                | bat::UNDEFINED
                | bat::ZERO
                | bat::UNMAPPED
                | bat::UNMAPPED_V095 => From::Zero,
                bat::PARTIALLY_PRESENT => {
                    if let Some(r) = run.take() {
                        self.issue(r, buf)?;
                    }
                    self.read_partial(block, &entry, within, &mut buf[done..done + n])?;
                    done += n;
                    continue;
                }
                s => {
                    return Err(self.ctx.corrupt(
                        entry.entry_at,
                        format!("BAT entry {} has the reserved state {s}", entry.index),
                    ))
                }
            };
            match &mut run {
                Some(r) if r.continues(from) => r.len += n,
                _ => {
                    if let Some(r) = run.replace(Run {
                        from,
                        at: done,
                        len: n,
                    }) {
                        self.issue(r, buf)?;
                    }
                }
            }
            done += n;
        }
        match run {
            Some(r) => self.issue(r, buf),
            None => Ok(()),
        }
    }

    fn issue(&self, r: Run, buf: &mut [u8]) -> Result<()> {
        let out = &mut buf[r.at..r.at + r.len];
        match (r.from, &self.parent) {
            (From::File(at), _) => self.src.read(at, out),
            (From::Parent(at), Some(p)) => read_parent(p, at, out),
            (From::Zero, _) | (From::Parent(_), None) => {
                out.fill(0);
                Ok(())
            }
        }
    }

    /// The file offset of `len` bytes at `within` of the block of `entry`, checked to lie
    /// inside the file after the header section.
    fn payload_at(&self, entry: &Entry, within: u64, len: usize) -> Result<u64> {
        let at = entry.file_offset;
        let start = at.checked_add(within);
        let end = start.and_then(|s| s.checked_add(len as u64));
        match (start, end) {
            (Some(start), Some(end)) if at >= MIB && end <= self.src.size() => Ok(start),
            _ => Err(self.ctx.corrupt(
                entry.entry_at,
                format!(
                    "BAT entry {} points at file offset {at:#x}, {}",
                    entry.index,
                    if at < MIB {
                        "inside the header section".to_string()
                    } else {
                        format!("past the end of the file ({} bytes)", self.src.size())
                    }
                ),
            )),
        }
    }

    /// A partially present block: sectors whose bit is set in the chunk's sector bitmap come
    /// from this file, the others from the parent. Bit 0 of byte 0 is the chunk's first
    /// sector.
    fn read_partial(&self, block: u64, entry: &Entry, within: u64, buf: &mut [u8]) -> Result<()> {
        let Some(parent) = &self.parent else {
            return Err(self.ctx.corrupt(
                entry.entry_at,
                format!(
                    "BAT entry {} marks block {block} partially present in a disk without parent",
                    entry.index
                ),
            ));
        };
        let sb = self.bat.bitmap(block).ok_or_else(|| {
            self.ctx.corrupt(
                entry.entry_at,
                format!("no sector bitmap entry for block {block}"),
            )
        })?;
        if sb.state != bat::SB_PRESENT {
            return Err(self.ctx.corrupt(
                sb.entry_at,
                format!(
                    "sector bitmap entry {} is not present (state {}) for the partially \
                     present block {block}",
                    sb.index, sb.state
                ),
            ));
        }
        if sb.file_offset < MIB
            || sb
                .file_offset
                .checked_add(MIB)
                .is_none_or(|e| e > self.src.size())
        {
            return Err(self.ctx.corrupt(
                sb.entry_at,
                format!(
                    "sector bitmap entry {} points at file offset {:#x}, outside the file",
                    sb.index, sb.file_offset
                ),
            ));
        }
        let ss = self.logical_sector_size;
        let first = self.bat.sector_in_chunk(block, ss) + within / ss;
        let last = self.bat.sector_in_chunk(block, ss) + (within + buf.len() as u64 - 1) / ss;
        let lo = first / 8;
        // At most block_size / sector size / 8 + 1 bytes (64 KiB).
        let mut bits = vec![0u8; (last / 8 - lo + 1) as usize];
        self.src.read(sb.file_offset + lo, &mut bits)?;
        // `s` is a sector number in the chunk, from `first` to `last`.
        let present = |s: u64| {
            bits.get((s / 8 - lo) as usize)
                .is_some_and(|b| b & (1 << (s % 8)) != 0)
        };
        let block_start = block * self.bat.block_size;
        let chunk_base = first - within / ss; // chunk sector of the block's first sector
        let end = within + buf.len() as u64;
        let mut pos = within;
        while pos < end {
            let s = chunk_base + pos / ss;
            let here = present(s);
            let mut e = s + 1;
            while e <= last && present(e) == here {
                e += 1;
            }
            let stop = ((e - chunk_base) * ss).min(end);
            let out = &mut buf[(pos - within) as usize..(stop - within) as usize];
            if here {
                let at = self.payload_at(entry, pos, out.len())?;
                self.src.read(at, out)?;
            } else {
                read_parent(parent, block_start + pos, out)?;
            }
            pos = stop;
        }
        Ok(())
    }
}
