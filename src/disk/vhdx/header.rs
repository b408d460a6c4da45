//! The header section: file type identifier, the two headers, the two region tables.

use super::source::Source;
use crate::error::{Ctx, Result};

/// Offsets of the two headers.
pub const HEADER_OFFSETS: [u64; 2] = [64 * 1024, 128 * 1024];
/// Offsets of the two region tables.
pub const REGION_OFFSETS: [u64; 2] = [192 * 1024, 256 * 1024];
/// Region GUID of the block allocation table.
pub const BAT_REGION: &str = "2dc27766-f623-4200-9d64-115e9bfd4a08";
/// Region GUID of the metadata region.
pub const METADATA_REGION: &str = "8b7ca206-4790-4b9a-b8fe-575f050f886e";

pub(super) fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
pub(super) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
pub(super) fn le64(b: &[u8], o: usize) -> u64 {
    le32(b, o) as u64 | (le32(b, o + 4) as u64) << 32
}
/// A GUID in its on-disk (mixed-endian) form, printed as Windows prints it.
pub(super) fn guid(b: &[u8], o: usize) -> String {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[o..o + 16]);
    uuid::Uuid::from_bytes_le(a).to_string()
}

/// CRC-32C of `b` with the four checksum bytes at `at` taken as zero.
pub(super) fn crc_without(b: &[u8], at: usize) -> u32 {
    let c = crc32c::crc32c(&b[..at]);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, &b[at + 4..])
}

/// The current header.
#[derive(Debug, Clone)]
pub struct Header {
    /// Which copy (0 at 64 KiB, 1 at 128 KiB).
    pub copy: usize,
    /// Sequence number.
    pub sequence: u64,
    /// Changes on every open for writing.
    pub file_write_guid: String,
    /// Changes when user-visible data changes: the identity children link to.
    pub data_write_guid: String,
    /// Non-zero when the log holds entries to replay.
    pub log_guid: [u8; 16],
    /// Log format version (0).
    pub log_version: u16,
    /// Log length in bytes.
    pub log_length: u32,
    /// File offset of the log.
    pub log_offset: u64,
}

fn parse_header(b: &[u8], copy: usize, at: u64, ctx: &Ctx) -> Result<Header> {
    if &b[..4] != b"head" {
        return Err(ctx.corrupt(at, "no header signature \"head\""));
    }
    let stored = le32(b, 4);
    let computed = crc_without(b, 4);
    if stored != computed {
        return Err(ctx.corrupt(
            at + 4,
            format!("header CRC-32C {stored:#010x} does not match ({computed:#010x})"),
        ));
    }
    let version = le16(b, 66);
    if version != 1 {
        return Err(ctx.unsupported(at + 66, format!("VHDX version {version}")));
    }
    let mut log_guid = [0u8; 16];
    log_guid.copy_from_slice(&b[48..64]);
    Ok(Header {
        copy,
        sequence: le64(b, 8),
        file_write_guid: guid(b, 16),
        data_write_guid: guid(b, 32),
        log_guid,
        log_version: le16(b, 64),
        log_length: le32(b, 68),
        log_offset: le64(b, 72),
    })
}

/// Reads both headers and returns the current one (the valid one with the higher sequence
/// number) and a note when one copy is damaged.
pub fn current_header(src: &Source, ctx: &Ctx) -> Result<(Header, Option<String>)> {
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (copy, at) in HEADER_OFFSETS.iter().enumerate() {
        let mut b = vec![0u8; 4096];
        let parsed = src
            .read(*at, &mut b)
            .and_then(|_| parse_header(&b, copy, *at, ctx));
        match parsed {
            Ok(h) => valid.push(h),
            Err(e) => errors.push(e),
        }
    }
    let note = errors
        .first()
        .map(|e| format!("one header is damaged ({}); the other was used", e.kind));
    match valid.into_iter().max_by_key(|h| h.sequence) {
        Some(h) => Ok((h, note)),
        None => Err(errors.swap_remove(0)),
    }
}

/// One region table entry.
#[derive(Debug, Clone)]
pub struct Region {
    /// Region GUID.
    pub guid: String,
    /// File offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u32,
    /// Must be understood to open the file.
    pub required: bool,
}

fn parse_regions(b: &[u8], at: u64, file_size: u64, ctx: &Ctx) -> Result<Vec<Region>> {
    if &b[..4] != b"regi" {
        return Err(ctx.corrupt(at, "no region table signature \"regi\""));
    }
    let stored = le32(b, 4);
    let computed = crc_without(b, 4);
    if stored != computed {
        return Err(ctx.corrupt(
            at + 4,
            format!("region table CRC-32C {stored:#010x} does not match ({computed:#010x})"),
        ));
    }
    let count = le32(b, 8) as usize;
    if count > 2047 {
        return Err(ctx.corrupt(
            at + 8,
            format!("{count} region table entries (at most 2047)"),
        ));
    }
    let mut out = Vec::new();
    for i in 0..count {
        let o = 16 + 32 * i;
        let r = Region {
            guid: guid(b, o),
            offset: le64(b, o + 16),
            length: le32(b, o + 24),
            required: le32(b, o + 28) & 1 != 0,
        };
        let mb = 1 << 20;
        let end = r.offset.checked_add(r.length as u64);
        if r.offset < mb
            || r.offset % mb != 0
            || r.length as u64 % mb != 0
            || end.is_none_or(|e| e > file_size)
        {
            return Err(ctx.corrupt(
                at + o as u64,
                format!(
                    "region {} ({} bytes at {:#x}) is not 1 MiB aligned inside the file",
                    r.guid, r.length, r.offset
                ),
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// Reads the region table (the second copy when the first is damaged).
pub fn regions(src: &Source, ctx: &Ctx) -> Result<(Vec<Region>, Option<String>)> {
    let mut first_error = None;
    for at in REGION_OFFSETS {
        let mut b = vec![0u8; 64 * 1024];
        match src
            .read(at, &mut b)
            .and_then(|_| parse_regions(&b, at, src.size(), ctx))
        {
            Ok(r) => {
                let note = first_error.map(|e: crate::Error| {
                    format!("region table damaged ({}); its copy was used", e.kind)
                });
                return Ok((r, note));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ctx.corrupt(REGION_OFFSETS[0], "no region table")))
}
