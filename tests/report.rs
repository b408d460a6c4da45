//! `rehost report` against the ledger it reads: a small fleet of Windows fixtures (several
//! versions and faults, each image twice) is checked against three targets and fixed in
//! place, into two ledgers as two shards would write them; the report's numbers (JSON, and
//! the HTML page as headless Chromium renders it, its script run) are compared with the
//! same counts taken from the ledgers by SQL here. The page's screenshot is left in the
//! test's output folder.

mod common;

use common::report::check_report;
use common::{rehost_command, windows_image};
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 6] = [
    "win7",
    "ws2019-bios",
    "w2k3-sp2",
    "win10-dirty",
    "ws2019-letter",
    "vista-x86",
];
const TARGETS: [&str; 3] = ["kvm-sata", "hyperv-gen1", "vmware-pvscsi"];

/// The fleet: each fixture twice, in `dir`, split into two halves (two shards).
fn fleet(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for name in FIXTURES {
        let src = windows_image(name);
        let ext = src.extension().unwrap().to_string_lossy().into_owned();
        for copy in 0..2 {
            let dst = dir.join(format!("{name}-{copy}.{ext}"));
            std::fs::copy(&src, &dst).unwrap();
            if copy == 0 { &mut a } else { &mut b }.push(dst);
        }
    }
    (a, b)
}

/// Runs rehost with `args` over `images`; exit 0 or 3 (an install that does not boot).
fn rehost(args: &[&str], images: &[PathBuf]) {
    let out = rehost_command().args(args).args(images).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "rehost {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn report_numbers_equal_the_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = fleet(dir.path());
    let la = dir.path().join("shard-a.db");
    let lb = dir.path().join("shard-b.db");
    let targets: Vec<String> = TARGETS.iter().map(|t| format!("--target={t}")).collect();
    let t: Vec<&str> = targets.iter().map(String::as_str).collect();
    for (images, ledger) in [(&a, &la), (&b, &lb)] {
        let l = ledger.to_str().unwrap();
        rehost(&[&["check", "-q", "--ledger", l], &t[..]].concat(), images);
        rehost(
            &["fix", "-q", "--ledger", l, "-t", "kvm-sata", "--in-place"],
            images,
        );
    }
    let ledgers = [la.as_path(), lb.as_path()];
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report");
    for command in ["check", "fix"] {
        let want = check_report(&ledgers, command, &out_dir);
        assert_eq!(want["images"], (FIXTURES.len() * 2) as u64);
        assert!(want.keys().any(|k| k.starts_with("rule.")), "{want:?}");
        if command == "fix" {
            assert!(want["committed"] > 0, "{want:?}");
            assert!(
                want.keys().any(|k| k.starts_with("transition.")),
                "{want:?}"
            );
        }
    }
}
