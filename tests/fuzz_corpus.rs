//! The fuzz corpus replayed: every input kept under `fuzz/corpus/<target>/` (the minimized
//! corpus of each cargo-fuzz target, with every input that once crashed one; inputs over
//! 64 KiB, volumes and containers, are kept zstd-compressed as `<name>.zst`) fed to the
//! same function the target calls (`fuzz/src/`, included here), with debug assertions and
//! overflow checks on as in any test build. None may panic, and each must finish within
//! [`LIMIT`]. Each target's corpus is replayed in a child process of its own (this binary
//! run again on the one test), whose peak RSS must stay under 512 MiB (issue 13). No
//! nightly toolchain or cargo-fuzz is needed.

mod common;

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod bodies;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest one input may take (a debug-assertion build, two cores shared).
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `body` over `input` on a thread of its own: `Err` with the panic's message, or
/// when it does not finish within [`LIMIT`].
fn replay(body: bodies::Body, input: Vec<u8>) -> Result<Duration, String> {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| body(&input));
        let _ = tx.send(r.map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        }));
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(msg)) => Err(format!("panicked: {msg}")),
        Err(_) => Err(format!("did not finish within {LIMIT:?}")),
    }
}

/// Which target's corpus a child replays.
const TARGET_VAR: &str = "REHOST_CORPUS_TARGET";

/// Replays every input of `name`'s corpus through `body`: what failed, and how many
/// inputs there were.
fn replay_corpus(name: &str, body: bodies::Body) -> (Vec<String>, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for f in &files {
        let mut input = std::fs::read(f).expect("corpus file");
        if f.extension().is_some_and(|e| e == "zst") {
            input = zstd::decode_all(&input[..]).expect("a zstd frame");
        }
        match replay(body, input) {
            Ok(t) => slowest = slowest.max(t),
            Err(why) => failures.push(format!(
                "{name}/{}: {why}",
                f.file_name().unwrap().to_string_lossy()
            )),
        }
    }
    eprintln!("{name}: {} inputs, the slowest {slowest:?}", files.len());
    (failures, files.len())
}

#[test]
fn every_corpus_input_runs_without_panic_or_hang() {
    const TEST: &str = "every_corpus_input_runs_without_panic_or_hang";
    if common::bounded::trampoline() {
        return;
    }
    if common::bounded::is_child() {
        let name = std::env::var(TARGET_VAR).expect("the target to replay");
        let (_, body) = bodies::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a known target");
        let (failures, n) = replay_corpus(&name, *body);
        assert!(n > 0, "{name}: an empty corpus");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        return;
    }
    let peak = common::bounded::Peak::new("fuzz corpus, one child per target");
    let (mut counts, mut over) = (Vec::new(), Vec::new());
    for (name, _) in bodies::TARGETS {
        let run = common::bounded::rerun(TEST, &[(TARGET_VAR, name)]);
        eprintln!(
            "{name}: replayed in a child in {:.1} s, peak RSS {}",
            run.elapsed.as_secs_f64(),
            common::bounded::mib(run.max_rss)
        );
        if let Err(why) = peak.verdict(&format!("the {name} corpus"), &run) {
            over.push(why);
        }
        counts.push(name);
    }
    let max = peak.report();
    assert!(
        over.is_empty(),
        "{}\nthe highest peak: {}",
        over.join("\n"),
        common::bounded::mib(max)
    );
    assert_eq!(counts.len(), 19, "a corpus for every target: {counts:?}");
}

/// The measure itself: a child that touches 96 MiB is seen to hold at least that much at
/// its peak, and would fail [`common::bounded::MAX_RSS`] were the bound below it; one that
/// does not end is killed and reported.
#[test]
fn the_peak_rss_of_a_child_is_measured_and_a_hang_is_caught() {
    const TEST: &str = "the_peak_rss_of_a_child_is_measured_and_a_hang_is_caught";
    const TOUCH: usize = 96 << 20;
    if common::bounded::trampoline() {
        return;
    }
    if common::bounded::is_child() {
        let mut v = vec![0u8; TOUCH];
        for i in (0..TOUCH).step_by(4096) {
            v[i] = i as u8;
        }
        assert_eq!(std::hint::black_box(&v)[4096], 0);
        return;
    }
    let run = common::bounded::rerun(TEST, &[]);
    assert!(
        run.max_rss >= TOUCH as u64 && run.max_rss < common::bounded::MAX_RSS,
        "peak RSS {}",
        common::bounded::mib(run.max_rss)
    );
    let over = common::bounded::Run {
        max_rss: common::bounded::MAX_RSS,
        ..run
    };
    let why = common::bounded::Peak::new("a self-test")
        .verdict("a child at the bound", &over)
        .expect_err("a run at the bound fails");
    assert!(
        why.contains("peak RSS 512.0 MiB reaches the bound"),
        "{why}"
    );
    let hung = common::bounded::run(TEST, &["sleep", "30"], &[], Duration::from_millis(500));
    let why = hung.expect_err("a child still running at its limit is an error");
    assert!(why.contains("still running after"), "{why}");
}

#[test]
fn a_panicking_body_and_a_hanging_one_are_caught() {
    fn panics(_: &[u8]) {
        panic!("boom");
    }
    assert_eq!(replay(panics, vec![]), Err("panicked: boom".into()));
    fn quick(d: &[u8]) {
        assert_eq!(d, b"x");
    }
    assert!(replay(quick, b"x".to_vec()).is_ok());
}
