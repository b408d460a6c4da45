//! Any bytes as a VHD: the footer (`conectix`) copied to the head and the tail, so that
//! the bytes are taken for a VHD (fixed or, with a dynamic header, dynamic or
//! differencing), then opened and read.

/// The target's body.
pub fn run(data: &[u8]) {
    let mut v = data.to_vec();
    if v.len() >= 512 {
        v[..8].copy_from_slice(b"conectix");
        let n = v.len();
        v[n - 512..n - 504].copy_from_slice(b"conectix");
    }
    super::open_and_read(&v);
}
