//! Any bytes as a FAT volume: open, walk, read every file.

use rehost::disk::{Memory, ReadAt};
use rehost::fs::FileSystem;
use rehost::volume::Content;
use std::sync::Arc;

/// The target's body.
pub fn run(data: &[u8]) {
    let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("fuzz", data.to_vec()));
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Fat);
    if let Ok(fs) = FileSystem::open(dev, Content::Fat16, &ctx) {
        let mut files = Vec::new();
        fs.walk(
            "",
            &mut |p, e| {
                if !e.is_dir && files.len() < 64 {
                    files.push(p.to_string())
                }
            },
            &mut |_, _| {},
        );
        for f in files {
            let _ = fs.copy_to(&f, "", &mut std::io::sink());
        }
    }
}
