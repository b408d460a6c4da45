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
/// done after each piece. The two digests are computed on two threads of their own while
/// this one reads (and decompresses) the next pieces: on two cores the verification takes
/// about as long as the slower digest alone.
pub fn digest_media(disk: &dyn ReadAt, mut progress: impl FnMut(u64)) -> Result<MediaDigests> {
    use md5::Digest;
    use std::sync::mpsc::sync_channel;
    use std::sync::Arc;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let size = disk.size();
    // A few pieces in flight to each hasher: the memory stays bounded.
    let (to_md5, md5_in) = sync_channel::<Arc<Vec<u8>>>(4);
    let (to_sha1, sha1_in) = sync_channel::<Arc<Vec<u8>>>(4);
    std::thread::scope(|scope| {
        let md5 = scope.spawn(move || {
            let mut h = md5::Md5::new();
            for piece in md5_in {
                h.update(&piece[..]);
            }
            hex(&h.finalize())
        });
        let sha1 = scope.spawn(move || {
            let mut h = sha1::Sha1::new();
            for piece in sha1_in {
                h.update(&piece[..]);
            }
            hex(&h.finalize())
        });
        let mut at = 0u64;
        let read = loop {
            if at >= size {
                break Ok(());
            }
            let n = (size - at).min(PIECE as u64) as usize;
            let mut buf = vec![0u8; n];
            if let Err(e) = disk.read_at(at, &mut buf) {
                break Err(e);
            }
            let piece = Arc::new(buf);
            // A hasher that is gone has panicked; its join below says so.
            if to_md5.send(piece.clone()).is_err() || to_sha1.send(piece).is_err() {
                break Ok(());
            }
            at += n as u64;
            progress(at);
        };
        drop((to_md5, to_sha1));
        let (md5, sha1) = (md5.join(), sha1.join());
        read?;
        match (md5, sha1) {
            (Ok(md5), Ok(sha1)) => Ok(MediaDigests { md5, sha1 }),
            (Err(p), _) | (_, Err(p)) => std::panic::resume_unwind(p),
        }
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

    #[test]
    fn many_pieces_hash_as_one_stream() {
        use md5::Digest;
        let bytes: Vec<u8> = (0..(3 * PIECE + 12345) as u32)
            .map(|i| ((i * 31) >> 3) as u8)
            .collect();
        let m = rehost_core::io::Memory::new("many", bytes.clone());
        let mut seen = Vec::new();
        let d = digest_media(&m, |at| seen.push(at)).unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(d.md5, hex(&md5::Md5::digest(&bytes)));
        assert_eq!(d.sha1, hex(&sha1::Sha1::digest(&bytes)));
        assert_eq!(seen.last(), Some(&(bytes.len() as u64)));
        assert_eq!(seen.len(), 4);
    }
}
