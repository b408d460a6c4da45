//! The region table (MS-VHDX 2.2.3): where the BAT and the metadata region live.
//!
//! Two copies of 64 KiB, at 192 KiB and 256 KiB: signature `regi`, CRC-32C over the 64 KiB,
//! at most 2047 entries of (GUID, file offset, length, required). Regions are 1 MiB aligned
//! and lie inside the file; a required region rehost does not know is refused.

use super::fields::{crc_check, guid};
use super::source::Source;
use rehost_core::error::{Ctx, Result};
use rehost_core::le::{u32_at, u64_at};
use uuid::{uuid, Uuid};

/// Offsets of the two copies of the region table.
pub(super) const TABLE_OFFSETS: [u64; 2] = [192 * 1024, 256 * 1024];
const TABLE_LEN: usize = 64 * 1024;
/// Most entries a table may hold.
const MAX_ENTRIES: u32 = 2047;
const MIB: u64 = 1 << 20;

/// Region of the block allocation table.
pub(super) const BAT: Uuid = uuid!("2dc27766-f623-4200-9d64-115e9bfd4a08");
/// Region of the metadata table and items.
pub(super) const METADATA: Uuid = uuid!("8b7ca206-4790-4b9a-b8fe-575f050f886e");

/// A region of the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Region {
    /// File offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// The two regions rehost reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Regions {
    /// The block allocation table.
    pub bat: Region,
    /// The metadata region.
    pub metadata: Region,
}

fn parse(b: &[u8], at: u64, file_size: u64, ctx: &Ctx) -> Result<Regions> {
    if &b[..4] != b"regi" {
        return Err(ctx.corrupt(at, "no region table signature \"regi\""));
    }
    let (stored, computed) = crc_check(b, 4);
    if stored != computed {
        return Err(ctx.corrupt(
            at + 4,
            format!("region table CRC-32C is {stored:#010x}, the content gives {computed:#010x}"),
        ));
    }
    let count = u32_at(b, 8);
    if count > MAX_ENTRIES {
        return Err(ctx.corrupt(
            at + 8,
            format!("region table has {count} entries (at most {MAX_ENTRIES})"),
        ));
    }
    let mut bat = None;
    let mut metadata = None;
    let mut seen: Vec<(u64, u64, Uuid)> = Vec::new();
    for i in 0..count as usize {
        let o = 16 + 32 * i;
        let entry_at = at + o as u64;
        let id = guid(b, o);
        let offset = u64_at(b, o + 16);
        let length = u64::from(u32_at(b, o + 24));
        let required = u32_at(b, o + 28) & 1 != 0;
        let end = offset.checked_add(length);
        if offset < MIB
            || offset % MIB != 0
            || length == 0
            || length % MIB != 0
            || end.is_none_or(|e| e > file_size)
        {
            return Err(ctx.corrupt(
                entry_at,
                format!(
                    "region {id} ({length} bytes at {offset:#x}) is not 1 MiB aligned inside \
                     the file ({file_size} bytes)"
                ),
            ));
        }
        let end = offset + length;
        if let Some((_, _, other)) = seen
            .iter()
            .find(|(s, e, g)| *g == id || (offset < *e && *s < end))
        {
            return Err(ctx.corrupt(
                entry_at,
                format!("region {id} overlaps region {other} or repeats it"),
            ));
        }
        seen.push((offset, end, id));
        let region = Region { offset, length };
        if id == BAT {
            bat = Some(region);
        } else if id == METADATA {
            metadata = Some(region);
        } else if required {
            return Err(ctx.unsupported(
                entry_at,
                format!("required region {id} is not one rehost knows"),
            ));
        }
    }
    match (bat, metadata) {
        (Some(bat), Some(metadata)) => Ok(Regions { bat, metadata }),
        (None, _) => Err(ctx.corrupt(at, "region table has no BAT region")),
        (_, None) => Err(ctx.corrupt(at, "region table has no metadata region")),
    }
}

/// Reads the region table; the copy at 256 KiB is used, with a note, when the first one is
/// damaged. An unknown required region is refused at once, whichever copy names it.
pub(super) fn read(src: &Source, ctx: &Ctx) -> Result<(Regions, Option<String>)> {
    let mut first_error: Option<rehost_core::Error> = None;
    for at in TABLE_OFFSETS {
        let mut b = vec![0u8; TABLE_LEN];
        match src
            .read(at, &mut b)
            .and_then(|_| parse(&b, at, src.size(), ctx))
        {
            Ok(r) => {
                let note = first_error.map(|e| {
                    format!(
                        "the region table at {:#x} is damaged ({}); its copy was used",
                        TABLE_OFFSETS[0], e.kind
                    )
                });
                return Ok((r, note));
            }
            Err(e) if matches!(e.kind, rehost_core::ErrorKind::Unsupported(_)) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ctx.corrupt(TABLE_OFFSETS[0], "no region table")))
}
