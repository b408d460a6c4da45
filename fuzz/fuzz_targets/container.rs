//! Any bytes as an image file (raw, VHD or VHDX by content): open it and read it all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rehost::disk::{self, ReadAt};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("rehost-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("image");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let opts = disk::OpenOptions {
        cache_blocks: 0,
        map_raw: false,
    };
    if let Ok(d) = disk::open(&path, &opts) {
        let mut buf = vec![0u8; 65536];
        let mut pos = 0;
        while pos + 65536 <= d.size().min(16 << 20) {
            let _ = d.read_at(pos, &mut buf);
            pos += 65536;
        }
    }
});
