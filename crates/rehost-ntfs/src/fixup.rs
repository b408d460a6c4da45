//! Update sequence arrays ("fixups") of multi-sector records: FILE and INDX.
//!
//! NTFS protects records longer than a sector by writing, in the last two bytes of every
//! 512-byte stride, the record's update sequence number, keeping the real bytes in the
//! update sequence array near the start of the record. A stride whose last two bytes do not
//! hold the number was torn by an interrupted write.

use super::le::u16_at;
use rehost_core::error::{Ctx, Result};

/// Stride of the update sequence array, in bytes, whatever the sector size.
pub const STRIDE: usize = 512;

/// Checks `magic` and undoes the fixups of `buf` in place. `pos` is the record's volume
/// offset, for messages.
pub fn unprotect(buf: &mut [u8], magic: &[u8; 4], ctx: &Ctx, pos: u64) -> Result<()> {
    if buf.len() < 4 || &buf[..4] != magic {
        let found = buf.get(..4).unwrap_or(&[]);
        return Err(ctx.corrupt(
            pos,
            format!(
                "expected a {} record, found {:?}",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(found)
            ),
        ));
    }
    let usa_ofs = u16_at(buf, 4) as usize;
    let usa_count = u16_at(buf, 6) as usize;
    let strides = buf.len() / STRIDE;
    if strides == 0
        || usa_count != strides + 1
        || usa_ofs % 2 != 0
        || usa_ofs + usa_count * 2 > STRIDE - 2
        || usa_ofs < 8
    {
        return Err(ctx.corrupt(
            pos + 4,
            format!(
                "update sequence array (offset {usa_ofs}, {usa_count} entries) does not fit a {}-byte record",
                buf.len()
            ),
        ));
    }
    let usn = u16_at(buf, usa_ofs);
    for i in 1..usa_count {
        let end = i * STRIDE - 2;
        if u16_at(buf, end) != usn {
            return Err(ctx.corrupt(
                pos + end as u64,
                format!(
                    "broken fixup in stride {i}: found {:#06x}, update sequence number is {usn:#06x} (torn write)",
                    u16_at(buf, end)
                ),
            ));
        }
        let saved = usa_ofs + i * 2;
        buf.copy_within(saved..saved + 2, end);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::error::Layer;

    fn protected() -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[..4].copy_from_slice(b"FILE");
        b[4..6].copy_from_slice(&48u16.to_le_bytes());
        b[6..8].copy_from_slice(&3u16.to_le_bytes());
        b[48..50].copy_from_slice(&7u16.to_le_bytes());
        b[50..52].copy_from_slice(&[0xAA, 0xBB]);
        b[52..54].copy_from_slice(&[0xCC, 0xDD]);
        b[510..512].copy_from_slice(&7u16.to_le_bytes());
        b[1022..1024].copy_from_slice(&7u16.to_le_bytes());
        b
    }

    #[test]
    fn restores_the_saved_bytes() {
        let ctx = Ctx::new("t", Layer::Ntfs);
        let mut b = protected();
        unprotect(&mut b, b"FILE", &ctx, 0).unwrap();
        assert_eq!(&b[510..512], &[0xAA, 0xBB]);
        assert_eq!(&b[1022..1024], &[0xCC, 0xDD]);
    }

    #[test]
    fn a_torn_stride_is_an_error_naming_its_offset() {
        let ctx = Ctx::new("t", Layer::Ntfs);
        let mut b = protected();
        b[1022] = 9;
        let e = unprotect(&mut b, b"FILE", &ctx, 0x4000).unwrap_err();
        assert!(e.to_string().contains("0x43fe"), "{e}");
        let mut b = protected();
        b[6] = 200;
        assert!(unprotect(&mut b, b"FILE", &ctx, 0).is_err());
    }
}
