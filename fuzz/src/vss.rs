//! Any bytes as an NTFS volume's Volume Shadow Copy structures: the volume header at
//! 0x1E00, the catalog it names, each store header, each store's block list counted.

/// The target's body.
pub fn run(data: &[u8]) {
    use rehost::disk::Memory;
    use rehost::fs::ntfs::vss;
    let dev = Memory::new("fuzz", data.to_vec());
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Vss);
    let Ok(Some(s)) = vss::read(&dev, &ctx) else {
        return;
    };
    assert_eq!(s.count(), s.copies.len());
    for c in &s.copies {
        if let Some(l) = &c.store {
            let _ = vss::store::count_block_descriptors(&dev, &ctx, l.block_list_offset);
        }
    }
}
