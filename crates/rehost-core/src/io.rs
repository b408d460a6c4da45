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
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn size(&self) -> u64 {
        (**self).size()
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
