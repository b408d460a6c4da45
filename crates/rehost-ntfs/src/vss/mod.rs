//! Volume Shadow Copies (VSS): the snapshots Windows keeps of an NTFS volume, read from
//! the structures its shadow copy provider leaves on the volume, named as in the format's
//! documentation (libyal's "Volume Shadow Snapshot (VSS) format"):
//!
//! - [`header`]: the volume header at 0x1E00, naming the catalog;
//! - [`catalog`]: the catalog's blocks, one entry pair per shadow copy (its creation
//!   time, its store identifier, where its store lies);
//! - [`store`]: a store's header (the shadow copy's identifiers and attributes) and its
//!   block list.
//!
//! Every block is 16 KiB and starts with a 128-byte block header carrying the VSS
//! identifier, a record type and its own offset, all checked before anything in the
//! block is believed. Every offset read from the volume is checked against the volume's
//! size and every chain of blocks against loops. A damaged catalog is said
//! ([`ShadowCopies::damaged`]), not fatal: what was read before the damage is kept.
//!
//! A write into a volume that Windows' shadow copy driver does not see (any offline
//! write) is not copied into the stores first: each snapshot then reads the new bytes as
//! its own. The image session refuses such a write in place unless allowed.

pub mod catalog;
pub mod fields;
pub mod header;
pub mod store;

use catalog::{Catalog, StoreLocation};
use header::{VolumeHeader, VOLUME_HEADER_OFFSET, VOLUME_HEADER_SIZE};
use rehost_core::error::{Ctx, Layer, Result};
use rehost_core::io::ReadAt;
use rehost_core::le::{slice, u32_at, u64_at};
use serde::Serialize;
use store::StoreInformation;

/// The VSS identifier, {3808876b-c176-4e48-b7ae-04046e6cc752}, as stored (its first three
/// fields little-endian): at the start of the volume header and of every block header.
pub const VSS_IDENTIFIER: [u8; 16] = [
    0x6b, 0x87, 0x08, 0x38, 0x76, 0xc1, 0x48, 0x4e, 0xb7, 0xae, 0x04, 0x04, 0x6e, 0x6c, 0xc7, 0x52,
];
/// The VSS identifier as Windows prints it: the store files are named
/// `{store identifier}{VSS identifier}`, the catalog `{VSS identifier}`.
pub const VSS_IDENTIFIER_STRING: &str = "3808876b-c176-4e48-b7ae-04046e6cc752";
/// Bytes of a catalog or store block.
pub const BLOCK_SIZE: u64 = 0x4000;
/// Bytes of the header at the start of every block.
pub const BLOCK_HEADER_SIZE: usize = 128;
/// Record type of the volume header.
pub const VSS_RECORD_VOLUME_HEADER: u32 = 1;
/// Record type of a catalog block.
pub const VSS_RECORD_CATALOG: u32 = 2;
/// Record type of a store's block list block.
pub const VSS_RECORD_BLOCK_LIST: u32 = 3;
/// Record type of a store header.
pub const VSS_RECORD_STORE_HEADER: u32 = 4;

/// What a volume's VSS structures say.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowCopies {
    /// The volume header's version (1: Windows Vista and 7; 2: Windows 8 and later).
    pub version: u32,
    /// Where the catalog starts on the volume; 0 when there is none (no shadow copy).
    pub catalog_offset: u64,
    /// Most bytes the stores may take; 0 when unbounded.
    pub maximum_size: u64,
    /// The shadow copies, in catalog order.
    pub copies: Vec<ShadowCopy>,
    /// Why the VSS structures could not be read whole, naming the image, the layer and
    /// the offset: the copies listed are those read before. `None` when all was read.
    pub damaged: Option<String>,
}

