//! The body of every fuzz target, one module each, shared by the cargo-fuzz targets
//! (`fuzz_targets/`) and by the corpus replay of the test suite (`tests/fuzz_corpus.rs`),
//! which includes this file by path: what the fuzzer ran is what CI replays.
//!
//! Each body takes any bytes and may fail with an error; it must not panic, hang or
//! allocate without bound. The few assertions in them are invariants (what the editor
//! saved reads back).

pub mod bcd;
pub mod bootini;
pub mod cab;
pub mod container;
pub mod e01;
pub mod fat_volume;
pub mod inf;
pub mod lznt1;
pub mod ntfs_volume;
pub mod ntfs_write;
pub mod partition_table;
pub mod pe;
pub mod qcow2;
pub mod regf_edit;
pub mod regf_hive;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;
pub mod vss;

/// Any bytes as a volume holding `content`: open it, walk it, read up to 64 of its files
/// and its facts. The body of the NTFS and FAT volume targets.
pub fn exercise_volume(data: &[u8], content: rehost::volume::Content, layer: rehost::Layer) {
    use rehost::disk::{Memory, ReadAt};
    let dev: std::sync::Arc<dyn ReadAt> = std::sync::Arc::new(Memory::new("fuzz", data.to_vec()));
    let ctx = rehost::Ctx::new("fuzz", layer);
    let Ok(fs) = rehost::fs::FileSystem::open(dev, content, &ctx) else {
        return;
    };
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
    let _ = fs.facts();
}

/// A target's body: any bytes in, nothing out.
pub type Body = fn(&[u8]);

/// Every target by name (its corpus is `fuzz/corpus/<name>/`) with its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("bcd", bcd::run),
    ("bootini", bootini::run),
    ("cab", cab::run),
    ("container", container::run),
    ("e01", e01::run),
    ("fat_volume", fat_volume::run),
    ("inf", inf::run),
    ("lznt1", lznt1::run),
    ("ntfs_volume", ntfs_volume::run),
    ("ntfs_write", ntfs_write::run),
    ("partition_table", partition_table::run),
    ("pe", pe::run),
    ("qcow2", qcow2::run),
    ("regf_edit", regf_edit::run),
    ("regf_hive", regf_hive::run),
    ("vhd", vhd::run),
    ("vhdx", vhdx::run),
    ("vmdk", vmdk::run),
    ("vss", vss::run),
];

/// Run once before the first input: the panic hook libfuzzer-sys installs aborts on every
/// panic, even one the library catches on purpose (a third-party parser's panic on damaged
/// input turned into an error: the `cab` crate, nt-hive). This hook prints the panic's
/// message and location only (a backtrace per caught panic slows the fuzzer down); a panic
/// that escapes the library still reaches libfuzzer-sys's wrapper, which aborts.
pub fn init() {
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
}

/// Writes `data` to a file of its own in the temporary directory, hands its path to `f`,
/// and removes it: the containers are opened from a path.
pub fn with_file<T>(data: &[u8], f: impl FnOnce(&std::path::Path) -> T) -> Option<T> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rehost-fuzz-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("image");
    let out = std::fs::write(&path, data).ok().map(|()| f(&path));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Opens `data` as an image file for writing, stages a few bytes at its start, middle and
/// end, and plans the commit (the container's tables walked and extended as a write in place
/// would), without writing anything.
pub fn plan_writes(data: &[u8]) {
    use rehost::disk::{self, ReadAt, WriteAt};
    with_file(data, |path| {
        let opts = disk::WriteOptions {
            in_place: false,
            ..disk::WriteOptions::in_place()
        };
        let Ok(s) = disk::open_for_write(path, &opts) else {
            return;
        };
        let o = s.overlay();
        let size = o.size();
        for at in [0, size / 2, size.saturating_sub(700)] {
            let n = 700.min(size - at.min(size)) as usize;
            let _ = o.write_at(at, &vec![0xA5; n]);
        }
        let _ = s.plan(&Default::default());
    });
}

/// Opens `data` as an image file (raw, VHD, VHDX, VMDK or qcow2 by its content) and reads its first
/// 16 MiB, block by block.
pub fn open_and_read(data: &[u8]) {
    with_file(data, read_image);
}

/// Opens the image file at `path` and reads its first 16 MiB, block by block.
pub fn read_image(path: &std::path::Path) {
    use rehost::disk::{self, ReadAt};
    let opts = disk::OpenOptions {
        cache_blocks: 0,
        map_raw: false,
        ..Default::default()
    };
    if let Ok(d) = disk::open(path, &opts) {
        let mut buf = vec![0u8; 65536];
        let mut pos = 0;
        while pos + 65536 <= d.size().min(16 << 20) {
            let _ = d.read_at(pos, &mut buf);
            pos += 65536;
        }
        let tail = (d.size() % 65536) as usize;
        if d.size() <= 16 << 20 && tail > 0 {
            let _ = d.read_at(d.size() - tail as u64, &mut buf[..tail]);
        }
    }
}

/// Splits `data` at each `sep`.
pub fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}
