//! The one I/O shape: positional, shared reads ([`ReadAt`]) and writes ([`WriteAt`]), with
//! adapters for crates that want `Read + Seek` ([`Cursor`], [`CursorMut`]), a window onto
//! part of a device ([`Slice`]) and a device in memory ([`Memory`]).

mod adapter;
mod memory;
mod slice;

pub use adapter::{Cursor, CursorMut};
pub use memory::Memory;
pub use slice::Slice;

use crate::error::Result;
use std::sync::Arc;

/// Positional, shared reads: the one I/O shape of rehost.
///
/// `read_at` fills all of `buf` from byte `offset`, or fails; a read that reaches past
/// [`ReadAt::size`] fails with [`crate::ErrorKind::OutOfBounds`]. There is no cursor, so one
/// value serves any number of threads.
pub trait ReadAt: Send + Sync {
    /// Reads exactly `buf.len()` bytes starting at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// The size of the device in bytes.
    fn size(&self) -> u64;

    /// The parts of the device that may hold bytes other than zeros, as sorted, disjoint
    /// `(offset, length)` ranges; `None` when the device cannot tell (then any byte may).
    /// A container answers from its allocation table, so that a copy of a mostly empty
    /// disk skips what was never written without reading it.
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        Ok(None)
    }

    /// Reads like [`ReadAt::read_at`], for bytes the caller reads once (a copy of the whole
    /// disk into a new image): a cache below serves them if it holds them but does not keep
    /// them, so that a copy neither evicts what is worth keeping nor pays for keeping what
    /// is not.
    fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read_at(offset, buf)
    }
}

/// `ranges` sorted, with overlapping and touching ranges joined.
pub fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|r| r.1 > 0);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (o, l) in ranges {
        match out.last_mut() {
            Some(last) if o <= last.0.saturating_add(last.1) => {
                let end = last.0.saturating_add(last.1).max(o.saturating_add(l));
                last.1 = end - last.0;
            }
            _ => out.push((o, l)),
        }
    }
    out
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_once(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        (**self).allocated()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_once(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        (**self).allocated()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_once(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        (**self).allocated()
    }
}

/// Positional writes, the counterpart of [`ReadAt`]: `&self`, so one device serves the
/// many readers and the one writer of a fix.
pub trait WriteAt: ReadAt {
    /// Writes all of `data` at `offset`; a write reaching past [`ReadAt::size`] fails.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
}

impl<T: WriteAt + ?Sized> WriteAt for Arc<T> {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        (**self).write_at(offset, data)
    }
}

/// Checks that `len` bytes at `offset` lie inside a device of `size` bytes.
pub fn in_bounds(offset: u64, len: usize, size: u64) -> bool {
    offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= size)
}
