//! A file fragmented past what one MFT record maps: ntfs-3g writes its `$DATA` runs into
//! extension records and an `$ATTRIBUTE_LIST`, as Windows does for a large, long-lived
//! hive. The writer rewrites its bytes (in place, only changed pages), grows it (clusters
//! appended to its last extent) and shrinks it; ntfs-3g and the Sleuth Kit read the result.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use harness::{check_volume, Model, Staged};
use rehost::fs::ntfs::runlist::Run;
use rehost::fs::ntfs::write::WriteOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

fn opts() -> WriteOptions {
    WriteOptions {
        time: Some(133_500_000_000_000_000),
        ..WriteOptions::default()
    }
}

/// A 32 MiB volume whose `/A` and `/B` ntfs-3g grew a cluster at a time, in turn
/// (ntfsfallocate), so that each lies in `clusters` one-cluster runs: more than one record
/// maps, so ntfs-3g moves `$DATA` extents into extension records behind an attribute list.
fn fragmented_volume(dir: &Path, clusters: usize) -> PathBuf {
    let vol = dir.join("frag.ntfs");
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    common::run(
        Command::new("mkntfs")
            .args(["-F", "-Q", "-q", "-c", "4096", "-L", "FRAG"])
            .arg(&vol),
    );
    let seed = dir.join("seed");
    std::fs::write(&seed, b"a\n").unwrap();
    for f in ["/A", "/B"] {
        common::run(Command::new("ntfscp").arg("-q").arg(&vol).arg(&seed).arg(f));
    }
    for i in 0..clusters {
        for f in ["/A", "/B"] {
            common::run(
                Command::new("ntfsfallocate")
                    .args(["-f", "-o", &(i * 4096).to_string(), "-l", "4096"])
                    .arg(&vol)
                    .arg(f),
            );
        }
    }
    vol
}

#[test]
fn a_file_with_an_attribute_list_is_rewritten_grown_and_shrunk() {
    for tool in [
        "mkntfs",
        "ntfscp",
        "ntfsfallocate",
        "ntfscat",
        "fls",
        "icat",
    ] {
        if !common::have_tool(tool) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = fragmented_volume(dir.path(), 260);
    let staged = Staged::open(&vol, 0);
    let f = staged.reader().lookup("/A").unwrap();
    assert!(
        f.attribute_list().is_some(),
        "ntfs-3g did not give the fragmented file an attribute list"
    );
    let runs = staged.reader().data(&f, "").unwrap().desc().runs.len();
    assert!(runs > 200, "{runs} runs");
    let mut model = Model::read(staged.reader());
    // ntfs-3g initialized two bytes of it: the rest reads as zeros.
    let old = model.files["A"].1.clone();
    assert_eq!(old.len(), 260 * 4096);
    assert!(old[2..].iter().all(|b| *b == 0));
    let mut w = staged.writer(opts()).unwrap();

    // The same size, new bytes everywhere: written in the file's own clusters, and the
    // initialized size moved to the end.
    let mut new = common::pattern(old.len(), 4);
    w.replace("/A", &new).unwrap();
    drop(w);
    let first = dir.path().join("first.ntfs");
    staged.commit_to(&first);

    // On that volume, a few bytes and a patch across many runs: only those pages staged.
    let staged = Staged::open(&first, 0);
    let mut w = staged.writer(opts()).unwrap();
    for at in [0usize, 5000, 700_000, new.len() - 1] {
        new[at] ^= 0x5a;
    }
    w.replace("/A", &new).unwrap();
    let patch = common::pattern(30_000, 6);
    w.write("/A", 100_001, &patch).unwrap();
    new[100_001..130_001].copy_from_slice(&patch);
    let staged_bytes: usize = staged.overlay.extents().iter().map(|(_, b)| b.len()).sum();
    assert!(staged_bytes < 96 << 10, "{staged_bytes} bytes staged");

    drop(w);
    let second = dir.path().join("second.ntfs");
    staged.commit_to(&second);

    // On that one, sizes change: a write past the end (a new cluster, appended to the runs
    // of the last extent, in its extension record), a longer length (three more clusters
    // and a few bytes, reading as zeros), then a shorter content (sizes alone).
    let staged = Staged::open(&second, 0);
    let mut w = staged.writer(opts()).unwrap();
    let tail = common::pattern(5000, 7);
    let at = new.len() as u64 - 10;
    w.write("/A", at, &tail).unwrap();
    new.truncate(at as usize);
    new.extend_from_slice(&tail);
    let longer = new.len() + 3 * 4096 + 5;
    w.set_len("/A", longer as u64).unwrap();
    new.resize(longer, 0);
    let clusters = |runs: &[Run]| runs.iter().map(|r| r.len).sum::<u64>();
    let grown = staged.reader().lookup("/A").unwrap();
    let grown_runs = staged
        .reader()
        .data(&grown, "")
        .unwrap()
        .desc()
        .runs
        .clone();
    assert!(
        clusters(&grown_runs) >= 264,
        "{} clusters",
        clusters(&grown_runs)
    );
    let shorter = common::pattern(700_001, 8);
    w.replace("/A", &shorter).unwrap();
    new = shorter;
    drop(w);

    // The runs ntfs-3g made are still the file's first ones; the new clusters follow.
    let g = staged.reader().lookup("/A").unwrap();
    assert!(g.attribute_list().is_some());
    let now = staged.reader().data(&g, "").unwrap().desc().runs.clone();
    let then = Staged::open(&vol, 0)
        .reader()
        .data(&f, "")
        .unwrap()
        .desc()
        .runs
        .clone();
    assert_eq!(now[..then.len() - 1], then[..then.len() - 1]);
    let (r, _) = model.files["A"].clone();
    model.files.insert("A".into(), (r, new));
    model.touched.insert("A".into());
    model.touched.insert("B".into());
    let out = dir.path().join("out.ntfs");
    staged.commit_to(&out);
    check_volume(&out, &model, 10, "fragmented file");
}
