//! Any bytes as a VMDK hosted sparse extent: the magic (`KDMV`) set so that the bytes are
//! taken for one (monolithicSparse, or streamOptimized with compressed grains, by the
//! header's own flags), then opened and read. Inputs starting with `#` are kept as they are:
//! a descriptor, whose extents name files that are not there (or the descriptor itself).
//! Then opened for writing, a few bytes staged and the commit planned (grain tables, the
//! redundant ones and the descriptor's CID).
pub fn run(data: &[u8]) {
    let mut v = data.to_vec();
    if v.len() >= 4 && v[0] != b'#' {
        v[..4].copy_from_slice(b"KDMV");
    }
    super::open_and_read(&v);
    super::plan_writes(&v);
}
