//! GUIDs and CRC-32C as VHDX stores them (its little-endian fields are read by the
//! workspace's one reader, `rehost_core::le`).
//!
//! The readers take fixed offsets into buffers whose length the caller has fixed (a 4 KiB
//! header, a 64 KiB table, a 32-byte entry), so no value read from the image reaches an index
//! here; variable-length items use [`slice`], which never panics.

use rehost_core::le::u32_at;
use uuid::Uuid;

/// The GUID at `o`, in the mixed-endian layout of the format (Data1..Data3 little-endian).
pub(super) fn guid(b: &[u8], o: usize) -> Uuid {
    Uuid::from_bytes_le(rehost_core::le::array(b, o))
}

pub(super) use rehost_core::le::slice;

/// CRC-32C of `b` with the four checksum bytes at `at` taken as zero.
pub(super) fn crc_without(b: &[u8], at: usize) -> u32 {
    let c = crc32c::crc32c(b.get(..at).unwrap_or(b));
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, b.get(at.saturating_add(4)..).unwrap_or(&[]))
}

/// Whether the CRC-32C stored at `at` matches the rest of `b`; returns (stored, computed).
pub(super) fn crc_check(b: &[u8], at: usize) -> (u32, u32) {
    (u32_at(b, at), crc_without(b, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_mixed_endian() {
        // The BAT region GUID as the format stores it.
        let bytes = [
            0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD,
            0x4A, 0x08,
        ];
        assert_eq!(
            guid(&bytes, 0).to_string(),
            "2dc27766-f623-4200-9d64-115e9bfd4a08"
        );
    }

    #[test]
    fn crc_skips_the_checksum_field() {
        let mut b = vec![7u8; 64];
        let c = crc_without(&b, 4);
        b[4..8].copy_from_slice(&c.to_le_bytes());
        assert_eq!(crc_check(&b, 4), (c, c));
        b[4..8].fill(0);
        assert_eq!(crc32c::crc32c(&b), c);
    }

    #[test]
    fn slices_never_panic() {
        let b = [1u8; 8];
        assert!(slice(&b, 4, 4).is_some());
        assert!(slice(&b, 5, 4).is_none());
        assert!(slice(&b, usize::MAX, 2).is_none());
    }
}
