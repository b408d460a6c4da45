//! `rehost check` against every target profile beside `rehost inspect` of the same image,
//! in process (run `cargo bench --bench check`). The check reads what inspect reads and
//! then runs every rule for each of the built-in targets; the target is a check that
//! costs at most 20% more than the inspect.
//!
//! Criterion measures inspect, check and the rules alone (on an image already opened)
//! one after the other; on a shared machine their medians drift with the load, so the
//! last group also times the two alternately, pair by pair, and prints the ratio of the
//! medians. Loading the profiles (TOML) is measured apart: a fleet run loads them once.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

const IMAGES: [&str; 4] = [
    "win7.vhd",
    "ws2019.vhdx",
    "w2k3-restored.vhd",
    "win10-dirty.vhdx",
];

fn bench(c: &mut Criterion) {
    let targets = rehost::rules::target::builtin().unwrap();
    assert!(!targets.is_empty());
    c.bench_function("load the built-in target profiles", |b| {
        b.iter(|| rehost::rules::target::builtin().unwrap())
    });
    for name in IMAGES {
        let image = common::fixture(&format!("windows/{name}.zst"));
        let mut g = c.benchmark_group(name);
        g.bench_function("inspect", |b| {
            b.iter(|| rehost::windows::inspect(&image).unwrap())
        });
        g.bench_function("check, every target", |b| {
            b.iter(|| rehost::rules::check(&image, &targets).unwrap())
        });
        let opened = rehost::windows::open(&image).unwrap();
        g.bench_function("rules alone, every target", |b| {
            b.iter(|| rehost::rules::check_opened(&opened, &targets))
        });
        g.finish();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// inspect and check alternately, 300 pairs per image: the ratio of the medians.
fn alternate(_: &mut Criterion) {
    // `cargo test` runs benches once each to see that they work: this one is long.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let targets = rehost::rules::target::builtin().unwrap();
    println!("inspect and check (every target) alternately, 300 pairs each, medians:");
    for name in IMAGES {
        let image = common::fixture(&format!("windows/{name}.zst"));
        let (mut i, mut k) = (Vec::new(), Vec::new());
        for _ in 0..300 {
            let t = Instant::now();
            std::hint::black_box(rehost::windows::inspect(&image).unwrap());
            i.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            std::hint::black_box(rehost::rules::check(&image, &targets).unwrap());
            k.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (i, k) = (median(i), median(k));
        println!(
            "  {name:<18} inspect {i:7.3} ms   check {k:7.3} ms   check/inspect {:.3}",
            k / i
        );
    }
}

criterion_group!(benches, bench, alternate);
criterion_main!(benches);
