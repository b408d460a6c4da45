//! A hosted sparse extent: the grain directory (GD) points at grain tables (GT) whose
//! entries point at grains; streamOptimized extents compress each grain behind a marker
//! and may keep their GD in the footer (Virtual Disk Format 1.1, "Hosted Sparse Extents"
//! and "Stream-Optimized Compressed Sparse Extents").

use super::header::{SparseExtentHeader, FLAG_REDUNDANT_GT, FLAG_ZEROED_GTE, GD_AT_END};
use crate::tables::{TableCache, UnitCache};
use crate::{HostFile, ReadAt};
use rehost_core::error::{Ctx, Result};

const SECTOR: u64 = 512;
/// Grain table entries kept in memory (each 8 bytes here): 16 MiB.
const GT_CACHE_ENTRIES: usize = 2 << 20;
/// A compressed grain's marker: the grain's first sector (u64) and the compressed size (u32).
const MARKER: u64 = 12;

/// What a grain table entry says of a grain.
pub enum Grain {
    /// Not in this extent: the parent's, or zeros.
    Unallocated,
    /// Zeros.
    Zero,
    /// Stored at this sector of the file.
    At(u64),
}

/// An opened hosted sparse extent.
pub struct SparseExtent {
    pub(super) file: HostFile,
    pub(super) ctx: Ctx,
    pub(super) header: SparseExtentHeader,
    pub(super) gd: Vec<u32>,
    pub(super) gd_offset: u64,
    tables: TableCache,
    units: UnitCache,
}

