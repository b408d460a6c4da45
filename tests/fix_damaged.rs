//! Damaged Windows images through the whole pipeline: the sample (Server 2003, boot.ini,
//! hives, the driver cache's cabinets) and the Windows 7 image around its real SYSTEM hive,
//! as raw disks, with bytes changed in the files the rules read (hives, boot.ini, the
//! cabinets, their MFT records) or anywhere. `rehost check` and `rehost fix` must answer
//! or fail with an error, never panic or hang; whatever fix writes must then check as
//! booting on the target, as fix promises. Each run of the binary is held to 512 MiB of
//! peak RSS and a minute (`common::bounded`, issue 13).

mod common;

use common::{bounded, Rng};
use rehost::disk;
use rehost::fs::ntfs::Ntfs;
use rehost::{Ctx, Layer};
use std::path::Path;
use std::time::Duration;

/// A run of the binary through a trampoline hosted by the test `host`, killed when it takes
/// longer than `limit`, its peak RSS held to 512 MiB and kept in `peak`: (exit code,
/// stderr).
fn run_limited(
    host: &str,
    peak: &bounded::Peak,
    args: &[&str],
    limit: Duration,
) -> (Option<i32>, String) {
    let mut argv = vec![env!("CARGO_BIN_EXE_rehost")];
    argv.extend_from_slice(args);
    let run = bounded::run(host, &argv, &[], limit).unwrap_or_else(|e| panic!("{e}"));
    peak.check(&format!("rehost {args:?}"), &run);
    (run.code, run.stderr)
}

/// The image as raw bytes, and the disk ranges of what the rules read in its first NTFS
/// volume: the data and the MFT records of `files`.
fn raw_and_targets(image: &Path, files: &[&str]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let d = disk::open(image, &Default::default()).unwrap();
    let raw = common::read_all(&*d.reader());
    let ctx = Ctx::new("fixture", Layer::Volume);
    let layout = rehost::volume::scan(d.reader(), 512, &ctx).unwrap();
    let v = layout
        .volumes
        .iter()
        .find(|v| {
            let dev = rehost::volume::open_volume(d.reader(), v, &ctx).unwrap();
            Ntfs::open(std::sync::Arc::new(dev), ctx.clone())
                .is_ok_and(|n| n.lookup(files[0]).is_ok())
        })
        .expect("the install's volume");
    let dev = rehost::volume::open_volume(d.reader(), v, &ctx).unwrap();
    let ntfs = Ntfs::open(std::sync::Arc::new(dev), ctx.clone()).unwrap();
    let mft = ntfs.data(&ntfs.file(0).unwrap(), "").unwrap();
    let record_at = |n: u64| {
        let at = n * 1024;
        mft.extents()
            .iter()
            .find(|e| e.offset <= at && at < e.offset + e.len)
            .and_then(|e| e.volume_offset.map(|o| o + at - e.offset))
    };
    let mut targets = Vec::new();
    for f in files {
        let file = ntfs.lookup(f).unwrap();
        if let Some(at) = record_at(file.record) {
            targets.push(((v.offset + at) as usize, (v.offset + at + 1024) as usize));
        }
        for e in ntfs.data(&file, "").unwrap().extents() {
            if let Some(o) = e.volume_offset {
                targets.push(((v.offset + o) as usize, (v.offset + o + e.len) as usize));
            }
        }
    }
    (raw, targets)
}

