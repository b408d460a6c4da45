//! Shared helpers for the integration tests: fixtures, outside tools, temporary files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when running under CI (`CI` set to anything but empty or "0").
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether an outside tool is on PATH. Outside CI a missing tool makes the caller skip, and
/// this says so on stderr; in CI a missing tool fails the test.
pub fn have_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if in_ci() {
            panic!("oracle tool `{tool}` is missing in CI: .ci/run must install it");
        }
        eprintln!("SKIP: oracle tool `{tool}` not installed; this check did not run");
    }
    found
}

/// Runs a command and returns its stdout, panicking with its stderr on failure.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fixture from `testdata/`, decompressed (`.zst`, `.xz`) once into
/// `testdata/.cache/` and returned as a path. Uncompressed fixtures are returned in place.
pub fn fixture(name: &str) -> PathBuf {
    let src = root().join("testdata").join(name);
    let (stem, codec) = if let Some(s) = name.strip_suffix(".zst") {
        (s, "zst")
    } else if let Some(s) = name.strip_suffix(".xz") {
        (s, "xz")
    } else {
        assert!(src.exists(), "missing fixture {}", src.display());
        return src;
    };
    let cache = root().join("testdata").join(".cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = cache.join(stem);
    if out.exists() {
        return out;
    }
    let bytes = std::fs::read(&src).unwrap_or_else(|e| panic!("fixture {}: {e}", src.display()));
    let plain = match codec {
        "zst" => zstd::decode_all(&bytes[..]).unwrap(),
        _ => run(Command::new("xz").args(["-dc"]).arg(&src)),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    // Write under a temporary name and rename, so parallel tests never see half a file.
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, plain).unwrap();
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// SHA-256 of a file, as hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("{:x}", h.finalize())
}
