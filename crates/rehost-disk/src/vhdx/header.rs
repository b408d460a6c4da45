//! The file type identifier and the two headers (MS-VHDX 2.2.1, 2.2.2).
//!
//! Each header is 4 KiB at 64 KiB and at 128 KiB: signature `head`, a CRC-32C over the
//! 4 KiB with the checksum field zeroed, and a sequence number. The current header is the
//! valid one with the higher sequence number. Headers are never written through the log,
//! so they are read from the file as it is.

use super::fields::{crc_check, guid};
use crate::HostFile;
use rehost_core::error::{Ctx, Result};
use rehost_core::le::{u16_at, u32_at, u64_at};
use uuid::Uuid;

/// Offsets of the two headers.
pub(super) const HEADER_OFFSETS: [u64; 2] = [64 * 1024, 128 * 1024];
/// Bytes of a header covered by its checksum.
const HEADER_LEN: usize = 4096;

/// The fields of the current header.
#[derive(Debug, Clone)]
pub(super) struct Header {
    /// File offset of the copy in use.
    pub at: u64,
    /// Its sequence number.
    pub sequence: u64,
    /// Identity of the user-visible data: what a differencing child links to.
    pub data_write_guid: Uuid,
    /// Non-nil when the log holds updates that must be replayed.
    pub log_guid: Uuid,
    /// Log format version (0 is the only one defined).
    pub log_version: u16,
    /// Log length in bytes.
    pub log_length: u32,
    /// File offset of the log.
    pub log_offset: u64,
}

/// Checks the file type identifier at offset 0.
pub(super) fn check_identifier(file: &HostFile, ctx: &Ctx) -> Result<()> {
    let mut sig = [0u8; 8];
    if file.read_some_at(0, &mut sig)? < 8 || &sig != b"vhdxfile" {
        return Err(ctx.corrupt(0, "no VHDX file type identifier \"vhdxfile\""));
    }
    Ok(())
}

/// A header copy that passed its signature and checksum, with its sequence number.
fn parse(b: &[u8], at: u64, ctx: &Ctx) -> Result<(u64, Header, u16)> {
    if &b[..4] != b"head" {
        return Err(ctx.corrupt(at, "no header signature \"head\""));
    }
    let (stored, computed) = crc_check(b, 4);
    if stored != computed {
        return Err(ctx.corrupt(
            at + 4,
            format!("header CRC-32C is {stored:#010x}, the content gives {computed:#010x}"),
        ));
    }
    let header = Header {
        at,
        sequence: u64_at(b, 8),
        data_write_guid: guid(b, 32),
        log_guid: guid(b, 48),
        log_version: u16_at(b, 64),
        log_length: u32_at(b, 68),
        log_offset: u64_at(b, 72),
    };
    Ok((u64_at(b, 8), header, u16_at(b, 66)))
}

/// Reads both headers and returns the current one, with a note when one copy is damaged.
/// Both damaged is an error naming the first copy's fault.
pub(super) fn current(file: &HostFile, ctx: &Ctx) -> Result<(Header, Option<String>)> {
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for at in HEADER_OFFSETS {
        let mut b = vec![0u8; HEADER_LEN];
        // A file too short for the header is this layer's finding, not a failed read.
        let read = match file.read_some_at(at, &mut b) {
            Ok(n) if n == HEADER_LEN => Ok(()),
            Ok(n) => Err(ctx.corrupt(
                at,
                format!("the file ends {n} bytes into the header at {at:#x}"),
            )),
            Err(e) => Err(e),
        };
        match read.and_then(|_| parse(&b, at, ctx)) {
            Ok(v) => valid.push(v),
            Err(e) => errors.push((at, e)),
        }
    }
    let Some((_, header, version)) = valid.into_iter().max_by_key(|(seq, _, _)| *seq) else {
        let first = errors.into_iter().next().map(|(_, e)| e);
        return Err(first.unwrap_or_else(|| ctx.corrupt(HEADER_OFFSETS[0], "no valid header")));
    };
    if version != 1 {
        return Err(ctx.unsupported(
            header.at + 66,
            format!("VHDX version {version} (only version 1 is defined)"),
        ));
    }
    let note = errors.first().map(|(at, e)| {
        format!(
            "the header at {at:#x} is damaged ({}); the other copy was used",
            e.kind
        )
    });
    Ok((header, note))
}
