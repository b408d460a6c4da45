//! The base block of a hive or a transaction log (the first 4096 bytes, or 512 in a log).

/// Size of the base block of a primary file; hive bins data starts here.
pub const BASE: usize = 4096;

/// A field read that never panics (0 past the end): the workspace's one reader.
pub use rehost_core::le::u32_at;

/// Writes a field.
pub fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// Marks a dirty primary file's base block consistent as it stands: the secondary sequence
/// number set to the primary one and the checksum recomputed, so that the hive bins are
/// taken as they are (what a missing log held is not there to be replayed). A slice too
/// short for a base block is left alone.
pub fn mark_consistent(b: &mut [u8]) {
    if b.len() < 512 {
        return;
    }
    let seq1 = u32_at(b, 4);
    put_u32(b, 8, seq1);
    let sum = checksum(b);
    put_u32(b, 508, sum);
}

/// The XOR-32 checksum of the first 508 bytes, with its two special values.
pub fn checksum(b: &[u8]) -> u32 {
    match (0..127).fold(0u32, |x, i| x ^ u32_at(b, i * 4)) {
        0xFFFF_FFFF => 0xFFFF_FFFE,
        0 => 1,
        s => s,
    }
}

/// The fields of a base block that replay and saving use.
#[derive(Debug, Clone)]
pub struct BaseBlock {
    /// Primary sequence number.
    pub seq1: u32,
    /// Secondary sequence number.
    pub seq2: u32,
    /// Last written timestamp.
    pub timestamp: u64,
    /// 0 primary, 1 or 2 old log, 6 new log.
    pub file_type: u32,
    /// Hive bins data size.
    pub bins_size: u32,
    /// The checksum matches.
    pub checksum_ok: bool,
}

impl BaseBlock {
    /// Reads the base block at the start of `b`, if it has the `regf` signature.
    pub fn read(b: &[u8]) -> Option<BaseBlock> {
        if b.len() < 512 || &b[..4] != b"regf" {
            return None;
        }
        Some(BaseBlock {
            seq1: u32_at(b, 4),
            seq2: u32_at(b, 8),
            timestamp: u64::from_le_bytes(b[12..20].try_into().ok()?),
            file_type: u32_at(b, 28),
            bins_size: u32_at(b, 40),
            checksum_ok: checksum(b) == u32_at(b, 508),
        })
    }

    /// Whether Windows would replay logs over it: a bad checksum or unequal numbers.
    pub fn dirty(&self) -> bool {
        !self.checksum_ok || self.seq1 != self.seq2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dirty_base_block_marked_consistent_is_clean_and_keeps_its_primary_number() {
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"regf");
        put_u32(&mut b, 4, 258);
        put_u32(&mut b, 8, 257);
        let sum = checksum(&b);
        put_u32(&mut b, 508, sum);
        assert!(BaseBlock::read(&b).unwrap().dirty());
        mark_consistent(&mut b);
        let base = BaseBlock::read(&b).unwrap();
        assert!(!base.dirty());
        assert_eq!((base.seq1, base.seq2), (258, 258));
        let mut short = vec![1u8; 100];
        mark_consistent(&mut short);
        assert_eq!(short, vec![1u8; 100]);
    }
}
