//! The metadata region (MS-VHDX 2.6): a table of items, and the system items rehost reads.
//!
//! The table is the first 64 KiB of the region: signature `metadata`, an entry count (at
//! most 2047), then 32-byte entries (item id, offset in the region, length, flags IsUser,
//! IsVirtualDisk, IsRequired). Items lie after the table, inside the region, at most 1 MiB
//! each. A required item rehost does not know is refused.

use super::fields::guid;
use super::locator::{self, Locator};
use super::region::Region;
use super::source::Source;
use rehost_core::error::{Ctx, Result};
use rehost_core::le::{u16_at, u32_at, u64_at};
use uuid::{uuid, Uuid};

const FILE_PARAMETERS: Uuid = uuid!("caa16737-fa36-4d43-b3b6-33f0aa44e76b");
const VIRTUAL_DISK_SIZE: Uuid = uuid!("2fa54224-cd1b-4876-b211-5dbed83bf4b8");
const VIRTUAL_DISK_ID: Uuid = uuid!("beca12ab-b2e6-4523-93ef-c309e000c746");
const LOGICAL_SECTOR_SIZE: Uuid = uuid!("8141bf1d-a96f-4709-ba47-f233a8faab5f");
const PHYSICAL_SECTOR_SIZE: Uuid = uuid!("cda348c7-445d-4471-9cc9-e9885251c556");
const PARENT_LOCATOR: Uuid = uuid!("a8d35f2d-b30b-454d-abf7-d3d84834ab0c");
const KNOWN: [Uuid; 6] = [
    FILE_PARAMETERS,
    VIRTUAL_DISK_SIZE,
    VIRTUAL_DISK_ID,
    LOGICAL_SECTOR_SIZE,
    PHYSICAL_SECTOR_SIZE,
    PARENT_LOCATOR,
];

const TABLE_LEN: u64 = 64 * 1024;
const MAX_ENTRIES: u16 = 2047;
const MAX_ITEM: u64 = 1 << 20;
/// Largest virtual disk the format allows (64 TiB).
pub(super) const MAX_VIRTUAL_SIZE: u64 = 64 << 40;

/// What the metadata region says about the disk.
#[derive(Debug, Clone)]
pub(super) struct Metadata {
    /// Payload block size in bytes (a power of two, 1 MiB to 256 MiB).
    pub block_size: u32,
    /// Blocks are never deallocated: a fixed disk.
    pub leave_blocks_allocated: bool,
    /// A differencing disk.
    pub has_parent: bool,
    /// Size of the virtual disk in bytes.
    pub virtual_size: u64,
    /// File offset of the virtual disk size item (what growing the disk rewrites).
    pub virtual_size_at: u64,
    /// VirtualDiskId.
    pub disk_id: Uuid,
    /// Logical sector size (512 or 4096).
    pub logical_sector_size: u32,
    /// Physical sector size (512 or 4096).
    pub physical_sector_size: u32,
    /// The parent locator of a differencing disk.
    pub locator: Option<Locator>,
}

/// One item of the table: its bytes and the file offset of its table entry.
struct Item {
    id: Uuid,
    bytes: Vec<u8>,
    entry_at: u64,
    /// File offset of the item's bytes.
    at: u64,
}

