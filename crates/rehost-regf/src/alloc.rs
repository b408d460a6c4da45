//! The cell allocator of a hive held for editing: the hive bins are walked once, their free
//! cells indexed by offset (to merge neighbours when a cell is freed) and by size (to reuse
//! the smallest free cell that fits); when none fits, a new hive bin is appended.

use super::base::{put_u32, u32_at, BASE};
use crate::Error;
use std::collections::{BTreeMap, BTreeSet};

/// Size of a hive bin header.
pub const HBIN_HEADER: u32 = 32;
/// Hive bins are multiples of this.
pub const HBIN_ALIGN: u32 = 4096;
/// Most hive bins data an edited hive may grow to (Windows' own limit for stable storage is
/// 2 GiB).
pub const MAX_BINS: u32 = 0x7FFF_F000;

type R<T> = Result<T, Error>;

fn err<T>(offset: u32, what: impl Into<String>) -> R<T> {
    Err(Error::Cell {
        offset,
        what: what.into(),
    })
}

/// Where the cells of a hive's bins start ([`Bins::cell_starts`]).
pub struct CellStarts {
    bits: Vec<u64>,
}

impl CellStarts {
    /// Whether a cell of the bins starts at `cell`.
    pub fn contains(&self, cell: u32) -> bool {
        let unit = cell as usize / 8;
        cell % 8 == 0
            && self
                .bits
                .get(unit / 64)
                .is_some_and(|w| w >> (unit % 64) & 1 == 1)
    }
}

/// A whole hive file in memory with its free cells indexed.
pub struct Bins {
    /// The hive file: base block, then the hive bins.
    pub bytes: Vec<u8>,
    /// Size of the hive bins data.
    pub bins_size: u32,
    free: BTreeMap<u32, u32>,
    by_size: BTreeSet<(u32, u32)>,
    /// FILETIME written into new hive bins.
    pub now: u64,
}

impl Bins {
    /// Whether `cell` lies inside a free cell (at its start or within it): a cell that a
    /// damaged hive uses there would be handed out by the allocator.
    pub fn in_free(&self, cell: u32) -> bool {
        self.free
            .range(..=cell)
            .next_back()
            .is_some_and(|(&start, &len)| cell < start.saturating_add(len))
    }

