//! The `table` section: where each chunk of the media is stored in the segment file (its
//! offset, relative to the table's base offset, and whether it is compressed), in the order
//! of the media. A chunk ends where the next one starts; the table's last chunk ends where
//! the `sectors` section holding it ends.

use super::section::{adler32, le32, le64, Descriptor};
use crate::HostFile;
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;

/// The most significant bit of an entry: the chunk is compressed.
const COMPRESSED: u32 = 1 << 31;
/// The table header: number of entries, padding, base offset, padding, checksum.
const HEADER_LEN: u64 = 24;

/// Where one chunk is stored.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    /// The segment file, by its index (0 for `.E01`).
    pub segment: u32,
    /// The chunk's offset in that file.
    pub offset: u64,
    /// The bytes it takes there (with the checksum of an uncompressed chunk).
    pub stored: u32,
    /// How the chunk's bytes are stored.
    pub encoding: Encoding,
}

/// How a chunk's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A zlib stream.
    Zlib,
    /// The bytes as they are, followed by their Adler-32 where the stored size says so
    /// (EWF version 1 tables do not say).
    Stored,
    /// The bytes as they are, without a checksum (EWF2, the entry's flags say so).
    Plain,
    /// The bytes as they are, followed by their Adler-32 (EWF2, the entry's flags say so).
    Summed,
    /// No bytes stored: the chunk is these eight bytes repeated (EWF2 pattern fill).
    Pattern([u8; 8]),
}

/// The bounds a table's chunks must keep.
pub struct Bounds {
    /// The segment's index.
    pub segment: u32,
    /// Where the chunk data of this table starts and ends: the `sectors` section before
    /// it, or `None` when the chunks follow the entries in the table's own section (EnCase
    /// 1, SMART).
    pub sectors: Option<(u64, u64)>,
    /// The most bytes a stored chunk may take.
    pub max_stored: u64,
    /// How many more chunks the media has room for.
    pub room: u64,
}

/// Reads the table section `d` and appends its chunks to `out`.
pub fn read(
    d: &Descriptor,
    file: &HostFile,
    ctx: &Ctx,
    bounds: &Bounds,
    out: &mut Vec<Chunk>,
) -> Result<()> {
    let len = d.data_len(file, ctx)?;
    if len < HEADER_LEN {
        return Err(ctx.corrupt(d.offset, "table section shorter than its header"));
    }
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_at(d.data(), &mut h)?;
    if le32(&h, 20) != adler32(&h[..20]) {
        return Err(ctx.corrupt(d.data(), "table header: checksum mismatch"));
    }
    let count = u64::from(le32(&h, 0));
    let base = le64(&h, 8);
    if count * 4 > len - HEADER_LEN {
        return Err(ctx.corrupt(
            d.data(),
            format!("table of {count} entries does not fit its section ({len} bytes of data)"),
        ));
    }
    if count > bounds.room {
        return Err(ctx.corrupt(
            d.data(),
            format!(
                "table of {count} entries maps more chunks than the volume section counts ({} left)",
                bounds.room
            ),
        ));
    }
    let mut raw = vec![0u8; (count * 4) as usize];
    let entries_at = d.data() + HEADER_LEN;
    file.read_at(entries_at, &mut raw)?;
    // The chunks lie in the sectors section, or after the entries in this one.
    let (data_start, data_end) = bounds
        .sectors
        .unwrap_or((entries_at + count * 4, d.data() + len));
    // EnCase 5 and later follow the entries with their checksum (where the chunks are in a
    // sectors section of their own).
    if count > 0 && bounds.sectors.is_some() && len - HEADER_LEN >= count * 4 + 4 {
        let mut sum = [0u8; 4];
        file.read_at(entries_at + count * 4, &mut sum)?;
        if u32::from_le_bytes(sum) != adler32(&raw) {
            return Err(ctx.corrupt(entries_at, "table entries: checksum mismatch"));
        }
    }
    let starts: Vec<(u64, bool)> = raw
        .chunks_exact(4)
        .map(|e| {
            let v = le32(e, 0);
            (
                base.saturating_add(u64::from(v & !COMPRESSED)),
                v & COMPRESSED != 0,
            )
        })
        .collect();
    // Each start inside the chunk data first, so that a bad entry is the one named.
    if let Some(i) = starts
        .iter()
        .position(|&(s, _)| s < data_start || s >= data_end)
    {
        return Err(ctx.corrupt(
            entries_at + i as u64 * 4,
            format!(
                "table entry {i} puts a chunk at {:#x}, which is not inside the chunk data \
                 ({data_start:#x}..{data_end:#x}) of the segment file ({} bytes)",
                starts[i].0,
                file.size()
            ),
        ));
    }
    for (i, &(start, compressed)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(data_end, |n| n.0);
        let at = entries_at + i as u64 * 4;
        if end <= start {
            return Err(ctx.corrupt(
                at,
                format!(
                    "table entry {i} puts a chunk at {start:#x}, where the next one starts \
                     ({end:#x}) or before: the entries are out of order"
                ),
            ));
        }
        if end - start > bounds.max_stored {
            return Err(ctx.corrupt(
                at,
                format!(
                    "table entry {i} stores a chunk in {} bytes, more than a chunk can take ({})",
                    end - start,
                    bounds.max_stored
                ),
            ));
        }
        out.push(Chunk {
            segment: bounds.segment,
            offset: start,
            stored: (end - start) as u32,
            encoding: if compressed {
                Encoding::Zlib
            } else {
                Encoding::Stored
            },
        });
    }
    Ok(())
}
