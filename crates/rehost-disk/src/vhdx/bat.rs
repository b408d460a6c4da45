//! The block allocation table (MS-VHDX 2.5): payload entries interleaved with sector bitmap
//! entries.
//!
//! A chunk is 2^23 logical sectors; the chunk ratio is the number of payload blocks in a
//! chunk. Every `chunk_ratio` payload entries are followed by the entry of the chunk's sector
//! bitmap block. An entry is 64 bits: the state in bits 0-2, FileOffsetMB in bits 20-63.

use super::region::Region;
use super::source::Source;
use rehost_core::error::{Ctx, Result};

/// Payload block state: not in this file (zeros, or the parent's data when differencing).
pub(super) const NOT_PRESENT: u8 = 0;
/// Payload block state: contents undefined (read as zeros).
pub(super) const UNDEFINED: u8 = 1;
/// Payload block state: zeros.
pub(super) const ZERO: u8 = 2;
/// Payload block state: unmapped by the guest (read as zeros).
pub(super) const UNMAPPED: u8 = 3;
/// Payload block state of draft 0.95 of the format for unmapped blocks (read as zeros).
pub(super) const UNMAPPED_V095: u8 = 5;
/// Payload block state: all of the block is in this file.
pub(super) const FULLY_PRESENT: u8 = 6;
/// Payload block state: some sectors in this file, per the sector bitmap (differencing).
pub(super) const PARTIALLY_PRESENT: u8 = 7;
/// Sector bitmap block state: the bitmap block is in this file.
pub(super) const SB_PRESENT: u8 = 6;

/// Sectors described by one sector bitmap block.
const CHUNK_SECTORS: u64 = 1 << 23;

/// One BAT entry, decoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// Index in the table (for messages).
    pub index: u64,
    /// File offset of the table entry (for messages).
    pub entry_at: u64,
    /// State (low three bits).
    pub state: u8,
    /// File offset of the block (FileOffsetMB times 1 MiB; 44 bits, so it cannot overflow).
    pub file_offset: u64,
}

/// The table, held in memory.
pub(super) struct Bat {
    entries: Vec<u64>,
    offset: u64,
    /// Payload blocks per chunk.
    pub chunk_ratio: u64,
    /// Payload block size.
    pub block_size: u64,
    /// Payload blocks of the virtual disk.
    pub payload_blocks: u64,
}

impl Bat {
    /// Reads the table from `region` for a disk of `virtual_size` bytes.
    pub fn read(
        src: &Source,
        region: Region,
        virtual_size: u64,
        block_size: u32,
        logical_sector_size: u32,
        has_parent: bool,
        ctx: &Ctx,
    ) -> Result<Self> {
        let block_size = u64::from(block_size);
        // Both sizes are checked powers of two: the ratio is at least 16 (4096-byte blocks
        // are refused) and never zero.
        let chunk_ratio = (CHUNK_SECTORS * u64::from(logical_sector_size)) / block_size;
        let payload_blocks = virtual_size.div_ceil(block_size);
        let bitmap_blocks = payload_blocks.div_ceil(chunk_ratio);
        let count = if has_parent {
            bitmap_blocks * (chunk_ratio + 1)
        } else {
            payload_blocks + payload_blocks.saturating_sub(1) / chunk_ratio
        };
        // At most 64 TiB / 1 MiB entries: no overflow; the region bounds the allocation.
        let bytes = count * 8;
        if bytes > region.length {
            return Err(ctx.corrupt(
                region.offset,
                format!(
                    "the BAT region ({} bytes) cannot hold the {count} entries of a {virtual_size}-byte disk in {block_size}-byte blocks",
                    region.length
                ),
            ));
        }
        let mut raw = vec![0u8; bytes as usize];
        src.read(region.offset, &mut raw)?;
        let entries = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        Ok(Bat {
            entries,
            offset: region.offset,
            chunk_ratio,
            block_size,
            payload_blocks,
        })
    }

    /// File offset of the table.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Entries in the table.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The raw 64-bit entry at `index`.
    pub fn raw(&self, index: u64) -> Option<u64> {
        self.entries.get(usize::try_from(index).ok()?).copied()
    }

    /// Index in the table of payload block `block`'s entry.
    pub fn payload_index(&self, block: u64) -> u64 {
        block + block / self.chunk_ratio
    }

    /// Index in the table of the sector bitmap entry of the chunk holding block `block`.
    pub fn bitmap_index(&self, block: u64) -> u64 {
        (block / self.chunk_ratio) * (self.chunk_ratio + 1) + self.chunk_ratio
    }

    fn entry(&self, index: u64) -> Option<Entry> {
        let raw = *self.entries.get(usize::try_from(index).ok()?)?;
        Some(Entry {
            index,
            entry_at: self.offset + index * 8,
            state: (raw & 7) as u8,
            file_offset: (raw >> 20) << 20,
        })
    }

    /// The entry of payload block `block` (`None` past the end of the disk).
    pub fn payload(&self, block: u64) -> Option<Entry> {
        if block >= self.payload_blocks {
            return None;
        }
        self.entry(self.payload_index(block))
    }

    /// The entry of the sector bitmap block of the chunk holding payload block `block`.
    pub fn bitmap(&self, block: u64) -> Option<Entry> {
        self.entry(self.bitmap_index(block))
    }

    /// Number of the first logical sector of payload block `block` inside its chunk.
    pub fn sector_in_chunk(&self, block: u64, logical_sector_size: u64) -> u64 {
        (block % self.chunk_ratio) * (self.block_size / logical_sector_size)
    }
}
