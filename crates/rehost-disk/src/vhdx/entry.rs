//! What the VHDX writer writes besides payload: header updates (MS-VHDX 2.2.2.1) and log
//! entries (MS-VHDX 2.3.1), laid out as `header` and `log` read them.

use super::fields::crc_without;
use super::source::PAGE;
use uuid::Uuid;

const SECTOR: usize = PAGE as usize;

/// A header: the 4 KiB `current` (its reserved bytes kept) with a new sequence number,
/// FileWriteGuid, DataWriteGuid and LogGuid, and its checksum.
pub(super) fn header(
    current: &[u8],
    sequence: u64,
    file_write: Uuid,
    data_write: Uuid,
    log: Uuid,
) -> Vec<u8> {
    let mut h = current[..SECTOR].to_vec();
    h[8..16].copy_from_slice(&sequence.to_le_bytes());
    h[16..32].copy_from_slice(&file_write.to_bytes_le());
    h[32..48].copy_from_slice(&data_write.to_bytes_le());
    h[48..64].copy_from_slice(&log.to_bytes_le());
    let c = crc_without(&h, 4);
    h[4..8].copy_from_slice(&c.to_le_bytes());
    h
}

/// Sectors of descriptors for `n` descriptors: the 64-byte entry header takes the room of
/// two in the first sector.
pub(super) fn descriptor_sectors(n: usize) -> usize {
    (n + 2).div_ceil(SECTOR / 32)
}

/// Most pages one entry can carry in a log of `log_len` bytes, leaving one sector free.
pub(super) fn capacity(log_len: u64) -> usize {
    let sectors = (log_len / PAGE) as usize;
    let mut k = sectors.saturating_sub(2);
    while k > 0 && descriptor_sectors(k) + k > sectors.saturating_sub(1) {
        k -= 1;
    }
    k
}

/// One log entry updating `pages` (file offset, 4 KiB of content), to be written `tail`
/// bytes into the log (it is its own tail), for a file `file_size` bytes long.
pub(super) fn log_entry(
    pages: &[(u64, Vec<u8>)],
    sequence: u64,
    tail: u32,
    log_guid: Uuid,
    file_size: u64,
) -> Vec<u8> {
    let n = pages.len();
    let ds = descriptor_sectors(n);
    let total = (ds + n) * SECTOR;
    let mut e = vec![0u8; total];
    e[..4].copy_from_slice(b"loge");
    e[8..12].copy_from_slice(&(total as u32).to_le_bytes());
    e[12..16].copy_from_slice(&tail.to_le_bytes());
    e[16..24].copy_from_slice(&sequence.to_le_bytes());
    e[24..28].copy_from_slice(&(n as u32).to_le_bytes());
    e[32..48].copy_from_slice(&log_guid.to_bytes_le());
    e[48..56].copy_from_slice(&file_size.to_le_bytes());
    e[56..64].copy_from_slice(&file_size.to_le_bytes());
    for (i, (offset, page)) in pages.iter().enumerate() {
        let d = 64 + 32 * i;
        e[d..d + 4].copy_from_slice(b"desc");
        e[d + 4..d + 8].copy_from_slice(&page[SECTOR - 4..]);
        e[d + 8..d + 16].copy_from_slice(&page[..8]);
        e[d + 16..d + 24].copy_from_slice(&offset.to_le_bytes());
        e[d + 24..d + 32].copy_from_slice(&sequence.to_le_bytes());
        let s = (ds + i) * SECTOR;
        e[s..s + 4].copy_from_slice(b"data");
        e[s + 4..s + 8].copy_from_slice(&((sequence >> 32) as u32).to_le_bytes());
        e[s + 8..s + SECTOR - 4].copy_from_slice(&page[8..SECTOR - 4]);
        e[s + SECTOR - 4..s + SECTOR].copy_from_slice(&(sequence as u32).to_le_bytes());
    }
    let c = crc_without(&e, 4);
    e[4..8].copy_from_slice(&c.to_le_bytes());
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_megabyte_log_holds_126_pages_in_one_entry() {
        assert_eq!(descriptor_sectors(0), 1);
        assert_eq!(descriptor_sectors(126), 1);
        assert_eq!(descriptor_sectors(127), 2);
        assert_eq!(capacity(1 << 20), 253);
        let k = capacity(1 << 19);
        assert_eq!(k, 126);
        assert!(descriptor_sectors(k) + k < 128);
    }
}