impl SparseExtent {
    /// Opens the sparse extent in `file`: its header, the footer's when the GD is at the end,
    /// and the GD (the redundant one when the primary is unusable).
    pub fn open(file: HostFile, ctx: &Ctx, notes: &mut Vec<String>) -> Result<Self> {
        let mut header = SparseExtentHeader::read(&file, ctx, 0)?;
        if header.gd_offset == GD_AT_END {
            // The footer: a copy of the header, with the GD's offset, before the
            // end-of-stream marker in the file's last sector.
            let at = file
                .size()
                .checked_sub(2 * SECTOR)
                .ok_or_else(|| ctx.corrupt(0, "streamOptimized extent too small for its footer"))?;
            let footer = SparseExtentHeader::read(&file, ctx, at)?;
            if footer.gd_offset == GD_AT_END {
                return Err(ctx.corrupt(
                    at + 56,
                    "the footer does not say where the grain directory is either",
                ));
            }
            if (footer.capacity, footer.grain_size, footer.num_gtes_per_gt)
                != (header.capacity, header.grain_size, header.num_gtes_per_gt)
            {
                return Err(ctx.corrupt(at, "the footer's geometry differs from the header's"));
            }
            header.gd_offset = footer.gd_offset;
        }
        let primary = read_gd(&file, ctx, &header, header.gd_offset);
        let (gd, gd_offset) = match primary {
            Ok(gd) => (gd, header.gd_offset),
            // A streamOptimized extent keeps no redundant copy (its rgdOffset names room
            // left empty); an all-empty copy would read the whole extent as unallocated.
            Err(e)
                if header.rgd_offset != 0
                    && header.flags & FLAG_REDUNDANT_GT != 0
                    && !header.compressed() =>
            {
                match read_gd(&file, ctx, &header, header.rgd_offset) {
                    Ok(gd) if gd.iter().any(|&e| e != 0) => {
                        notes.push(format!(
                            "{}: the grain directory is unusable ({}); the redundant one was read",
                            file.name(),
                            e.kind
                        ));
                        (gd, header.rgd_offset)
                    }
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(SparseExtent {
            file,
            ctx: ctx.clone(),
            header,
            gd,
            gd_offset,
            tables: TableCache::new(GT_CACHE_ENTRIES),
            units: UnitCache::new(),
        })
    }

    /// Sectors in a grain.
    pub fn grain_sectors(&self) -> u64 {
        self.header.grain_size
    }

    /// Where grain `g` (counted from the extent's start) is.
    pub fn grain(&self, g: u64) -> Result<Grain> {
        let n = self.header.num_gtes_per_gt as u64;
        let Some(&gde) = self.gd.get((g / n) as usize) else {
            return Ok(Grain::Unallocated);
        };
        if gde == 0 {
            return Ok(Grain::Unallocated);
        }
        let gd_at = self.gd_offset * SECTOR + (g / n) * 4;
        let gt_at = gde as u64 * SECTOR;
        if gt_at + n * 4 > self.file.size() {
            return Err(self.ctx.corrupt(gd_at, format!("grain directory entry points at a grain table at sector {gde}, past the end of the file")));
        }
        let gt = self.tables.get(gt_at, || {
            let mut raw = vec![0u8; (n * 4) as usize];
            self.file.read_at(gt_at, &mut raw)?;
            Ok(raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64)
                .collect())
        })?;
        Ok(match gt[(g % n) as usize] {
            0 => Grain::Unallocated,
            1 if self.header.flags & FLAG_ZEROED_GTE != 0 => Grain::Zero,
            s => Grain::At(s),
        })
    }

    /// The grains of the first `grains` stored in this extent (not zeros, not left to a
    /// parent), in order; a grain table the directory leaves out is skipped whole.
    pub fn stored_grains(&self, grains: u64) -> Result<Vec<u64>> {
        let n = (self.header.num_gtes_per_gt as u64).max(1);
        let mut out = Vec::new();
        for (t, &gde) in self.gd.iter().enumerate() {
            let first = t as u64 * n;
            if first >= grains {
                break;
            }
            if gde == 0 {
                continue;
            }
            for g in first..(first + n).min(grains) {
                if let Grain::At(_) = self.grain(g)? {
                    out.push(g);
                }
            }
        }
        Ok(out)
    }

    /// Reads `buf` from grain `g` stored at `sector`, `within` bytes into the grain.
    pub fn read_grain(&self, g: u64, sector: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        let grain_bytes = self.header.grain_size * SECTOR;
        let at = sector * SECTOR;
        if !self.header.compressed() {
            if at + within + buf.len() as u64 > self.file.size() {
                return Err(self.ctx.corrupt(
                    at,
                    format!(
                        "grain {g} at sector {sector} lies past the end of the file ({} bytes)",
                        self.file.size()
                    ),
                ));
            }
            return self.file.read_at(at + within, buf);
        }
        let unit = self.units.get(at, || {
            let mut m = [0u8; MARKER as usize];
            if self.file.read_some_at(at, &mut m)? < m.len() {
                return Err(self.ctx.corrupt(
                    at,
                    format!("grain {g}'s marker lies past the end of the file"),
                ));
            }
            let lba = u64::from_le_bytes(m[..8].try_into().unwrap_or_default());
            let size = u32::from_le_bytes([m[8], m[9], m[10], m[11]]) as u64;
            if lba != g * self.header.grain_size {
                return Err(self.ctx.corrupt(
                    at,
                    format!(
                        "grain {g}'s marker says sector {lba}, not {}",
                        g * self.header.grain_size
                    ),
                ));
            }
            // Deflate never grows data by more than a few bytes per 16 KiB block.
            if size == 0
                || size > grain_bytes + grain_bytes / 8 + 1024
                || at + MARKER + size > self.file.size()
            {
                return Err(self.ctx.corrupt(
                    at + 8,
                    format!("grain {g}'s compressed size {size} does not fit a grain in the file"),
                ));
            }
            let mut input = vec![0u8; size as usize];
            self.file.read_at(at + MARKER, &mut input)?;
            let mut out = vec![0u8; grain_bytes as usize];
            // The last grain of an extent whose capacity is not a multiple of the grain
            // size may inflate to less than a grain.
            crate::inflate::deflate(&input, &mut out, true, false, &self.ctx, at + MARKER)?;
            Ok(out)
        })?;
        let from = within as usize;
        buf.copy_from_slice(&unit[from..from + buf.len()]);
        Ok(())
    }
}

/// Reads the grain directory at `sector`: its entries, each 0 or a grain table inside the file.
pub(super) fn read_gd(
    file: &HostFile,
    ctx: &Ctx,
    h: &SparseExtentHeader,
    sector: u64,
) -> Result<Vec<u32>> {
    let count = h.gd_entries();
    let at = sector.checked_mul(SECTOR);
    let bytes = count * 4;
    if sector == 0
        || at
            .and_then(|a| a.checked_add(bytes))
            .is_none_or(|e| e > file.size())
    {
        return Err(ctx.corrupt(
            56,
            format!("grain directory at sector {sector} ({count} entries) is not inside the file"),
        ));
    }
    let at = sector * SECTOR;
    let mut raw = vec![0u8; bytes as usize];
    file.read_at(at, &mut raw)?;
    let gt_bytes = h.num_gtes_per_gt as u64 * 4;
    let mut gd = Vec::with_capacity(count as usize);
    for (i, c) in raw.chunks_exact(4).enumerate() {
        let e = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if e != 0 && e as u64 * SECTOR + gt_bytes > file.size() {
            return Err(ctx.corrupt(
                at + i as u64 * 4,
                format!("grain directory entry {i} points at sector {e}, past the end of the file"),
            ));
        }
        gd.push(e);
    }
    Ok(gd)
}
