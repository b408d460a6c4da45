//! In-process costs of the NTFS writer (run `cargo bench --bench ntfs_write`). Each operation is
//! staged in an overlay and read back through the reader, as in use; nothing is committed.
//!
//! - put of a 64 MiB file into a fresh 100 MiB volume (mkntfs, 4 KiB clusters);
//! - 1,000 small creates in one directory of the fixture volume (its index splits, its
//!   MFT grows).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rehost::disk::{self, Overlay, ReadAt, WindowMut, WriteAt};
use rehost::fs::ntfs::write::{WriteOptions, Writer};
use rehost::{Ctx, Layer};
use std::path::Path;
use std::sync::Arc;

#[path = "../tests/common/mod.rs"]
mod common;

/// A writer over a fresh overlay above `image` (read-only).
fn writer(base: &Arc<dyn ReadAt>) -> Writer {
    let ctx = Ctx::new("bench", Layer::Raw);
    let overlay = Arc::new(Overlay::new(base.clone(), ctx.clone()));
    let size = overlay.size();
    let dev: Arc<dyn WriteAt> = Arc::new(WindowMut::new(overlay, 0, size, ctx.clone()).unwrap());
    Writer::open(dev, ctx, WriteOptions::default()).unwrap()
}

fn open(path: &Path) -> Arc<dyn ReadAt> {
    disk::open(path, &Default::default()).unwrap().reader()
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("fresh.ntfs");
    std::fs::File::create(&fresh)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let made = std::process::Command::new("mkntfs")
        .args(["-F", "-Q", "-q", "-c", "4096"])
        .arg(&fresh)
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let base = open(&fresh);
        let data = common::pattern(64 << 20, 1);
        let mut g = c.benchmark_group("put");
        g.sample_size(10)
            .throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function("64 MiB file", |b| {
            b.iter_batched(
                || writer(&base),
                |mut w| w.create("/big.bin", &data).unwrap(),
                BatchSize::PerIteration,
            )
        });
        g.finish();
    } else {
        eprintln!("SKIP: mkntfs is not installed; the 64 MiB put was not measured");
    }
    let base = open(&common::disk_fixture("bare.raw"));
    let mut g = c.benchmark_group("create");
    g.sample_size(10).throughput(Throughput::Elements(1000));
    g.bench_function("1,000 small files in one directory", |b| {
        b.iter_batched(
            || writer(&base),
            |mut w| {
                for i in 0..1000 {
                    w.create(&format!("/case/A/file-{i:04}.txt"), b"a small file")
                        .unwrap();
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
