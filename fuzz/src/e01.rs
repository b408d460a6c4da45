//! Any bytes as an E01 evidence file: cut at each `EVF-NEXT-SEGMENT` into up to four
//! segment files (`image.E01`, `image.E02` ...), each given the EWF signature and its
//! segment number so that the bytes are taken for one, then opened (file headers, the
//! chain of sections, volume, tables, hash and digest) and read (compressed and stored
//! chunks) as `open_and_read` does. A segment past the pieces given is missing.
pub fn run(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rehost-fuzz-e01-{}-{n}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let first = dir.join("image.E01");
    for (i, piece) in super::split(data, b"EVF-NEXT-SEGMENT")
        .iter()
        .take(4)
        .enumerate()
    {
        let mut v = piece.to_vec();
        if v.len() >= 13 {
            v[..8].copy_from_slice(b"EVF\x09\x0d\x0a\xff\x00");
            v[8] = 1;
            v[9..11].copy_from_slice(&(i as u16 + 1).to_le_bytes());
        }
        let path = first.with_extension(format!("E{:02}", i + 1));
        if std::fs::write(&path, v).is_err() {
            break;
        }
    }
    super::read_image(&first);
    let _ = std::fs::remove_dir_all(&dir);
}
