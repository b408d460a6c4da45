//! Any bytes as an NTFS volume to write: the writer opened over a staging overlay of the
//! input, then a directory made, files put, replaced and renamed, and an existing file of
//! the root renamed. Refusals are fine; a panic, a hang or a runaway allocation is not.

use rehost::disk::{Memory, Overlay, ReadAt, WindowMut, WriteAt};
use rehost::fs::ntfs::write::{WriteOptions, Writer};
use std::sync::Arc;

/// The target's body.
pub fn run(data: &[u8]) {
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Ntfs);
    let base: Arc<dyn ReadAt> = Arc::new(Memory::new("fuzz", data.to_vec()));
    let overlay = Arc::new(Overlay::new(base, ctx.clone()));
    let size = overlay.size();
    let Ok(win) = WindowMut::new(overlay, 0, size, ctx.clone()) else {
        return;
    };
    let dev: Arc<dyn WriteAt> = Arc::new(win);
    let opts = WriteOptions {
        allow_dirty_volume: true,
        time: Some(132_000_000_000_000_000),
        ..WriteOptions::default()
    };
    let Ok(mut w) = Writer::open(dev, ctx, opts) else {
        return;
    };
    let existing = w
        .reader()
        .root()
        .and_then(|root| w.reader().read_dir(&root, "/"));
    let existing: Vec<String> = existing
        .map(|es| {
            es.into_iter()
                .map(|e| e.name)
                .filter(|n| !n.starts_with('$'))
                .take(2)
                .collect()
        })
        .unwrap_or_default();
    let _ = w.mkdir("/fuzzdir");
    let _ = w.put("/fuzzdir/small.txt", b"small");
    let _ = w.put("/big.bin", &vec![0x5a; 70_000]);
    let _ = w.replace("/big.bin", b"now resident");
    let _ = w.rename("/fuzzdir/small.txt", "/moved.txt");
    for name in existing {
        let _ = w.rename(&format!("/{name}"), &format!("/{name}.old"));
        let _ = w.put(&format!("/{name}"), b"replacement");
    }
}
