//! A window onto part of a device: how a partition is read.

use super::ReadAt;
use crate::error::{Ctx, Result};
use std::sync::Arc;

/// `size` bytes of `inner` starting at `offset`, read as a device of its own.
#[derive(Clone)]
pub struct Slice {
    inner: Arc<dyn ReadAt>,
    offset: u64,
    size: u64,
    ctx: Ctx,
}

impl Slice {
    /// A window of `size` bytes at `offset` of `inner`. The window must lie inside `inner`;
    /// `ctx` names the image and layer in errors.
    pub fn new(inner: Arc<dyn ReadAt>, offset: u64, size: u64, ctx: Ctx) -> Result<Self> {
        let end = offset.checked_add(size);
        if end.is_none_or(|e| e > inner.size()) {
            return Err(ctx.corrupt(
                offset,
                format!(
                    "a window of {size:#x} bytes at {offset:#x} reaches past the end of the disk ({:#x} bytes)",
                    inner.size()
                ),
            ));
        }
        Ok(Slice {
            inner,
            offset,
            size,
            ctx,
        })
    }

    /// Where the window starts in the device below.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl ReadAt for Slice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !super::in_bounds(offset, buf.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, self.size));
        }
        self.inner.read_at(self.offset + offset, buf)
    }
    fn size(&self) -> u64 {
        self.size
    }
}