/// One shadow copy (a store, in the format's words).
#[derive(Debug, Clone, Serialize)]
pub struct ShadowCopy {
    /// The store identifier (a GUID).
    pub store_id: String,
    /// The shadow copy identifier (a GUID; `vssadmin list shadows` shows it), from the
    /// store header.
    pub shadow_copy_id: Option<String>,
    /// The shadow copy set identifier (a GUID), from the store header.
    pub shadow_copy_set_id: Option<String>,
    /// When it was made: a FILETIME (100 ns ticks since 1601, UTC).
    pub creation_time: u64,
    /// When it was made, ISO 8601 in UTC.
    pub created: String,
    /// Size of the volume it was taken of.
    pub volume_size: u64,
    /// `VSS_VOLUME_SNAPSHOT_ATTRIBUTES`, from the store header.
    pub attribute_flags: Option<u32>,
    /// Where its store lies (the catalog's entry of type 3).
    pub store: Option<StoreLocation>,
    /// Bytes of the file holding its store (`System Volume Information\{store
    /// identifier}{VSS identifier}`), read from that file's MFT record: the space the
    /// shadow copy takes on the volume. Filled in by [`crate::Ntfs::shadow_copies`].
    pub store_size: Option<u64>,
    /// What could not be read of this copy (its store header, its store's file).
    pub damaged: Option<String>,
}

impl ShadowCopies {
    /// Shadow copies the catalog lists.
    pub fn count(&self) -> usize {
        self.copies.len()
    }

    /// Whether a write into the volume would leave a snapshot stale, or might (a damaged
    /// catalog may list more than was read).
    pub fn any(&self) -> bool {
        !self.copies.is_empty() || self.damaged.is_some()
    }
}

/// The fields of a block header every block starts with.
#[derive(Debug, Clone, Copy)]
pub struct BlockHeader {
    /// Record type (2 catalog, 3 block list, 4 store header, ...).
    pub record_type: u32,
    /// Offset of the block in its catalog or store.
    pub relative_offset: u64,
    /// Where the block says it is on the volume.
    pub current_offset: u64,
    /// The next block of its chain on the volume; 0 for the last.
    pub next_offset: u64,
    /// A store header's information size (0 in other blocks).
    pub information_size: u64,
}

/// Reads the 16 KiB block at `at` of `dev` (a volume) after checking it lies inside the
/// volume, and checks its header: the VSS identifier, record type `record_type`, and its
/// own offset. `what` names the block in errors.
pub fn read_block(
    dev: &dyn ReadAt,
    ctx: &Ctx,
    at: u64,
    record_type: u32,
    what: &str,
) -> Result<(Vec<u8>, BlockHeader)> {
    let inside = at
        .checked_add(BLOCK_SIZE)
        .is_some_and(|end| end <= dev.size());
    if at < BLOCK_SIZE || !inside {
        return Err(ctx.corrupt(
            at,
            format!(
                "the {what} would lie outside the volume ({} bytes)",
                dev.size()
            ),
        ));
    }
    let mut b = vec![0u8; BLOCK_SIZE as usize];
    dev.read_at(at, &mut b)?;
    if slice(&b, 0, 16) != Some(&VSS_IDENTIFIER[..]) {
        return Err(ctx.corrupt(
            at,
            format!("the {what} does not start with the VSS identifier"),
        ));
    }
    let h = BlockHeader {
        record_type: u32_at(&b, 20),
        relative_offset: u64_at(&b, 24),
        current_offset: u64_at(&b, 32),
        next_offset: u64_at(&b, 40),
        information_size: u64_at(&b, 48),
    };
    if h.record_type != record_type {
        return Err(ctx.corrupt(
            at,
            format!(
                "the {what} has record type {}, not {record_type}",
                h.record_type
            ),
        ));
    }
    if h.current_offset != at {
        return Err(ctx.corrupt(
            at,
            format!("the {what} says it lies at {:#x}", h.current_offset),
        ));
    }
    Ok((b, h))
}

