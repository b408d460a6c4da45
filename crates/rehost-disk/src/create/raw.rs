//! A new raw image: the disk's bytes at their own offsets, holes where it reads as zeros.

use super::{each_block, write_sparse, Blocks, Out};
use crate::ReadAt;
use rehost_core::error::Result;

/// The granularity of holes.
pub(super) const BLOCK: u64 = 1 << 20;

/// Writes `src` into `o` as a raw image; returns the blocks with data and the
/// number of blocks.
pub(super) fn write(src: &dyn ReadAt, o: &mut Out) -> Result<Blocks> {
    o.set_len(src.size())?;
    each_block(src, BLOCK, |k, data| write_sparse(o, k * BLOCK, data))
}
