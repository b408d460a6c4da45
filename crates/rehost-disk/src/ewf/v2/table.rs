//! The sector table section: a header (the number of the first chunk it maps, its number
//! of entries, an Adler-32), the entries (each a chunk's offset in the segment file, its
//! stored size and its flags: compressed, followed by a checksum, pattern fill) and the
//! entries' Adler-32. A pattern-fill entry stores no bytes: its offset field is the eight
//! bytes the chunk repeats.

use super::super::section::{adler32, le32, le64};
use super::super::table::{Chunk, Encoding};
use super::descriptor::Descriptor;
use crate::HostFile;
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;

/// The header with its alignment padding.
const HEADER_LEN: u64 = 32;
/// One entry.
const ENTRY_LEN: u64 = 16;
/// The chunk is compressed.
const COMPRESSED: u32 = 0x1;
/// The chunk's bytes are followed by their Adler-32.
const CHECKSUMED: u32 = 0x2;
/// The chunk is its offset field's eight bytes repeated (with [`COMPRESSED`]).
const PATTERN_FILL: u32 = 0x4;

/// The bounds a table's chunks must keep.
pub struct Bounds {
    /// The segment's index.
    pub segment: u32,
    /// Where the sector data section before the table lies in the segment file.
    pub sectors: Option<(u64, u64)>,
    /// The most bytes a stored chunk may take.
    pub max_stored: u64,
    /// The number of the chunk the table must start with (the tables map the media in
    /// order, each going on where the last stopped).
    pub first: u64,
    /// How many more chunks the media has room for.
    pub room: u64,
}

/// Reads the sector table section `d` and appends its chunks to `out`.
pub fn read(
    d: &Descriptor,
    file: &HostFile,
    ctx: &Ctx,
    bounds: &Bounds,
    out: &mut Vec<Chunk>,
) -> Result<()> {
    if d.data_size < HEADER_LEN + 4 {
        return Err(ctx.corrupt(d.offset, "sector table section shorter than its header"));
    }
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_at(d.data(), &mut h)?;
    let (stored, computed) = (le32(&h, 16), adler32(&h[..16]));
    if stored != computed {
        return Err(ctx.corrupt(
            d.data(),
            format!(
                "sector table header: checksum {stored:#010x} stored, {computed:#010x} computed"
            ),
        ));
    }
    let first = le64(&h, 0);
    let count = u64::from(le32(&h, 8));
    if first != bounds.first {
        return Err(ctx.corrupt(
            d.data(),
            format!(
                "sector table starts at chunk {first}, where chunk {} is next",
                bounds.first
            ),
        ));
    }
    if count * ENTRY_LEN + 4 > d.data_size - HEADER_LEN {
        return Err(ctx.corrupt(
            d.data(),
            format!(
                "sector table of {count} entries does not fit its section ({} bytes of data)",
                d.data_size
            ),
        ));
    }
    if count > bounds.room {
        return Err(ctx.corrupt(
            d.data(),
            format!(
                "sector table of {count} entries maps more chunks than the case data counts \
                 ({} left)",
                bounds.room
            ),
        ));
    }
    let entries_at = d.data() + HEADER_LEN;
    let mut raw = vec![0u8; (count * ENTRY_LEN + 4) as usize];
    file.read_at(entries_at, &mut raw)?;
    let (entries, sum) = raw.split_at(raw.len() - 4);
    let (stored, computed) = (le32(sum, 0), adler32(entries));
    if stored != computed {
        return Err(ctx.corrupt(
            entries_at,
            format!(
                "sector table entries: checksum {stored:#010x} stored, {computed:#010x} computed"
            ),
        ));
    }
    for (i, e) in entries.chunks_exact(ENTRY_LEN as usize).enumerate() {
        let at = entries_at + i as u64 * ENTRY_LEN;
        let (offset, size, flags) = (le64(e, 0), le32(e, 8), le32(e, 12));
        let number = first + i as u64;
        let encoding = match flags {
            f if f & (COMPRESSED | PATTERN_FILL) == COMPRESSED | PATTERN_FILL => {
                let mut p = [0u8; 8];
                p.copy_from_slice(&e[..8]);
                out.push(Chunk {
                    segment: bounds.segment,
                    offset: 0,
                    stored: 0,
                    encoding: Encoding::Pattern(p),
                });
                continue;
            }
            f if f & !(COMPRESSED | CHECKSUMED | PATTERN_FILL) != 0 => {
                return Err(ctx.corrupt(
                    at,
                    format!("sector table entry {i} (chunk {number}) has flags {f:#x} rehost does not know"),
                ));
            }
            f if f & COMPRESSED != 0 => Encoding::Zlib,
            f if f & CHECKSUMED != 0 => Encoding::Summed,
            _ => Encoding::Plain,
        };
        let Some((start, end)) = bounds.sectors else {
            return Err(ctx.corrupt(
                at,
                format!("sector table entry {i} (chunk {number}): no sector data section comes before the table"),
            ));
        };
        if size == 0 || u64::from(size) > bounds.max_stored {
            return Err(ctx.corrupt(
                at,
                format!(
                    "sector table entry {i} stores chunk {number} in {size} bytes (a chunk \
                     takes 1 to {} bytes)",
                    bounds.max_stored
                ),
            ));
        }
        if offset < start || offset.checked_add(u64::from(size)).is_none_or(|e| e > end) {
            return Err(ctx.corrupt(
                at,
                format!(
                    "sector table entry {i} puts chunk {number} at {offset:#x} ({size} bytes), \
                     which is not inside the sector data ({start:#x}..{end:#x}) of the segment \
                     file ({} bytes)",
                    file.size()
                ),
            ));
        }
        out.push(Chunk {
            segment: bounds.segment,
            offset,
            stored: size,
            encoding,
        });
    }
    Ok(())
}