/// Reads the VSS structures of the volume on `dev`: `None` when it has no VSS volume
/// header (no shadow copy was ever prepared). The catalog and each store header are read
/// and checked; damage is said in the result, not returned. Only a failing read of the
/// volume header is an error. The store sizes are left for [`crate::Ntfs::shadow_copies`],
/// which can read the stores' files.
pub fn read(dev: &dyn ReadAt, ctx: &Ctx) -> Result<Option<ShadowCopies>> {
    let ctx = ctx.with_layer(Layer::Vss);
    if dev.size() < VOLUME_HEADER_OFFSET + VOLUME_HEADER_SIZE as u64 {
        return Ok(None);
    }
    let mut b = [0u8; VOLUME_HEADER_SIZE];
    dev.read_at(VOLUME_HEADER_OFFSET, &mut b)?;
    let Some(h) = VolumeHeader::parse(&b) else {
        return Ok(None);
    };
    let mut out = ShadowCopies {
        version: h.version,
        catalog_offset: h.catalog_offset,
        maximum_size: h.maximum_size,
        copies: Vec::new(),
        damaged: None,
    };
    if let Some(p) = h.problem() {
        out.damaged = Some(ctx.corrupt(VOLUME_HEADER_OFFSET, p).to_string());
        return Ok(Some(out));
    }
    if h.catalog_offset == 0 {
        return Ok(Some(out));
    }
    let catalog = Catalog::read(dev, &ctx, h.catalog_offset);
    out.damaged = catalog.damaged.clone();
    for s in &catalog.stores {
        let store = catalog
            .locations
            .iter()
            .find(|l| l.store_identifier == s.store_identifier)
            .cloned();
        let mut copy = ShadowCopy {
            store_id: s.store_identifier.clone(),
            shadow_copy_id: None,
            shadow_copy_set_id: None,
            creation_time: s.creation_time,
            created: fields::filetime_utc(s.creation_time),
            volume_size: s.volume_size,
            attribute_flags: None,
            store: store.clone(),
            store_size: None,
            damaged: None,
        };
        match &store {
            None if catalog.damaged.is_none() => {
                copy.damaged = Some(
                    ctx.corrupt(s.at, "the catalog has no entry saying where its store lies")
                        .to_string(),
                )
            }
            None => {}
            Some(l) => match StoreInformation::read(dev, &ctx, l.header_offset) {
                Ok(i) => {
                    copy.shadow_copy_id = Some(i.shadow_copy_id);
                    copy.shadow_copy_set_id = Some(i.shadow_copy_set_id);
                    copy.attribute_flags = Some(i.attribute_flags);
                }
                Err(e) => copy.damaged = Some(e.to_string()),
            },
        }
        out.copies.push(copy);
    }
    Ok(Some(out))
}

impl crate::Ntfs {
    /// The volume's shadow copies ([`read`]), each with the size of the file holding its
    /// store, read from the MFT record the catalog names (a record that is not that file,
    /// or cannot be read, is said in the copy's `damaged`).
    pub fn shadow_copies(&self) -> Result<Option<ShadowCopies>> {
        let Some(mut s) = read(&**self.device(), self.ctx())? else {
            return Ok(None);
        };
        for c in &mut s.copies {
            let Some(l) = &c.store else { continue };
            match self.store_file_size(l) {
                Ok(size) => c.store_size = Some(size),
                Err(e) => {
                    c.damaged.get_or_insert_with(|| e.to_string());
                }
            }
        }
        Ok(Some(s))
    }

    /// The size of the unnamed data stream of the file holding the store `l` locates,
    /// after checking that the record is in use, of the reference's sequence number, and
    /// named `{store identifier}{VSS identifier}`.
    fn store_file_size(&self, l: &StoreLocation) -> Result<u64> {
        let f = self.file(l.file_record)?;
        let name = format!("{{{}}}{{{VSS_IDENTIFIER_STRING}}}", l.store_identifier);
        let named = f
            .names()
            .iter()
            .any(|n| n.name_string().eq_ignore_ascii_case(&name));
        let wrong = if f.sequence != l.file_sequence {
            format!(
                "its sequence number is {}, not {}",
                f.sequence, l.file_sequence
            )
        } else if !named {
            let names: Vec<String> = f.names().iter().map(|n| n.name_string()).collect();
            format!("it is named {}", names.join(", "))
        } else {
            return Ok(self.data(&f, "")?.size());
        };
        Err(self.ctx().with_layer(Layer::Vss).corrupt_at_path(
            &format!("MFT record {}", l.file_record),
            format!("the catalog names this record as the store's file {name}, but {wrong}"),
        ))
    }
}

#[cfg(test)]
mod tests;