/// Reads the metadata table of `region` and its system items.
pub(super) fn read(src: &Source, region: Region, ctx: &Ctx) -> Result<Metadata> {
    if region.length < TABLE_LEN {
        return Err(ctx.corrupt(region.offset, "metadata region is smaller than its table"));
    }
    let mut table = vec![0u8; TABLE_LEN as usize];
    src.read(region.offset, &mut table)?;
    if &table[..8] != b"metadata" {
        return Err(ctx.corrupt(region.offset, "no metadata table signature \"metadata\""));
    }
    let count = u16_at(&table, 10);
    if count > MAX_ENTRIES {
        return Err(ctx.corrupt(
            region.offset + 10,
            format!("metadata table has {count} entries (at most {MAX_ENTRIES})"),
        ));
    }
    let mut items: Vec<Item> = Vec::new();
    for i in 0..usize::from(count) {
        let o = 32 + 32 * i;
        let entry_at = region.offset + o as u64;
        let id = guid(&table, o);
        let offset = u64::from(u32_at(&table, o + 16));
        let length = u64::from(u32_at(&table, o + 20));
        let flags = u32_at(&table, o + 24);
        let (is_user, is_required) = (flags & 1 != 0, flags & 4 != 0);
        if is_user || !KNOWN.contains(&id) {
            if is_required {
                return Err(ctx.unsupported(
                    entry_at,
                    format!("required metadata item {id} is not one rehost knows"),
                ));
            }
            continue;
        }
        if items.iter().any(|it| it.id == id) {
            return Err(ctx.corrupt(entry_at, format!("metadata item {id} appears twice")));
        }
        if length > MAX_ITEM
            || (length > 0 && offset < TABLE_LEN)
            || offset + length > region.length
        {
            return Err(ctx.corrupt(
                entry_at,
                format!(
                    "metadata item {id} ({length} bytes at {offset:#x}) lies outside the \
                     metadata region ({} bytes)",
                    region.length
                ),
            ));
        }
        let mut bytes = vec![0u8; length as usize];
        src.read(region.offset + offset, &mut bytes)?;
        items.push(Item {
            id,
            bytes,
            entry_at,
            at: region.offset + offset,
        });
    }
    let item = |id: Uuid, what: &str, min: usize| -> Result<&[u8]> {
        match items.iter().find(|it| it.id == id) {
            Some(it) if it.bytes.len() < min => Err(ctx.corrupt(
                it.entry_at,
                format!("{what} item is {} bytes (at least {min})", it.bytes.len()),
            )),
            Some(it) => Ok(&it.bytes),
            None => Err(ctx.corrupt(
                region.offset,
                format!("the metadata has no {what} item ({id})"),
            )),
        }
    };
    let params = item(FILE_PARAMETERS, "file parameters", 8)?;
    let block_size = u32_at(params, 0);
    let flags = u32_at(params, 4);
    if !(1 << 20..=256 << 20).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(ctx.corrupt(
            region.offset,
            format!("block size {block_size} is not a power of two from 1 MiB to 256 MiB"),
        ));
    }
    let logical_sector_size = u32_at(item(LOGICAL_SECTOR_SIZE, "logical sector size", 4)?, 0);
    let physical_sector_size = u32_at(item(PHYSICAL_SECTOR_SIZE, "physical sector size", 4)?, 0);
    for (what, v) in [
        ("logical", logical_sector_size),
        ("physical", physical_sector_size),
    ] {
        if v != 512 && v != 4096 {
            return Err(ctx.corrupt(
                region.offset,
                format!("{what} sector size {v} is neither 512 nor 4096"),
            ));
        }
    }
    let virtual_size = u64_at(item(VIRTUAL_DISK_SIZE, "virtual disk size", 8)?, 0);
    if virtual_size == 0
        || virtual_size % u64::from(logical_sector_size) != 0
        || virtual_size > MAX_VIRTUAL_SIZE
    {
        return Err(ctx.corrupt(
            region.offset,
            format!(
                "virtual disk size {virtual_size} is not a non-zero multiple of the \
                 {logical_sector_size}-byte sector up to 64 TiB"
            ),
        ));
    }
    let disk_id = guid(item(VIRTUAL_DISK_ID, "virtual disk id", 16)?, 0);
    let has_parent = flags & 2 != 0;
    let locator = if has_parent {
        let bytes = item(PARENT_LOCATOR, "parent locator", 20)?;
        let at = items
            .iter()
            .find(|it| it.id == PARENT_LOCATOR)
            .map_or(region.offset, |it| it.entry_at);
        Some(locator::parse(bytes, at, ctx)?)
    } else {
        None
    };
    let virtual_size_at = items
        .iter()
        .find(|it| it.id == VIRTUAL_DISK_SIZE)
        .map_or(region.offset, |it| it.at);
    Ok(Metadata {
        block_size,
        leave_blocks_allocated: flags & 1 != 0,
        has_parent,
        virtual_size,
        virtual_size_at,
        disk_id,
        logical_sector_size,
        physical_sector_size,
        locator,
    })
}
