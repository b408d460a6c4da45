//! The metadata region: its table and the known items (file parameters, sizes, identity,
//! parent locator).

use super::header::{guid, le16, le32, le64};
use super::source::Source;
use crate::error::{Ctx, Result};

const FILE_PARAMETERS: &str = "caa16737-fa36-4d43-b3b6-33f0aa44e76b";
const VIRTUAL_DISK_SIZE: &str = "2fa54224-cd1b-4876-b211-5dbed83bf4b8";
const VIRTUAL_DISK_ID: &str = "beca12ab-b2e6-4523-93ef-c309e000c746";
const LOGICAL_SECTOR_SIZE: &str = "8141bf1d-a96f-4709-ba47-f233a8faab5f";
const PHYSICAL_SECTOR_SIZE: &str = "cda348c7-445d-4471-9cc9-e9885251c556";
const PARENT_LOCATOR: &str = "a8d35f2d-b30b-454d-abf7-d3d84834ab0c";
/// Locator type of a VHDX parent.
pub const VHDX_LOCATOR: &str = "b04aefb7-d19e-4a81-b789-25b8e9445913";

/// Largest virtual disk the format allows (64 TiB).
pub const MAX_VIRTUAL_SIZE: u64 = 64 << 40;

/// What the metadata region says.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Payload block size.
    pub block_size: u32,
    /// Blocks stay allocated (a fixed VHDX).
    pub leave_blocks_allocated: bool,
    /// A differencing disk.
    pub has_parent: bool,
    /// Virtual disk size.
    pub virtual_size: u64,
    /// Virtual disk id.
    pub disk_id: String,
    /// Logical sector size (512 or 4096).
    pub logical_sector_size: u32,
    /// Physical sector size (512 or 4096).
    pub physical_sector_size: u32,
    /// Parent locator key/value pairs.
    pub parent_locator: Vec<(String, String)>,
}

/// Reads the metadata table at `offset` (`length` bytes) and its known items.
pub fn read(src: &Source, offset: u64, length: u32, ctx: &Ctx) -> Result<Metadata> {
    let mut table = vec![0u8; 64 * 1024];
    src.read(offset, &mut table)?;
    if &table[..8] != b"metadata" {
        return Err(ctx.corrupt(offset, "no metadata table signature"));
    }
    let count = le16(&table, 10) as usize;
    if count > 2047 {
        return Err(ctx.corrupt(
            offset + 10,
            format!("{count} metadata entries (at most 2047)"),
        ));
    }
    let mut items: Vec<(String, Vec<u8>, u64)> = Vec::new();
    for i in 0..count {
        let o = 32 + 32 * i;
        let id = guid(&table, o);
        let item_off = le32(&table, o + 16) as u64;
        let item_len = le32(&table, o + 20) as u64;
        let flags = le32(&table, o + 24);
        let at = offset + o as u64;
        let known = [
            FILE_PARAMETERS,
            VIRTUAL_DISK_SIZE,
            VIRTUAL_DISK_ID,
            LOGICAL_SECTOR_SIZE,
            PHYSICAL_SECTOR_SIZE,
            PARENT_LOCATOR,
        ];
        let is_user = flags & 1 != 0;
        if !known.contains(&id.as_str()) || is_user {
            if flags & 4 != 0 {
                return Err(
                    ctx.unsupported(at, format!("required metadata item {id} is not known"))
                );
            }
            continue;
        }
        if item_len > 1 << 20
            || (item_len > 0 && item_off < 64 * 1024)
            || item_off + item_len > length as u64
        {
            return Err(ctx.corrupt(at, format!("metadata item {id} ({item_len} bytes at {item_off:#x}) lies outside the region")));
        }
        let mut v = vec![0u8; item_len as usize];
        src.read(offset + item_off, &mut v)?;
        items.push((id, v, at));
    }
    let get = |id: &str, min: usize| -> Result<&[u8]> {
        match items.iter().find(|(i, _, _)| i == id) {
            Some((_, v, at)) if v.len() < min => {
                Err(ctx.corrupt(*at, format!("metadata item {id} is {} bytes", v.len())))
            }
            Some((_, v, _)) => Ok(v),
            None => Err(ctx.corrupt(offset, format!("required metadata item {id} is missing"))),
        }
    };
    let fp = get(FILE_PARAMETERS, 8)?;
    let block_size = le32(fp, 0);
    if !(1 << 20..=256 << 20).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(ctx.corrupt(
            offset,
            format!("block size {block_size} is not a power of two from 1 MiB to 256 MiB"),
        ));
    }
    let flags = le32(fp, 4);
    let logical = le32(get(LOGICAL_SECTOR_SIZE, 4)?, 0);
    let physical = le32(get(PHYSICAL_SECTOR_SIZE, 4)?, 0);
    for (what, v) in [("logical", logical), ("physical", physical)] {
        if v != 512 && v != 4096 {
            return Err(ctx.corrupt(offset, format!("{what} sector size {v} is not 512 or 4096")));
        }
    }
    let virtual_size = le64(get(VIRTUAL_DISK_SIZE, 8)?, 0);
    if virtual_size == 0 || virtual_size % logical as u64 != 0 || virtual_size > MAX_VIRTUAL_SIZE {
        return Err(ctx.corrupt(
            offset,
            format!("virtual disk size {virtual_size} is invalid"),
        ));
    }
    let has_parent = flags & 2 != 0;
    let parent_locator = if has_parent {
        locator(get(PARENT_LOCATOR, 20)?, offset, ctx)?
    } else {
        Vec::new()
    };
    Ok(Metadata {
        block_size,
        leave_blocks_allocated: flags & 1 != 0,
        has_parent,
        virtual_size,
        disk_id: guid(get(VIRTUAL_DISK_ID, 16)?, 0),
        logical_sector_size: logical,
        physical_sector_size: physical,
        parent_locator,
    })
}

/// The key/value pairs of a VHDX parent locator.
fn locator(b: &[u8], at: u64, ctx: &Ctx) -> Result<Vec<(String, String)>> {
    let kind = guid(b, 0);
    if kind != VHDX_LOCATOR {
        return Err(ctx.unsupported(at, format!("parent locator type {kind}")));
    }
    let count = le16(b, 18) as usize;
    let text = |off: usize, len: usize| -> Option<String> {
        let bytes = b.get(off..off.checked_add(len)?)?;
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(String::from_utf16_lossy(&units))
    };
    let mut out = Vec::new();
    for i in 0..count {
        let o = 20 + 12 * i;
        if o + 12 > b.len() {
            return Err(ctx.corrupt(at, "parent locator entries run past the item"));
        }
        let (ko, vo) = (le32(b, o) as usize, le32(b, o + 4) as usize);
        let (kl, vl) = (le16(b, o + 8) as usize, le16(b, o + 10) as usize);
        match (text(ko, kl), text(vo, vl)) {
            (Some(k), Some(v)) => out.push((k, v)),
            _ => {
                return Err(ctx.corrupt(
                    at,
                    format!("parent locator entry {i} lies outside the item"),
                ))
            }
        }
    }
    Ok(out)
}
