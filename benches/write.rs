//! An in-place commit of a typical fix on a 40 GiB dynamic VHDX (`cargo bench --bench
//! write`): a few dozen hive pages and two fragmented files, with the MFT records, index
//! blocks and bitmap bytes that go with them: 42 scattered extents, about 1.9 MiB.
//!
//! The image is made by `qemu-img create` (32 MiB blocks, as Hyper-V makes them) in a
//! temporary directory, sparse, and never kept. Two cases: the fix lands in blocks already
//! in the file (a real install, whose hive and files are there: the setup commits the same
//! extents once first), and in blocks not yet allocated. Each iteration times the commit
//! (plan, journal, writes, flushes, read-back) and is then undone, which resets the image.
//! The journal's size against the bytes changed is printed once per case.

use criterion::{criterion_group, criterion_main, Criterion};
use rehost::disk::{self, CommitOptions, WriteAt, WriteOptions};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The extents of the fix, with seeded content.
fn fix() -> Vec<(u64, Vec<u8>)> {
    let mut x = 0x9e37_79b9u64;
    let mut bytes = |n: u64| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let mut e = Vec::new();
    // 26 pages of a 12 MiB SYSTEM hive at 10 GiB.
    for i in 0..26u64 {
        e.push((10 * GIB + (i * 467 % 3000) * 4 * KIB, bytes(4 * KIB)));
    }
    // A 1 MiB driver in 4 runs at 20 GiB, a 768 KiB HAL in 4 runs at 30 GiB.
    for (base, run) in [(20 * GIB, 256 * KIB), (30 * GIB, 192 * KIB)] {
        for i in 0..4 {
            e.push((base + i * 7 * MIB, bytes(run)));
        }
    }
    // 4 MFT records, 2 index blocks, 2 pieces of $Bitmap near 3 GiB.
    for i in 0..4 {
        e.push((3 * GIB + i * 9 * KIB, bytes(KIB)));
    }
    for i in 0..2 {
        e.push((3 * GIB + 64 * MIB + i * 40 * KIB, bytes(4 * KIB)));
    }
    for i in 0..2 {
        e.push((3 * GIB + 300 * MIB + i * 4 * KIB, bytes(512)));
    }
    e
}

fn staged(path: &Path, extents: &[(u64, Vec<u8>)]) -> disk::WriteSession {
    let s = disk::open_for_write(path, &WriteOptions::in_place()).unwrap();
    for (at, b) in extents {
        s.overlay().write_at(*at, b).unwrap();
    }
    s
}

fn bench(c: &mut Criterion) {
    let have_qemu = Command::new("qemu-img").arg("--version").output().is_ok();
    if !have_qemu {
        eprintln!("SKIP: qemu-img is not installed; the write benchmark did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let extents = fix();
    let changed: u64 = extents.iter().map(|(_, b)| b.len() as u64).sum();
    for case in ["existing blocks", "new blocks"] {
        let path = dir.path().join(format!("{}.vhdx", case.replace(' ', "-")));
        let out = Command::new("qemu-img")
            .args([
                "create",
                "-q",
                "-f",
                "vhdx",
                "-o",
                "subformat=dynamic,block_size=32M",
            ])
            .arg(&path)
            .arg("40G")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if case == "existing blocks" {
            let other: Vec<(u64, Vec<u8>)> = extents
                .iter()
                .map(|(a, b)| (*a, vec![0x5a; b.len()]))
                .collect();
            staged(&path, &other)
                .commit(&CommitOptions::default())
                .unwrap();
            std::fs::remove_file(disk::journal::journal_path(&path)).unwrap();
        }
        let r = staged(&path, &extents)
            .commit(&CommitOptions::default())
            .unwrap();
        eprintln!(
            "{case}: {} extents, {changed} bytes changed; {} host writes; journal {} bytes ({:.2}x \
             the bytes changed); file {} -> {} bytes",
            r.staged_extents,
            r.host_writes,
            r.journal_bytes,
            r.journal_bytes as f64 / changed as f64,
            r.len_before,
            r.len_after
        );
        disk::undo(&path, None).unwrap();
        c.bench_function(
            &format!("commit a fix in place, 40 GiB VHDX, {case}"),
            |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let s = staged(&path, &extents);
                        let t = Instant::now();
                        s.commit(&CommitOptions::default()).unwrap();
                        spent += t.elapsed();
                        disk::undo(&path, None).unwrap();
                    }
                    spent
                })
            },
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
