//! Hashing the media, to hold it to the hashes an evidence file stores.

use rehost_core::error::Result;
use rehost_core::io::ReadAt;
use serde::Serialize;

/// The MD5 and SHA-1 of a disk's bytes, in lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaDigests {
    /// MD5 of the whole media.
    pub md5: String,
    /// SHA-1 of the whole media.
    pub sha1: String,
}

/// Bytes read at a time.
const PIECE: usize = 1 << 20;

/// Reads the whole of `disk` and returns its MD5 and SHA-1; `progress` is told the bytes
/// done after each piece.
pub fn digest_media(disk: &dyn ReadAt, mut progress: impl FnMut(u64)) -> Result<MediaDigests> {
    use md5::Digest;
    let mut md5 = md5::Md5::new();
    let mut sha1 = sha1::Sha1::new();
    let size = disk.size();
    let mut buf = vec![0u8; PIECE];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(PIECE as u64) as usize;
        disk.read_at(at, &mut buf[..n])?;
        md5.update(&buf[..n]);
        sha1.update(&buf[..n]);
        at += n as u64;
        progress(at);
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok(MediaDigests {
        md5: hex(&md5.finalize()),
        sha1: hex(&sha1.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_known_bytes() {
        let m = rehost_core::io::Memory::new("abc", b"abc".to_vec());
        let d = digest_media(&m, |_| {}).unwrap();
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