/// `n` rounds of damage to `image` (in `files` mostly), each checked and fixed by the
/// binary run through the test `host`: how many rounds check could not read, fix wrote,
/// fix did not.
fn rounds(
    host: &str,
    image: &Path,
    files: &[&str],
    target: &str,
    seed: u64,
    n: usize,
) -> [usize; 3] {
    let (raw, targets) = raw_and_targets(image, files);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("damaged.img");
    let out = dir.path().join("fixed.img");
    let (img_s, out_s) = (img.to_str().unwrap(), out.to_str().unwrap());
    let mut rng = Rng(seed);
    // Rounds whose check failed to read, that fix wrote, that fix refused or could not do.
    let mut counts = [0usize; 3];
    let limit = bounded::WALL;
    let peak = bounded::Peak::new(format!("check and fix of {}", image.display()));
    for round in 0..n {
        let mut b = raw.clone();
        for _ in 0..1 + rng.below(6) {
            let (lo, hi) = if rng.below(10) < 8 {
                targets[rng.below(targets.len() as u64) as usize]
            } else {
                (0, b.len())
            };
            let at = lo + rng.below((hi - lo) as u64) as usize;
            let len = (1 + rng.below(48) as usize).min(b.len() - at);
            for x in &mut b[at..at + len] {
                *x = rng.below(256) as u8;
            }
        }
        std::fs::write(&img, &b).unwrap();
        let (code, err) = run_limited(
            host,
            &peak,
            &["check", img_s, "-t", target, "--json"],
            limit,
        );
        assert!(
            matches!(code, Some(0 | 1 | 3)) && !err.contains("panicked"),
            "round {round}: check exit {code:?}: {err}"
        );
        counts[0] += (code == Some(1)) as usize;
        let _ = std::fs::remove_file(&out);
        let (code, err) = run_limited(
            host,
            &peak,
            &["fix", img_s, "-t", target, "--output", out_s, "--json"],
            limit,
        );
        assert!(
            matches!(code, Some(0 | 1 | 3)) && !err.contains("panicked"),
            "round {round}: fix exit {code:?}: {err}"
        );
        if code == Some(0) && out.exists() {
            counts[1] += 1;
            let (code, err) = run_limited(
                host,
                &peak,
                &["check", out_s, "-t", target, "--json"],
                limit,
            );
            assert_eq!(
                code,
                Some(0),
                "round {round}: the fixed image does not boot: {err}"
            );
        } else {
            counts[2] += 1;
        }
        assert_eq!(
            std::fs::read(&img).unwrap(),
            b,
            "round {round}: fix --output wrote the source"
        );
    }
    eprintln!(
        "{}: {n} rounds: {} unreadable for check, {} fixed and checked again, {} not fixed",
        image.display(),
        counts[0],
        counts[1],
        counts[2]
    );
    peak.report();
    counts
}

#[test]
fn damaged_server_2003_sample_never_panics_check_or_fix() {
    const TEST: &str = "damaged_server_2003_sample_never_panics_check_or_fix";
    if bounded::trampoline() {
        return;
    }
    let sample = common::root().join("testdata/sample/sample.vhd");
    let files = [
        "/WINDOWS/system32/config/SYSTEM",
        "/WINDOWS/system32/config/SOFTWARE",
        "/boot.ini",
        "/WINDOWS/Driver Cache/i386/sp2.cab",
        "/WINDOWS/system32/hal.dll",
        "/WINDOWS/system32/kernel32.dll",
    ];
    let c = rounds(TEST, &sample, &files, "hyperv-gen1", 0xfa11_0001, 120);
    assert!(
        c[1] > 0 && c[2] > 0,
        "{c:?}: the damage should both leave fixable images and stop some fixes"
    );
}

#[test]
fn damaged_windows_7_never_panics_check_or_fix() {
    const TEST: &str = "damaged_windows_7_never_panics_check_or_fix";
    if bounded::trampoline() {
        return;
    }
    let win7 = common::fixture("windows/win7.vhd.zst");
    let files = [
        "/Windows/System32/config/SYSTEM",
        "/Windows/System32/config/SOFTWARE",
        "/Windows/System32/ntoskrnl.exe",
    ];
    let c = rounds(TEST, &win7, &files, "kvm-sata", 0xfa11_0002, 40);
    assert!(c[1] > 0, "{c:?}: no damaged image was fixable");
}
