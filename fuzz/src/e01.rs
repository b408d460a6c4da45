//! Any bytes as an E01 evidence file: cut at each `EVF-NEXT-SEGMENT` into up to four
//! segment files (`image.E01`, `image.E02` ...), each given the EWF signature and its
//! segment number so that the bytes are taken for one, then opened (file headers, the
//! chain of sections, volume, tables, hash and digest) and read (compressed and stored
//! chunks) as `open_and_read` does. A segment past the pieces given is missing. Bytes that
//! start with the EWF2 signature are an Ex01 image the same way (`image.Ex01` ..., each
//! piece given the EWF2 signature, version 2.1 and its segment number): descriptors read
//! back from each segment's end, the device information and case data texts, sector
//! tables, hashes, and compressed, checksummed and pattern-fill chunks.
pub fn run(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rehost-fuzz-e01-{}-{n}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let v2 = data.starts_with(b"EVF2\x0d\x0a\x81\x00");
    let first = dir.join(if v2 { "image.Ex01" } else { "image.E01" });
    for (i, piece) in super::split(data, b"EVF-NEXT-SEGMENT")
        .iter()
        .take(4)
        .enumerate()
    {
        let mut v = piece.to_vec();
        if v2 && v.len() >= 32 {
            v[..8].copy_from_slice(b"EVF2\x0d\x0a\x81\x00");
            v[8..10].copy_from_slice(&[2, 1]);
            v[12..16].copy_from_slice(&(i as u32 + 1).to_le_bytes());
        } else if !v2 && v.len() >= 13 {
            v[..8].copy_from_slice(b"EVF\x09\x0d\x0a\xff\x00");
            v[8] = 1;
            v[9..11].copy_from_slice(&(i as u16 + 1).to_le_bytes());
        }
        let ext = if v2 { "Ex" } else { "E" };
        let path = first.with_extension(format!("{ext}{:02}", i + 1));
        if std::fs::write(&path, v).is_err() {
            break;
        }
    }
    super::read_image(&first);
    let _ = std::fs::remove_dir_all(&dir);
}
