//! The block allocation table: payload entries interleaved with sector bitmap entries.

/// Payload block states (section 2.5.1.1).
pub const NOT_PRESENT: u64 = 0;
/// Contents undefined: read as zeros.
pub const UNDEFINED: u64 = 1;
/// Contents are zeros.
pub const ZERO: u64 = 2;
/// Unmapped by the guest: read as zeros.
pub const UNMAPPED: u64 = 3;
/// Stored in this file.
pub const FULLY_PRESENT: u64 = 6;
/// Partly in this file, per the sector bitmap (differencing only).
pub const PARTIALLY_PRESENT: u64 = 7;
/// Sector bitmap block state: stored in this file.
pub const SB_PRESENT: u64 = 6;

/// The table's geometry.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Payload blocks per sector bitmap block.
    pub chunk_ratio: u64,
    /// Payload blocks of the virtual disk.
    pub payload_blocks: u64,
    /// Entries the table must hold.
    pub entries: u64,
}

impl Geometry {
    /// The geometry of a disk of `virtual_size` bytes in blocks of `block_size`.
    pub fn new(virtual_size: u64, block_size: u32, logical_sector: u32, has_parent: bool) -> Self {
        let chunk_ratio = ((1u64 << 23) * logical_sector as u64) / block_size as u64;
        let payload_blocks = virtual_size.div_ceil(block_size as u64);
        let bitmap_blocks = payload_blocks.div_ceil(chunk_ratio);
        let entries = if has_parent {
            bitmap_blocks * (chunk_ratio + 1)
        } else {
            payload_blocks + (payload_blocks.saturating_sub(1)) / chunk_ratio
        };
        Geometry {
            chunk_ratio,
            payload_blocks,
            entries,
        }
    }

    /// Index of the entry of payload block `block`.
    pub fn payload_index(&self, block: u64) -> usize {
        (block + block / self.chunk_ratio) as usize
    }

    /// Index of the entry of the sector bitmap block covering payload block `block`.
    pub fn bitmap_index(&self, block: u64) -> usize {
        ((block / self.chunk_ratio) * (self.chunk_ratio + 1) + self.chunk_ratio) as usize
    }
}

/// The state bits of an entry.
pub fn state(entry: u64) -> u64 {
    entry & 7
}

/// The file offset an entry points at.
pub fn file_offset(entry: u64) -> u64 {
    (entry >> 20) << 20
}
