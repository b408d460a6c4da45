//! Any bytes as a qcow2 image: the magic (`QFI\xfb`) set so that the bytes are taken for
//! one, then opened (header, extensions, L1 table, snapshot table) and read (L2 tables,
//! standard, zero, compressed and subclusters). A backing file or external data file it names
//! is not there, beside the temporary file. Then opened for writing, a few bytes staged
//! and the commit planned (L2 tables, refcount table and blocks walked and extended).
pub fn run(data: &[u8]) {
    let mut v = data.to_vec();
    if v.len() >= 4 {
        v[..4].copy_from_slice(b"QFI\xfb");
    }
    super::open_and_read(&v);
    super::plan_writes(&v);
}
