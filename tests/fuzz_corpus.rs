//! The fuzz corpus replayed: every input kept under `fuzz/corpus/<target>/` (the minimized
//! corpus of each cargo-fuzz target, with every input that once crashed one; inputs over
//! 64 KiB, volumes and containers, are kept zstd-compressed as `<name>.zst`) fed to the
//! same function the target calls (`fuzz/src/`, included here), with debug assertions and
//! overflow checks on as in any test build. None may panic, and each must finish within
//! [`LIMIT`]. No nightly toolchain or cargo-fuzz is needed.

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

#[test]
fn every_corpus_input_runs_without_panic_or_hang() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for (name, body) in bodies::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: an empty corpus");
        let mut slowest = Duration::ZERO;
        for f in &files {
            let mut input = std::fs::read(f).expect("corpus file");
            if f.extension().is_some_and(|e| e == "zst") {
                input = zstd::decode_all(&input[..]).expect("a zstd frame");
            }
            match replay(*body, input) {
                Ok(t) => slowest = slowest.max(t),
                Err(why) => failures.push(format!(
                    "{name}/{}: {why}",
                    f.file_name().unwrap().to_string_lossy()
                )),
            }
        }
        eprintln!("{name}: {} inputs, the slowest {slowest:?}", files.len());
        counts.push(name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(counts.len(), 16, "a corpus for every target: {counts:?}");
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
