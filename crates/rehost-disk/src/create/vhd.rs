//! A new VHD (Virtual Hard Disk Image Format Specification, 2006): fixed (the disk, then
//! the footer) or dynamic (a copy of the footer, the dynamic disk header, the BAT, the
//! blocks that hold data with their sector bitmaps, the footer).
//!
//! The footer names the creator `rhst`. Hyper-V, Azure and this crate take the footer's
//! current size as the disk's size; Virtual PC, and QEMU for creators it does not know
//! (all but Hyper-V's `win `, its own `qem2`, Disk2vhd's and XenServer's), take the
//! product of the CHS geometry instead, unless the geometry is the largest one
//! (65535 cylinders, 16 heads, 255 sectors), which every reader takes to mean "read the
//! current size". So the geometry is the specification's where that covers the disk
//! exactly (a size of whole cylinders: the two readings agree), and the largest one
//! otherwise (what the specification's algorithm gives any disk of 127 GiB or more, and
//! what `qemu-img` writes when asked to keep a size exactly): every reader then sees the
//! disk's exact size, and rehost does not pass itself off as another creator.

use super::{each_block, write_sparse, Blocks, Out};
use crate::ids::Ids;
use crate::vhd::footer::{checksum, DYNAMIC, FIXED};
use crate::vhd::grow::{geometry, MAX_SIZE};
use crate::ReadAt;
use rehost_core::error::{Ctx, Result};

const SECTOR: u64 = 512;
/// The specification's default block size.
pub(super) const BLOCK: u64 = 2 << 20;
/// The dynamic header's offset, and the BAT's.
const HEADER_OFFSET: u64 = 512;
const BAT_OFFSET: u64 = 1536;

/// Writes `src` into `o` as a fixed VHD of `size` bytes (the source's size, or more: the
/// rest reads as zeros); returns the blocks with data and the number of blocks.
pub(super) fn write_fixed(
    src: &dyn ReadAt,
    size: u64,
    o: &mut Out,
    ids: &mut Ids,
) -> Result<Blocks> {
    check_size(size, o.ctx)?;
    o.set_len(size + SECTOR)?;
    let counts = each_block(src, BLOCK, |k, data| write_sparse(o, k * BLOCK, data))?;
    o.write(size, &footer(size, FIXED, u64::MAX, ids))?;
    Ok(counts)
}

/// Writes `src` into `o` as a dynamic VHD; returns the blocks with data and
/// the number of blocks.
pub(super) fn write_dynamic(
    src: &dyn ReadAt,
    o: &mut Out,
    ids: &mut Ids,
    ctx: &Ctx,
) -> Result<Blocks> {
    let size = src.size();
    check_size(size, ctx)?;
    let blocks = size.div_ceil(BLOCK);
    let bat_len = (blocks * 4).div_ceil(SECTOR) * SECTOR;
    let mut bat = vec![0xffu8; bat_len as usize];
    // Each block: its sector bitmap (one bit a sector, in whole sectors), then its data.
    let bitmap_len = (BLOCK / SECTOR / 8).div_ceil(SECTOR) * SECTOR;
    let bitmap = vec![0xffu8; bitmap_len as usize];
    let mut next = BAT_OFFSET + bat_len;
    let counts = each_block(src, BLOCK, |k, data| {
        let at = next;
        o.write(at, &bitmap)?;
        write_sparse(o, at + bitmap_len, data)?;
        next += bitmap_len + BLOCK;
        let sector = u32::try_from(at / SECTOR)
            .map_err(|_| ctx.invalid("the dynamic VHD would pass the 2 TiB its BAT can address"))?;
        let i = k as usize * 4;
        bat[i..i + 4].copy_from_slice(&sector.to_be_bytes());
        Ok(())
    })?;
    let foot = footer(size, DYNAMIC, HEADER_OFFSET, ids);
    o.set_len(next + SECTOR)?;
    o.write(next, &foot)?;
    o.write(BAT_OFFSET, &bat)?;
    o.write(HEADER_OFFSET, &dynamic_header(blocks))?;
    o.write(0, &foot)?;
    Ok(counts)
}

fn check_size(size: u64, ctx: &Ctx) -> Result<()> {
    if size == 0 || size % SECTOR != 0 || size > MAX_SIZE {
        return Err(ctx.invalid(format!(
            "a VHD holds a disk of whole 512-byte sectors, up to 2040 GiB; this one is {size} \
             bytes"
        )));
    }
    Ok(())
}

/// Seconds since 2000-01-01 00:00 UTC, the format's epoch.
fn timestamp() -> u32 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    unix.saturating_sub(946_684_800) as u32
}

/// The footer of a disk of `size` bytes and `disk_type`.
fn footer(size: u64, disk_type: u32, data_offset: u64, ids: &mut Ids) -> Vec<u8> {
    let mut b = vec![0u8; SECTOR as usize];
    let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(&mut b, 0, b"conectix");
    put(&mut b, 8, &2u32.to_be_bytes()); // features: the reserved bit, always set
    put(&mut b, 12, &0x0001_0000u32.to_be_bytes());
    put(&mut b, 16, &data_offset.to_be_bytes());
    put(&mut b, 24, &timestamp().to_be_bytes());
    put(&mut b, 28, b"rhst");
    put(&mut b, 32, &0x0000_0001u32.to_be_bytes());
    put(&mut b, 36, b"Wi2k");
    put(&mut b, 40, &size.to_be_bytes());
    put(&mut b, 48, &size.to_be_bytes());
    let (c, h, s) = footer_geometry(size);
    put(&mut b, 56, &c.to_be_bytes());
    put(&mut b, 58, &[h, s]);
    put(&mut b, 60, &disk_type.to_be_bytes());
    put(&mut b, 68, ids.guid().as_bytes());
    let sum = checksum(&b, 64);
    put(&mut b, 64, &sum.to_be_bytes());
    b
}

/// The geometry the footer records for a disk of `size` bytes: the specification's when
/// its product is the size, else the largest, which readers take as "use the current size".
fn footer_geometry(size: u64) -> (u16, u8, u8) {
    let (c, h, s) = geometry(size);
    if u64::from(c) * u64::from(h) * u64::from(s) * SECTOR == size {
        (c, h, s)
    } else {
        (65535, 16, 255)
    }
}

/// The dynamic disk header: the BAT's place and size, 2 MiB blocks, no parent.
fn dynamic_header(blocks: u64) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[0..8].copy_from_slice(b"cxsparse");
    b[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    b[16..24].copy_from_slice(&BAT_OFFSET.to_be_bytes());
    b[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    b[28..32].copy_from_slice(&(blocks as u32).to_be_bytes());
    b[32..36].copy_from_slice(&(BLOCK as u32).to_be_bytes());
    let sum = checksum(&b, 36);
    b[36..40].copy_from_slice(&sum.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_covers_the_size_or_says_to_read_the_current_size() {
        // The sample's 4,212,736 bytes are 121 x 4 x 17 sectors: the specification's.
        assert_eq!(footer_geometry(4_212_736), (121, 4, 17));
        // 127 MiB is not whole cylinders: the largest geometry.
        assert_eq!(footer_geometry(127 << 20), (65535, 16, 255));
        assert_eq!(footer_geometry(40 << 30), (65535, 16, 255));
    }
}
