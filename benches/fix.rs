//! In-process cost of `rehost fix` (run `cargo bench --bench fix`; whole commands and a
//! fleet of 200 images are in `scripts/bench-fix.sh`): the Windows 7 fixture (its real
//! 11.7 MB SYSTEM hive) in a 40 GiB dynamic VHDX, fixed for kvm-sata (msahci to boot start
//! in both control sets, checked again through the overlay):
//! - `--dry-run`: open, check, plan, stage, check again;
//! - `--in-place`: the same, then the commit behind the undo journal; the undo that puts the
//!   image back between iterations is outside the timing.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rehost::fs::staged::Mode;
use rehost::rules::fix::{run, FixOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../tests/common/mod.rs"]
mod common;

/// The 40 GiB dynamic VHDX holding the Windows 7 fixture, built once with qemu-img.
fn image() -> PathBuf {
    let dir = common::root().join("target/bench/fix");
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("win7-40g-criterion.vhdx");
    if !big.exists() {
        let raw = dir.join("win7-criterion.raw");
        let vhd = common::fixture("windows/win7.vhd.zst");
        common::run(
            Command::new("qemu-img")
                .args(["convert", "-q", "-f", "vpc", "-O", "raw"])
                .arg(&vhd)
                .arg(&raw),
        );
        let f = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
        f.set_len(40 << 30).unwrap();
        common::run(
            Command::new("qemu-img")
                .args([
                    "convert",
                    "-q",
                    "-f",
                    "raw",
                    "-O",
                    "vhdx",
                    "-o",
                    "subformat=dynamic",
                ])
                .arg(&raw)
                .arg(&big),
        );
        std::fs::remove_file(&raw).unwrap();
    }
    big
}

fn undo_if_written(img: &Path) {
    let journal = PathBuf::from(format!("{}.rehost-undo", img.display()));
    if journal.exists() {
        rehost::disk::undo(img, None).unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let img = image();
    undo_if_written(&img);
    let target = rehost::rules::target::load(None)
        .unwrap()
        .into_iter()
        .find(|t| t.name == "kvm-sata")
        .unwrap();
    let opts = FixOptions::default();
    let mut g = c.benchmark_group("fix");
    g.sample_size(20);
    g.bench_function("win7 in a 40 GiB dynamic VHDX, kvm-sata, --dry-run", |b| {
        b.iter(|| {
            let r = run::fix(&img, &target, Mode::DryRun, &opts, false).unwrap();
            assert!(r.installs[0].after.boots());
        })
    });
    g.bench_function("win7 in a 40 GiB dynamic VHDX, kvm-sata, --in-place", |b| {
        b.iter_batched(
            || undo_if_written(&img),
            |_| {
                let r = run::fix(&img, &target, Mode::InPlace, &opts, false).unwrap();
                assert!(r.committed);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    undo_if_written(&img);
}

criterion_group!(fix_benches, benches);
criterion_main!(fix_benches);