    /// Where the hive bins' cells start, as the bins are now: one bit per 8 bytes of the
    /// bins data (every cell is 8-aligned), set at each cell's first byte, allocated or free.
    /// The walk stops at the first bin or cell that does not chain (the editor never leaves
    /// one; `load` refuses a hive with one).
    pub fn cell_starts(&self) -> CellStarts {
        let mut bits = vec![0u64; (self.bins_size as usize / 8).div_ceil(64)];
        let d = &self.bytes[BASE..];
        let mut pos = 0u32;
        'bins: while pos < self.bins_size {
            let size = u32_at(d, pos as usize + 8);
            if size < HBIN_ALIGN || size > self.bins_size - pos {
                break;
            }
            let end = pos + size;
            let mut cell = pos + HBIN_HEADER;
            while cell < end {
                let len = (u32_at(d, cell as usize) as i32).unsigned_abs();
                if len < 8 || len % 8 != 0 || len > end - cell {
                    break 'bins;
                }
                let unit = cell as usize / 8;
                bits[unit / 64] |= 1 << (unit % 64);
                cell += len;
            }
            pos = end;
        }
        CellStarts { bits }
    }

    /// Walks the hive bins of `bytes` (a whole hive file) and indexes the free cells.
    /// Every bin and cell boundary is checked: a hive whose bins do not chain exactly is
    /// refused, since writing into it could overwrite live data.
    pub fn load(mut bytes: Vec<u8>, now: u64) -> R<Bins> {
        if bytes.len() < BASE || &bytes[..4] != b"regf" {
            return err(0, "not a hive: no regf base block");
        }
        let bins_size = u32_at(&bytes, 40);
        if bins_size % HBIN_ALIGN != 0 || bins_size > MAX_BINS {
            return err(
                0,
                format!("hive bins data size {bins_size:#x} is not valid"),
            );
        }
        if BASE + bins_size as usize > bytes.len() {
            return err(
                0,
                format!(
                    "the base block gives {bins_size:#x} bytes of hive bins, the file holds {:#x}",
                    bytes.len() - BASE
                ),
            );
        }
        bytes.truncate(BASE + bins_size as usize);
        let mut free = Vec::new();
        let d = &bytes[BASE..];
        let mut pos = 0u32;
        while pos < bins_size {
            let p = pos as usize;
            if &d[p..p + 4] != b"hbin" || u32_at(d, p + 4) != pos {
                return err(pos, "hive bin header expected here");
            }
            let size = u32_at(d, p + 8);
            if size < HBIN_ALIGN || size % HBIN_ALIGN != 0 || size > bins_size - pos {
                return err(pos, format!("hive bin of size {size:#x}"));
            }
            let end = pos + size;
            let mut cell = pos + HBIN_HEADER;
            while cell < end {
                let raw = u32_at(d, cell as usize) as i32;
                let len = raw.unsigned_abs();
                if len < 8 || len % 8 != 0 || len > end - cell {
                    return err(cell, format!("cell size {raw} does not fit its hive bin"));
                }
                if raw > 0 {
                    free.push((cell, len));
                }
                cell += len;
            }
            pos = end;
        }
        let mut bins = Bins {
            bytes,
            bins_size,
            free: BTreeMap::new(),
            by_size: BTreeSet::new(),
            now,
        };
        for (o, s) in free {
            bins.insert_free(o, s);
        }
        Ok(bins)
    }

    fn insert_free(&mut self, offset: u32, size: u32) {
        self.free.insert(offset, size);
        self.by_size.insert((size, offset));
    }

    fn remove_free(&mut self, offset: u32) -> Option<u32> {
        let size = self.free.remove(&offset)?;
        self.by_size.remove(&(size, offset));
        Some(size)
    }

    fn set_size_field(&mut self, offset: u32, size: i32) {
        put_u32(&mut self.bytes, BASE + offset as usize, size as u32);
    }

    /// Total size of the free cells, in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().map(|s| *s as u64).sum()
    }

    /// Allocates a cell holding `len` bytes of data, zeroed; returns its offset.
    pub fn alloc(&mut self, len: usize) -> R<u32> {
        let need = len
            .checked_add(4 + 7)
            .map(|n| n & !7)
            .filter(|n| *n <= (MAX_BINS - HBIN_HEADER) as usize)
            .ok_or(Error::Cell {
                offset: self.bins_size,
                what: format!("a cell of {len} bytes is larger than a hive allows"),
            })? as u32;
        let found = self.by_size.range((need, 0)..).next().copied();
        let (size, offset) = match found {
            Some(f) => f,
            None => self.append_bin(need)?,
        };
        self.remove_free(offset);
        let mut taken = size;
        if size - need >= 8 {
            taken = need;
            self.set_size_field(offset + need, (size - need) as i32);
            self.insert_free(offset + need, size - need);
        }
        self.set_size_field(offset, -(taken as i32));
        let start = BASE + offset as usize + 4;
        self.bytes[start..start + taken as usize - 4].fill(0);
        Ok(offset)
    }

    /// Appends a hive bin large enough for a cell of `need` bytes; returns its free cell.
    fn append_bin(&mut self, need: u32) -> R<(u32, u32)> {
        let size = (need + HBIN_HEADER).div_ceil(HBIN_ALIGN) * HBIN_ALIGN;
        let pos = self.bins_size;
        if size > MAX_BINS - pos {
            return err(pos, "the hive would grow past 2 GiB");
        }
        let start = BASE + pos as usize;
        self.bytes.resize(start + size as usize, 0);
        let h = &mut self.bytes[start..start + HBIN_HEADER as usize];
        h[..4].copy_from_slice(b"hbin");
        put_u32(h, 4, pos);
        put_u32(h, 8, size);
        h[20..28].copy_from_slice(&self.now.to_le_bytes());
        self.bins_size = pos + size;
        let cell = pos + HBIN_HEADER;
        self.set_size_field(cell, (size - HBIN_HEADER) as i32);
        self.insert_free(cell, size - HBIN_HEADER);
        Ok((size - HBIN_HEADER, cell))
    }

    /// Frees the allocated cell at `offset`, merging it with free neighbours in its bin
    /// (a cell never starts at a bin's first byte, so neighbours that touch share a bin).
    pub fn free(&mut self, offset: u32) -> R<()> {
        let o = offset as usize;
        if offset % 8 != 0 || o + 4 > self.bins_size as usize {
            return err(offset, "freeing a cell outside the hive bins");
        }
        let raw = u32_at(&self.bytes, BASE + o) as i32;
        if raw >= 0 {
            return err(offset, "freeing a cell that is already free");
        }
        let mut start = offset;
        let mut size = raw.unsigned_abs();
        if let Some(next) = self.remove_free(offset + size) {
            size += next;
        }
        let before = self.free.range(..offset).next_back().map(|(o, s)| (*o, *s));
        if let Some((po, ps)) = before {
            if po + ps == offset {
                self.remove_free(po);
                start = po;
                size += ps;
            }
        }
        self.set_size_field(start, size as i32);
        self.insert_free(start, size);
        Ok(())
    }

    /// The data of the allocated cell at `offset`, for writing.
    pub fn cell_mut(&mut self, offset: u32) -> R<&mut [u8]> {
        let o = offset as usize;
        if offset % 8 != 0 || o + 4 > self.bins_size as usize {
            return err(offset, "offset outside the hive bins");
        }
        let raw = u32_at(&self.bytes, BASE + o) as i32;
        let len = raw.unsigned_abs() as usize;
        if raw >= 0 || len < 8 || o + len > self.bins_size as usize {
            return err(offset, "not an allocated cell");
        }
        Ok(&mut self.bytes[BASE + o + 4..BASE + o + len])
    }
}
