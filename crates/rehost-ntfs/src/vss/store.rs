//! A store: what one shadow copy keeps. Its header block (record type 4) holds the store
//! information (the shadow copy's identifiers, type, provider, attribute flags and the
//! machines that made it); its block list (blocks of record type 3, 32-byte block
//! descriptors) names each 16 KiB block of the volume it copied before that block was
//! overwritten, and where the copy lies.

use super::fields::guid_at;
use super::{
    read_block, BLOCK_HEADER_SIZE, BLOCK_SIZE, VSS_RECORD_BLOCK_LIST, VSS_RECORD_STORE_HEADER,
};
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;
use rehost_core::le::{slice, u16_at, u32_at};
use std::collections::HashSet;

/// Bytes of one block descriptor.
pub const BLOCK_DESCRIPTOR_SIZE: usize = 32;
/// Fixed part of the store information: through the operating machine string's size.
const INFORMATION_FIXED: usize = 66;

/// The store information after a store header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInformation {
    /// The shadow copy identifier (a GUID; `vssadmin list shadows` shows it).
    pub shadow_copy_id: String,
    /// The shadow copy set identifier (a GUID).
    pub shadow_copy_set_id: String,
    /// The snapshot type.
    pub snapshot_type: u32,
    /// The provider value.
    pub provider: u32,
    /// `VSS_VOLUME_SNAPSHOT_ATTRIBUTES` (0x1 persistent, 0x8 no auto release, ...).
    pub attribute_flags: u32,
    /// The operating machine's name.
    pub operating_machine: String,
    /// The service machine's name.
    pub service_machine: String,
}

impl StoreInformation {
    /// Reads the store header block at `at` on `dev` (a volume) and its information.
    pub fn read(dev: &dyn ReadAt, ctx: &Ctx, at: u64) -> Result<StoreInformation> {
        let (b, h) = read_block(dev, ctx, at, VSS_RECORD_STORE_HEADER, "store header")?;
        let size = h.information_size;
        let room = (BLOCK_SIZE as usize - BLOCK_HEADER_SIZE) as u64;
        if size < INFORMATION_FIXED as u64 + 2 || size > room {
            return Err(ctx.corrupt(
                at,
                format!(
                    "the store header gives its information {size} bytes, not {} to {room}",
                    INFORMATION_FIXED + 2
                ),
            ));
        }
        let info = slice(&b, BLOCK_HEADER_SIZE, size as usize)
            .ok_or_else(|| ctx.corrupt(at, "the store information lies outside its block"))?;
        let string = |off: usize, what: &str| -> Result<(String, usize)> {
            let len = u16_at(info, off) as usize;
            let bytes = slice(info, off + 2, len)
                .filter(|_| len % 2 == 0)
                .ok_or_else(|| {
                    ctx.corrupt(
                        at + (BLOCK_HEADER_SIZE + off) as u64,
                        format!(
                            "the {what} name of {len} bytes does not fit the store information"
                        ),
                    )
                })?;
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            Ok((String::from_utf16_lossy(&units), off + 2 + len))
        };
        let (operating_machine, next) = string(INFORMATION_FIXED - 2, "operating machine")?;
        let (service_machine, _) = string(next, "service machine")?;
        Ok(StoreInformation {
            shadow_copy_id: guid_at(info, 16),
            shadow_copy_set_id: guid_at(info, 32),
            snapshot_type: u32_at(info, 48),
            provider: u32_at(info, 52),
            attribute_flags: u32_at(info, 56),
            operating_machine,
            service_machine,
        })
    }
}

/// Counts the block descriptors of the block list whose first block is at `first` on
/// `dev` (a volume of `dev.size()` bytes): every 32-byte descriptor that is not all zeros,
/// in every block of the chain. Each stands for a 16 KiB block of the volume the store
/// copied (or an overlay or forwarder of one). A chain that loops, or is longer than the
/// volume has blocks, is an error.
pub fn count_block_descriptors(dev: &dyn ReadAt, ctx: &Ctx, first: u64) -> Result<u64> {
    let most = dev.size() / BLOCK_SIZE;
    let mut seen = HashSet::new();
    let mut next = first;
    let mut count = 0u64;
    while next != 0 {
        if !seen.insert(next) || seen.len() as u64 > most {
            return Err(ctx.corrupt(
                next,
                format!(
                    "the block list's chain loops or runs past the volume's {most} blocks \
                     (block {} of the list)",
                    seen.len()
                ),
            ));
        }
        let (b, h) = read_block(dev, ctx, next, VSS_RECORD_BLOCK_LIST, "block list block")?;
        count += b
            .get(BLOCK_HEADER_SIZE..)
            .unwrap_or_default()
            .chunks_exact(BLOCK_DESCRIPTOR_SIZE)
            .filter(|d| d.iter().any(|x| *x != 0))
            .count() as u64;
        next = h.next_offset;
    }
    Ok(count)
}
