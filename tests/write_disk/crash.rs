//! Commits killed with SIGKILL from outside, between any two of their steps.
//!
//! The helper process is this test binary itself, run as
//! `write_disk --ignored --exact crash::crash_helper` with the image and the step to stop
//! at in its environment: it stages a seeded workload, commits in place, and at the chosen
//! step creates a flag file and sleeps until it is killed. The test waits for the flag,
//! kills it, opens the image for writing (which rolls back an interrupted commit), and
//! requires the image to be byte for byte the image of before or that of the complete
//! commit (made once, uninterrupted, with the same seeds). For VHDX, every kill after the
//! header that names the commit's log leaves an image whose log replays to the new
//! metadata: rehost's reader (which replays in memory) and qemu-img (after `check -r all`)
//! read the complete commit's disk from it before any rollback.

use super::*;
use rehost::disk::{ReadAt, Step};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SEED: u64 = 0xc4a5;
/// The seed that makes the helper undo instead of commit.
const UNDO: u64 = u64::MAX;

/// The writes of the helper's commit.
fn crash_writes(size: u64, block: u64, seed: u64) -> Vec<(u64, Vec<u8>)> {
    workload(&mut Rng(seed), size, block, 60, 1)
}

#[test]
#[ignore = "the helper process of the crash tests, which run it themselves"]
fn crash_helper() {
    let Some(image) = std::env::var_os("REHOST_CRASH_IMAGE").map(PathBuf::from) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let at: u64 = var("REHOST_CRASH_AT").parse().unwrap();
    let seed: u64 = var("REHOST_CRASH_SEED").parse().unwrap();
    let flag = PathBuf::from(var("REHOST_CRASH_FLAG"));
    let log = PathBuf::from(var("REHOST_CRASH_LOG"));
    let steps = Mutex::new(Vec::new());
    let observer = |s: &Step| {
        steps
            .lock()
            .unwrap()
            .push(format!("{} {} {}", s.number, s.phase, s.action));
        if s.number == at {
            std::fs::write(&flag, b"").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    if std::env::var_os("REHOST_CRASH_UNDO").is_some() {
        disk::undo(&image, Some(&observer)).unwrap();
    } else {
        let d = disk::open(&image, &Default::default()).unwrap();
        let block = d.info().block_size.map_or(1 << 20, u64::from);
        let writes = crash_writes(d.size(), block, seed);
        drop(d);
        let opts = CommitOptions {
            observer: Some(&observer),
            seed: Some(seed),
            vmdk_adapter: None,
        };
        stage(&image, true, &writes).commit(&opts).unwrap();
    }
    std::fs::write(log, steps.lock().unwrap().join("\n")).unwrap();
}

fn spawn(image: &Path, at: u64, seed: u64, dir: &Path) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    if seed == UNDO {
        c.env("REHOST_CRASH_UNDO", "1");
    }
    c.args(["--ignored", "--exact", "crash::crash_helper", "--quiet"])
        .env("REHOST_CRASH_IMAGE", image)
        .env("REHOST_CRASH_AT", at.to_string())
        .env("REHOST_CRASH_SEED", seed.to_string())
        .env("REHOST_CRASH_FLAG", dir.join("paused"))
        .env("REHOST_CRASH_LOG", dir.join("steps"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs the helper to stop at step `at` and kills it there; `false` when the commit had
/// fewer steps and finished.
fn kill_at(image: &Path, at: u64, seed: u64) -> bool {
    let dir = image.parent().unwrap();
    let _ = std::fs::remove_file(dir.join("paused"));
    let mut child = spawn(image, at, seed, dir);
    let start = Instant::now();
    loop {
        if dir.join("paused").exists() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the helper failed at step {at}");
            return false;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the helper hangs"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Copies `files` of `from` into a fresh directory `to`.
fn fresh(from: &Path, to: &Path, files: &[String]) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for f in files {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// What the crash runs of one image found.
struct Outcome {
    points: usize,
    before: usize,
    after: usize,
    /// Kill points after which the log replayed to the complete commit's disk.
    replayed: usize,
}

/// Kills a commit into `dir/name` at every `stride`-th step (and the last ones), recovers
/// after each kill and checks the image. `files` are copied into each run's directory
/// (the image, and its parent or journal). `model` is the virtual disk after the commit.
fn crash_everywhere(dir: &Path, name: &str, files: &[String], stride: u64, seed: u64) -> Outcome {
    let pristine = dir.join(name);
    let before = std::fs::read(&pristine).unwrap();
    let d = disk::open(&pristine, &Default::default()).unwrap();
    let block = d.info().block_size.map_or(1 << 20, u64::from);
    let vhdx = d.info().format == disk::Format::Vhdx;
    let qemu_reads = vhdx && d.info().subformat != disk::Subformat::Differencing;
    let mut model = common::read_all(&d);
    drop(d);
    let writes = crash_writes(model.len() as u64, block, seed);
    apply(&mut model, &writes);
    // The complete commit, once.
    let full = dir.join("full");
    fresh(dir, &full, files);
    assert!(!kill_at(&full.join(name), u64::MAX, seed));
    let after = std::fs::read(full.join(name)).unwrap();
    assert!(after != before);
    let steps: Vec<String> = std::fs::read_to_string(full.join("steps"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let total = steps.len() as u64;
    // The header write after the (last) log entry: from then on the log replays.
    let log_live = steps
        .iter()
        .rposition(|s| s.contains(" log "))
        .and_then(|i| (i..steps.len()).find(|&j| steps[j].contains(" header image write")))
        .map(|j| j as u64 + 1);
    assert!(vhdx || log_live.is_none(), "{name}: {steps:?}");
    let mut points: Vec<u64> = (0..=total).step_by(stride as usize).collect();
    points.extend(total.saturating_sub(4)..=total);
    points.sort();
    points.dedup();
    // Workers in their own directories: the runs wait on flushes more than on the cores.
    let workers = 3;
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|t| {
                let (points, before, after, model, steps) = (&points, &before, &after, &model, &steps);
                scope.spawn(move || {
                    let run = dir.join(format!("run{t}"));
                    let mut out = Outcome { points: 0, before: 0, after: 0, replayed: 0 };
                    for &k in points.iter().skip(t).step_by(workers) {
                        fresh(dir, &run, files);
                        let img = run.join(name);
                        let killed = kill_at(&img, k, seed);
                        assert_eq!(killed, k < total, "{name}: step {k} of {total}");
                        if let Some(live) = log_live.filter(|l| k >= *l && killed) {
                            // The log replays in memory to the complete commit's disk.
                            let d = disk::open(&img, &Default::default())
                                .unwrap_or_else(|e| panic!("{name} killed at step {k} ({live}): {e}"));
                            common::assert_same_bytes(&common::read_all(&d), model, &format!("{name} replayed at step {k}"));
                            out.replayed += 1;
                            if qemu_reads && (k == live || k == live + 2) && common::have_tool("qemu-img") {
                                qemu_replays(&img, model, &format!("{name}: qemu after replaying the log left at step {k}"));
                            }
                        }
                        drop(disk::open_for_write(&img, &WriteOptions::in_place()).unwrap());
                        let now = std::fs::read(&img).unwrap();
                        if now == *before {
                            out.before += 1;
                        } else if now == *after {
                            out.after += 1;
                        } else {
                            panic!(
                                "{name}: killed at step {k} of {total} ({}), the recovered image is \
                                 neither the image before nor after the commit",
                                steps.get(k as usize).map_or("end", |s| s.as_str())
                            );
                        }
                        out.points += 1;
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut out = Outcome {
        points: 0,
        before: 0,
        after: 0,
        replayed: 0,
    };
    for o in outcomes {
        out.points += o.points;
        out.before += o.before;
        out.after += o.after;
        out.replayed += o.replayed;
    }
    assert!(
        out.before > 0 && out.after > 0,
        "{name}: {} before, {} after",
        out.before,
        out.after
    );
    eprintln!(
        "{name}: {} kill points of {total} steps: {} rolled back, {} complete; {} replayed the log",
        out.points, out.before, out.after, out.replayed
    );
    out
}

/// qemu-img replays the log of a copy of `img` (`check -r all`) and then reads `model`.
fn qemu_replays(img: &Path, model: &[u8], what: &str) {
    let copy = img.with_extension("qemu.vhdx");
    std::fs::copy(img, &copy).unwrap();
    common::run(
        Command::new("qemu-img")
            .args(["check", "-q", "-r", "all", "-f", "vhdx"])
            .arg(&copy),
    );
    common::assert_same_bytes(&images::qemu_raw(&copy, "vhdx"), model, what);
    std::fs::remove_file(copy).unwrap();
}

fn small_disk() -> Vec<u8> {
    let mut raw = common::pattern(6 * MB, 44);
    raw[3 * MB..5 * MB].fill(0); // blocks never written
    raw
}

/// A dynamic VHDX at every step, and raw, fixed VHD, dynamic VHD and a differencing VHDX
/// at every fourth.
#[test]
fn commits_killed_anywhere_recover_to_before_or_after() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = small_disk();
    let vhdx = images::convert(
        dir.path(),
        &raw,
        "d.vhdx",
        "vhdx",
        "subformat=dynamic,block_size=1M",
    );
    let o = crash_everywhere(dir.path(), "d.vhdx", &["d.vhdx".into()], 1, SEED);
    assert!(
        o.points >= 50 && o.replayed > 0,
        "{} points, {} replayed",
        o.points,
        o.replayed
    );
    std::fs::remove_file(vhdx).unwrap();
    for (name, fmt, opts) in [
        ("d.raw", "raw", ""),
        ("d.vhd", "vpc", "subformat=dynamic,force_size=on"),
        ("f.vhd", "vpc", "subformat=fixed,force_size=on"),
    ] {
        let p = images::convert(dir.path(), &raw, name, fmt, opts);
        crash_everywhere(dir.path(), name, &[name.into()], 4, SEED + 1);
        std::fs::remove_file(p).unwrap();
    }
    let parent = images::convert(
        dir.path(),
        &raw,
        "parent.vhdx",
        "vhdx",
        "subformat=dynamic,block_size=1M",
    );
    images::vhdx_child(&parent);
    crash_everywhere(
        dir.path(),
        "child.vhdx",
        &["child.vhdx".into(), "parent.vhdx".into()],
        4,
        SEED + 2,
    );
}

/// A second commit killed anywhere: the image recovers to the first commit's image or the
/// second's, and undo then restores the image of before both.
#[test]
fn a_second_commit_killed_anywhere_keeps_the_first_undoable() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = images::convert(
        dir.path(),
        &small_disk(),
        "d.vhdx",
        "vhdx",
        "subformat=dynamic,block_size=1M",
    );
    let original = common::sha256_file(&p);
    let first = crash_writes(6 * MB as u64, MB as u64, 7);
    stage(&p, true, &first)
        .commit(&CommitOptions::default())
        .unwrap();
    let journal = disk::journal::journal_path(&p)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let files = ["d.vhdx".to_string(), journal];
    let o = crash_everywhere(dir.path(), "d.vhdx", &files, 4, SEED + 3);
    assert!(o.points >= 15);
    // Undo from a state after a kill and recovery.
    let run = dir.path().join("run");
    fresh(dir.path(), &run, &files);
    let img = run.join("d.vhdx");
    assert!(kill_at(&img, 20, SEED + 3));
    disk::undo(&img, None).unwrap();
    assert_eq!(common::sha256_file(&img), original);
}

/// An undo killed anywhere: the next open for writing finishes it (once its marker is in
/// the journal) or finds the commit whole; either way a last undo gives the image of before.
#[test]
fn an_undo_killed_anywhere_is_finished_or_not_begun() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = images::convert(
        dir.path(),
        &small_disk(),
        "d.vhd",
        "vpc",
        "subformat=dynamic,force_size=on",
    );
    let before = std::fs::read(&p).unwrap();
    stage(&p, true, &crash_writes(6 * MB as u64, 2 * MB as u64, 9))
        .commit(&CommitOptions::default())
        .unwrap();
    let after = std::fs::read(&p).unwrap();
    let journal = disk::journal::journal_path(&p)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let files = ["d.vhd".to_string(), journal];
    let full = dir.path().join("full");
    fresh(dir.path(), &full, &files);
    assert!(!kill_at(&full.join("d.vhd"), u64::MAX, UNDO));
    assert!(std::fs::read(full.join("d.vhd")).unwrap() == before);
    let total = std::fs::read_to_string(full.join("steps"))
        .unwrap()
        .lines()
        .count() as u64;
    let (mut finished, mut kept) = (0, 0);
    let run = dir.path().join("run");
    for k in 0..total {
        fresh(dir.path(), &run, &files);
        let img = run.join("d.vhd");
        assert!(kill_at(&img, k, UNDO));
        let s = disk::open_for_write(&img, &WriteOptions::in_place()).unwrap();
        let r = s.recovery().map(|r| r.finished_undo);
        drop(s);
        let now = std::fs::read(&img).unwrap();
        if now == before {
            // Finished now, or it had only the journal's removal left to flush.
            let gone = !disk::journal::journal_path(&img).exists();
            assert!(r == Some(true) || r.is_none() && gone, "step {k}: {r:?}");
            finished += 1;
        } else {
            assert!(
                now == after && r.is_none(),
                "undo killed at step {k}: neither before nor after"
            );
            kept += 1;
            disk::undo(&img, None).unwrap();
            assert!(std::fs::read(&img).unwrap() == before);
        }
    }
    assert!(finished > 0 && kept > 0, "{finished} finished, {kept} kept");
    eprintln!(
        "undo killed at {total} points: {finished} finished by the next open, {kept} not begun"
    );
}

/// A rollback killed anywhere: a commit killed two thirds of the way, then the rollback
/// (through `undo`, which rolls back an interrupted commit) killed at each of its steps;
/// the next open for writing rolls back again and the image is the image of before.
#[test]
fn a_rollback_killed_anywhere_is_finished_by_the_next_open() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = images::convert(
        dir.path(),
        &small_disk(),
        "d.vhdx",
        "vhdx",
        "subformat=dynamic,block_size=1M",
    );
    let before = std::fs::read(&p).unwrap();
    let full = dir.path().join("full");
    fresh(dir.path(), &full, &["d.vhdx".into()]);
    assert!(!kill_at(&full.join("d.vhdx"), u64::MAX, SEED));
    let commit_steps = std::fs::read_to_string(full.join("steps"))
        .unwrap()
        .lines()
        .count() as u64;
    // The interrupted commit, and how many steps its rollback takes.
    let crashed = dir.path().join("crashed");
    fresh(dir.path(), &crashed, &["d.vhdx".into()]);
    assert!(kill_at(&crashed.join("d.vhdx"), commit_steps * 2 / 3, SEED));
    let files = ["d.vhdx".to_string(), "d.vhdx.rehost-undo".to_string()];
    fresh(&crashed, &full, &files);
    assert!(!kill_at(&full.join("d.vhdx"), u64::MAX, UNDO));
    assert!(std::fs::read(full.join("d.vhdx")).unwrap() == before);
    let total = std::fs::read_to_string(full.join("steps"))
        .unwrap()
        .lines()
        .count() as u64;
    let run = dir.path().join("run");
    for k in 0..total {
        fresh(&crashed, &run, &files);
        let img = run.join("d.vhdx");
        assert!(kill_at(&img, k, UNDO));
        drop(disk::open_for_write(&img, &WriteOptions::in_place()).unwrap());
        assert!(
            std::fs::read(&img).unwrap() == before,
            "rollback killed at step {k}"
        );
        assert!(!disk::journal::journal_path(&img).exists());
    }
    eprintln!("a rollback of {total} steps killed at each: the next open finished it");
}
