//! Little-endian fields, GUIDs and CRC-32C as VHDX stores them.
//!
//! The readers take fixed offsets into buffers whose length the caller has fixed (a 4 KiB
//! header, a 64 KiB table, a 32-byte entry), so no value read from the image reaches an index
//! here; variable-length items use [`slice`], which never panics.

use uuid::Uuid;

/// The 16-bit little-endian value at `o`.
pub(super) fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// The 32-bit little-endian value at `o`.
pub(super) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The 64-bit little-endian value at `o`.
pub(super) fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | u64::from(le32(b, o + 4)) << 32
}

/// The GUID at `o`, in the mixed-endian layout of the format (Data1..Data3 little-endian).
pub(super) fn guid(b: &[u8], o: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[o..o + 16]);
    Uuid::from_bytes_le(a)
}

/// `len` bytes at `off` of `b`, if they are all inside it.
pub(super) fn slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

/// CRC-32C of `b` with the four checksum bytes at `at` taken as zero.
pub(super) fn crc_without(b: &[u8], at: usize) -> u32 {
    let c = crc32c::crc32c(&b[..at]);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, &b[at + 4..])
}

/// Whether the CRC-32C stored at `at` matches the rest of `b`; returns (stored, computed).
pub(super) fn crc_check(b: &[u8], at: usize) -> (u32, u32) {
    (le32(b, at), crc_without(b, at))
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
