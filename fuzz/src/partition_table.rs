//! Any bytes as a disk: read its partition table with 512 and 4096-byte sectors.

use rehost::disk::{Memory, ReadAt};
use std::sync::Arc;

/// The target's body.
pub fn run(data: &[u8]) {
    let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("fuzz", data.to_vec()));
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Volume);
    for ss in [512, 4096] {
        if let Ok(l) = rehost::volume::scan(dev.clone(), ss, &ctx) {
            for v in &l.volumes {
                assert!(v.offset + v.size <= dev.size());
            }
        }
    }
}
