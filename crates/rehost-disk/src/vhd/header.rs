//! The dynamic disk header ("cxsparse"): the block allocation table, the block size, and
//! for differencing disks the parent's identity and locators.

use super::footer::{be32, be64, checksum};
use rehost_core::error::{Ctx, Result};

/// Smallest and largest block sizes accepted (the specification's default is 2 MiB).
pub const BLOCK_SIZES: std::ops::RangeInclusive<u32> = 512..=(256 << 20);

/// A parent locator entry.
#[derive(Debug, Clone)]
pub struct Locator {
    /// Platform code (`W2ru`, `W2ku`, `Wi2r`, `Wi2k`, ...).
    pub code: [u8; 4],
    /// Bytes of locator data.
    pub length: u32,
    /// File offset of the data.
    pub offset: u64,
}

/// A checked dynamic disk header.
#[derive(Debug, Clone)]
pub struct DynamicHeader {
    /// File offset of the block allocation table.
    pub table_offset: u64,
    /// Entries in the table.
    pub max_table_entries: u32,
    /// Bytes per block.
    pub block_size: u32,
    /// The parent's unique id (differencing disks).
    pub parent_unique_id: [u8; 16],
    /// The parent's file name, as written (UTF-16BE in the header).
    pub parent_name: String,
    /// Parent locators in use.
    pub locators: Vec<Locator>,
    /// Why the stored checksum is not to be trusted, if it does not match.
    pub checksum_error: Option<String>,
}

impl DynamicHeader {
    /// Parses 1024 header bytes read at `at`; `file_size` and `current_size` bound the table.
    pub fn parse(b: &[u8], at: u64, file_size: u64, current_size: u64, ctx: &Ctx) -> Result<Self> {
        if b.len() < 1024 || &b[..8] != b"cxsparse" {
            return Err(ctx.corrupt(at, "no dynamic disk header (cookie \"cxsparse\")"));
        }
        let stored = be32(b, 36);
        let computed = checksum(&b[..1024], 36);
        let checksum_error = (stored != computed).then(|| {
            format!("dynamic header checksum {stored:#010x} at {:#x} does not match its bytes ({computed:#010x})", at + 36)
        });
        let block_size = be32(b, 32);
        if !block_size.is_power_of_two() || !BLOCK_SIZES.contains(&block_size) {
            return Err(ctx.corrupt(
                at + 32,
                format!("block size {block_size} is not a power of two from 512 B to 256 MiB"),
            ));
        }
        let max_table_entries = be32(b, 28);
        let needed = current_size.div_ceil(block_size as u64);
        if (max_table_entries as u64) < needed {
            return Err(ctx.corrupt(
                at + 28,
                format!("{max_table_entries} table entries cannot map {current_size} bytes in blocks of {block_size}"),
            ));
        }
        let table_offset = be64(b, 16);
        let table_end = table_offset.checked_add(max_table_entries as u64 * 4);
        if table_end.is_none_or(|e| e > file_size) {
            return Err(ctx.corrupt(
                at + 16,
                format!("block allocation table ({max_table_entries} entries at {table_offset:#x}) reaches past the end of the file"),
            ));
        }
        let mut parent_unique_id = [0u8; 16];
        parent_unique_id.copy_from_slice(&b[40..56]);
        let name: Vec<u16> = b[64..576]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        let mut locators = Vec::new();
        for i in 0..8 {
            let o = 576 + 24 * i;
            let mut code = [0u8; 4];
            code.copy_from_slice(&b[o..o + 4]);
            let length = be32(b, o + 8);
            let offset = be64(b, o + 16);
            if code != [0; 4] && length > 0 {
                locators.push(Locator {
                    code,
                    length,
                    offset,
                });
            }
        }
        Ok(DynamicHeader {
            table_offset,
            max_table_entries,
            block_size,
            parent_unique_id,
            parent_name: String::from_utf16_lossy(&name),
            locators,
            checksum_error,
        })
    }
}
