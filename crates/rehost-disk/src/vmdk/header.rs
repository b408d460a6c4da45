//! The hosted sparse extent header (Virtual Disk Format 1.1, "Hosted Sparse Extent Header").

use crate::HostFile;
use rehost_core::error::{Ctx, Result};

/// `KDMV`, little-endian.
pub const MAGIC: u32 = 0x564d_444b;
/// `gdOffset` of a streamOptimized header whose grain directory is in the footer.
pub const GD_AT_END: u64 = u64::MAX;
/// flags: the redundant grain directory and tables are in use.
pub const FLAG_REDUNDANT_GT: u32 = 1 << 1;
/// flags: a grain table entry of 1 means a grain of zeros.
pub const FLAG_ZEROED_GTE: u32 = 1 << 2;
/// flags: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// compressAlgorithm: deflate (RFC 1951 inside a zlib stream).
pub const COMPRESSION_DEFLATE: u16 = 1;
/// Largest grain read (QEMU's limit too, and far above the 64 KiB of real images).
const MAX_GRAIN_SECTORS: u64 = 1 << 17;
/// Grain table entries per grain table: 512 in every image VMware makes; QEMU's limit.
const MAX_GTES_PER_GT: u32 = 512;

/// The fields of a SparseExtentHeader.
#[derive(Debug, Clone)]
pub struct SparseExtentHeader {
    /// 1, 2 (zeroed-grain entries) or 3 (streamOptimized).
    pub version: u32,
    /// Feature flags.
    pub flags: u32,
    /// Capacity of the extent in sectors.
    pub capacity: u64,
    /// Sectors in a grain.
    pub grain_size: u64,
    /// Sector of the embedded descriptor (0: none).
    pub descriptor_offset: u64,
    /// Sectors of the embedded descriptor.
    pub descriptor_size: u64,
    /// Entries in a grain table.
    pub num_gtes_per_gt: u32,
    /// Sector of the redundant grain directory.
    pub rgd_offset: u64,
    /// Sector of the grain directory, or all ones (in the footer).
    pub gd_offset: u64,
    /// 0: none; 1: deflate.
    pub compress_algorithm: u16,
}

impl SparseExtentHeader {
    /// Reads and checks the header at `at` in `file`.
    pub fn read(file: &HostFile, ctx: &Ctx, at: u64) -> Result<Self> {
        let mut b = [0u8; 512];
        if file.read_some_at(at, &mut b)? < 512 {
            return Err(ctx.corrupt(at, "file too small for a sparse extent header"));
        }
        let le32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let le64 = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        if le32(0) != MAGIC {
            return Err(ctx.corrupt(at, "no sparse extent header (KDMV) here"));
        }
        let h = SparseExtentHeader {
            version: le32(4),
            flags: le32(8),
            capacity: le64(12),
            grain_size: le64(20),
            descriptor_offset: le64(28),
            descriptor_size: le64(36),
            num_gtes_per_gt: le32(44),
            rgd_offset: le64(48),
            gd_offset: le64(56),
            compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
        };
        if !(1..=3).contains(&h.version) {
            return Err(ctx.unsupported(at + 4, format!("sparse extent version {}", h.version)));
        }
        if h.grain_size == 0 || h.grain_size > MAX_GRAIN_SECTORS || !h.grain_size.is_power_of_two()
        {
            return Err(ctx.corrupt(
                at + 20,
                format!(
                    "grainSize {} is not a power of two up to {MAX_GRAIN_SECTORS} sectors",
                    h.grain_size
                ),
            ));
        }
        if h.num_gtes_per_gt == 0 || h.num_gtes_per_gt > MAX_GTES_PER_GT {
            return Err(ctx.corrupt(
                at + 44,
                format!(
                    "numGTEsPerGT {} is outside 1..={MAX_GTES_PER_GT}",
                    h.num_gtes_per_gt
                ),
            ));
        }
        if h.capacity > (1 << 52) {
            return Err(ctx.corrupt(
                at + 12,
                format!("capacity of {} sectors is beyond any disk", h.capacity),
            ));
        }
        if h.compressed() && h.compress_algorithm != COMPRESSION_DEFLATE {
            return Err(ctx.unsupported(
                at + 77,
                format!("compressAlgorithm {}", h.compress_algorithm),
            ));
        }
        Ok(h)
    }

    /// Whether grains are compressed.
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    /// Sectors one grain table covers.
    pub fn gt_coverage(&self) -> u64 {
        self.grain_size * self.num_gtes_per_gt as u64
    }

    /// Entries in the grain directory.
    pub fn gd_entries(&self) -> u64 {
        self.capacity.div_ceil(self.gt_coverage())
    }
}
