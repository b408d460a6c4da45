//! The VSS catalog: a chain of 16 KiB blocks, each a block header (record type 2) and 127
//! entries of 128 bytes. A shadow copy is an entry of type 2 (its volume size, store
//! identifier and creation time) with an entry of type 3 for the same store identifier
//! (where its store lies: header, block list, block ranges, bitmaps, and the NTFS file
//! holding it). Entries of type 1 are unused; entries of zeros are empty.

use super::fields::guid_at;
use super::{read_block, BLOCK_HEADER_SIZE, BLOCK_SIZE, VSS_RECORD_CATALOG};
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;
use rehost_core::le::{slice, u64_at};
use serde::Serialize;
use std::collections::HashSet;

/// Bytes of one catalog entry.
pub const CATALOG_ENTRY_SIZE: usize = 128;
/// Catalog entry type: unused.
pub const CATALOG_ENTRY_UNUSED: u64 = 1;
/// Catalog entry type: a shadow copy (its store's identity and creation time).
pub const CATALOG_ENTRY_STORE: u64 = 2;
/// Catalog entry type: where a shadow copy's store lies.
pub const CATALOG_ENTRY_STORE_LOCATION: u64 = 3;
/// Most catalog blocks followed: Windows keeps at most 512 shadow copies of a volume, two
/// entries each, 127 entries to a block; past this the chain is taken for damaged.
pub const MAX_CATALOG_BLOCKS: usize = 64;

/// A catalog entry of type 2: one shadow copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEntry {
    /// Where the entry lies on the volume.
    pub at: u64,
    /// Size of the volume the shadow copy was taken of.
    pub volume_size: u64,
    /// The store identifier (a GUID; the store's file is named after it).
    pub store_identifier: String,
    /// What the format documentation takes for a sequence number.
    pub sequence: u64,
    /// Flags (0x40 seen on Vista and 7, 0x440 on 8).
    pub flags: u64,
    /// When the shadow copy was made (FILETIME, UTC).
    pub creation_time: u64,
}

/// A catalog entry of type 3: where a store lies. Offsets count from the start of the
/// volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreLocation {
    /// The first block of the store's block list (what it copied, and from where).
    pub block_list_offset: u64,
    /// The store identifier (a GUID).
    pub store_identifier: String,
    /// The store header block.
    pub header_offset: u64,
    /// The first block of the store's block range list.
    pub block_range_list_offset: u64,
    /// The first block of the store's current bitmap.
    pub bitmap_offset: u64,
    /// MFT record number of the file holding the store
    /// (`System Volume Information\{store identifier}{VSS identifier}`).
    pub file_record: u64,
    /// That file's sequence number, as the reference gives it.
    pub file_sequence: u16,
    /// What the format documentation takes for an allocated size (0 where unused).
    pub allocated_size: u64,
    /// The first block of the store's previous bitmap; 0 when there is none.
    pub previous_bitmap_offset: u64,
}

/// What the catalog holds, and where reading it stopped.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The entries of type 2, in catalog order.
    pub stores: Vec<StoreEntry>,
    /// The entries of type 3, in catalog order.
    pub locations: Vec<StoreLocation>,
    /// Blocks read.
    pub blocks: usize,
    /// Why the catalog could not be read whole (what was read before is kept).
    pub damaged: Option<String>,
}

impl Catalog {
    /// Reads the catalog whose first block is at `first` on `dev` (a volume). Damage, or a
    /// read that fails, ends the walk and is said in [`Catalog::damaged`].
    pub fn read(dev: &dyn ReadAt, ctx: &Ctx, first: u64) -> Catalog {
        let mut c = Catalog::default();
        let mut seen = HashSet::new();
        let mut next = first;
        while next != 0 {
            if !seen.insert(next) {
                c.damaged = Some(
                    ctx.corrupt(
                        next,
                        "the catalog's chain of blocks loops back to this block",
                    )
                    .to_string(),
                );
                break;
            }
            if c.blocks == MAX_CATALOG_BLOCKS {
                c.damaged = Some(
                    ctx.corrupt(
                        next,
                        format!("the catalog goes on past {MAX_CATALOG_BLOCKS} blocks"),
                    )
                    .to_string(),
                );
                break;
            }
            match Self::block(dev, ctx, next, c.blocks as u64, &mut c) {
                Ok(n) => next = n,
                Err(e) => {
                    c.damaged = Some(e.to_string());
                    break;
                }
            }
            c.blocks += 1;
        }
        c
    }

    /// Reads the catalog block at `at` (the `index`th) into `c`; returns the next block's
    /// offset (0 at the end).
    fn block(dev: &dyn ReadAt, ctx: &Ctx, at: u64, index: u64, c: &mut Catalog) -> Result<u64> {
        let (b, h) = read_block(dev, ctx, at, VSS_RECORD_CATALOG, "catalog block")?;
        if h.relative_offset != index * BLOCK_SIZE {
            return Err(ctx.corrupt(
                at,
                format!(
                    "catalog block {index} says it is at {:#x} in the catalog, not {:#x}",
                    h.relative_offset,
                    index * BLOCK_SIZE
                ),
            ));
        }
        for n in 0..(BLOCK_SIZE as usize - BLOCK_HEADER_SIZE) / CATALOG_ENTRY_SIZE {
            let off = BLOCK_HEADER_SIZE + n * CATALOG_ENTRY_SIZE;
            let Some(e) = slice(&b, off, CATALOG_ENTRY_SIZE) else {
                break;
            };
            let entry_at = at + off as u64;
            match u64_at(e, 0) {
                0 | CATALOG_ENTRY_UNUSED => {}
                CATALOG_ENTRY_STORE => c.stores.push(StoreEntry {
                    at: entry_at,
                    volume_size: u64_at(e, 8),
                    store_identifier: guid_at(e, 16),
                    sequence: u64_at(e, 32),
                    flags: u64_at(e, 40),
                    creation_time: u64_at(e, 48),
                }),
                CATALOG_ENTRY_STORE_LOCATION => {
                    let reference = u64_at(e, 56);
                    c.locations.push(StoreLocation {
                        block_list_offset: u64_at(e, 8),
                        store_identifier: guid_at(e, 16),
                        header_offset: u64_at(e, 32),
                        block_range_list_offset: u64_at(e, 40),
                        bitmap_offset: u64_at(e, 48),
                        file_record: reference & 0x0000_FFFF_FFFF_FFFF,
                        file_sequence: (reference >> 48) as u16,
                        allocated_size: u64_at(e, 64),
                        previous_bitmap_offset: u64_at(e, 72),
                    })
                }
                other => {
                    return Err(ctx.corrupt(
                        entry_at,
                        format!("catalog entry {n} of block {index} has type {other}, not 0 to 3"),
                    ))
                }
            }
        }
        Ok(h.next_offset)
    }
}
