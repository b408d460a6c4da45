//! Any bytes as LZNT1 compressed data for a 64 KiB compression unit.

/// The target's body.
pub fn run(data: &[u8]) {
    let mut out = vec![0u8; 65536];
    let _ = rehost::fs::ntfs::lznt1::decompress(data, &mut out);
}
