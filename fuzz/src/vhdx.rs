//! Any bytes as a VHDX (the file type identifier `vhdxfile` put at the head): headers,
//! region tables, metadata, BAT, parent locator, and the log replayed in memory when
//! the header names one; then the disk read.

/// The target's body.
pub fn run(data: &[u8]) {
    let mut v = data.to_vec();
    if v.len() >= 8 {
        v[..8].copy_from_slice(b"vhdxfile");
    }
    super::open_and_read(&v);
}
