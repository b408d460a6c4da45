//! In-process costs of the reading layers, on the fixture disks (run
//! `cargo bench --bench read`; whole-command timings beside peers are in
//! `scripts/bench-read.sh`).
//!
//! - open: container, partition table and NTFS volume of the GPT disk as a dynamic VHDX;
//! - lookup: a 13-level path resolved from the root;
//! - read: the 1.5 MiB fixture file through each container format (throughput);
//! - list: the 800-entry directory;
//! - inspect: a whole `rehost inspect` of two phony installs (Windows 7 with its real
//!   11 MiB SYSTEM hive, Server 2019 on GPT).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rehost::disk::{self, ReadAt};
use rehost::fs::ntfs::Ntfs;
use rehost::volume;
use rehost::{Ctx, Layer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[path = "../tests/common/mod.rs"]
mod common;

/// A fixture disk, rebuilt into testdata/.cache from its patch like the tests do.
fn fixture(name: &str) -> PathBuf {
    common::disk_fixture(name)
}

fn open_ntfs(path: &Path) -> Ntfs {
    let d = disk::open(path, &Default::default()).unwrap();
    let ctx = Ctx::new("bench", Layer::Volume);
    let layout = volume::scan(d.reader(), 512, &ctx).unwrap();
    let v = layout
        .volumes
        .iter()
        .find(|v| v.content == volume::Content::Ntfs)
        .unwrap();
    let dev = Arc::new(volume::open_volume(d.reader(), v, &ctx).unwrap());
    Ntfs::open(dev, ctx).unwrap()
}

fn bench(c: &mut Criterion) {
    let gpt = fixture("gpt.dynamic-1m.vhdx");
    c.bench_function("open gpt.dynamic-1m.vhdx to NTFS", |b| {
        b.iter(|| open_ntfs(&gpt))
    });
    let ntfs = open_ntfs(&gpt);
    let deep = "deep/level-1/level-2/level-3/level-4/level-5/level-6/level-7/level-8/level-9/level-10/level-11/level-12/leaf.txt";
    c.bench_function("lookup 13-level path", |b| {
        b.iter(|| ntfs.lookup(deep).unwrap())
    });
    let many = ntfs.lookup("many").unwrap();
    c.bench_function("list 800-entry directory", |b| {
        b.iter(|| ntfs.read_dir(&many, "many").unwrap())
    });
    let mut g = c.benchmark_group("read 1.5 MiB file");
    g.throughput(Throughput::Bytes(1_572_864));
    for c_name in ["raw", "dynamic.vhd", "dynamic-1m.vhdx", "dynamic-32m.vhdx"] {
        let n = open_ntfs(&fixture(&format!("gpt.{c_name}")));
        let f = n.lookup("sizes/1m5.bin").unwrap();
        let s = n.data(&f, "").unwrap();
        let mut buf = vec![0u8; s.size() as usize];
        g.bench_function(c_name, |b| b.iter(|| s.read_at(0, &mut buf).unwrap()));
    }
    g.finish();
    for name in ["win7.vhd", "ws2019.vhdx"] {
        let image = common::fixture(&format!("windows/{name}.zst"));
        c.bench_function(&format!("inspect {name}"), |b| {
            b.iter(|| rehost::windows::inspect(&image).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
