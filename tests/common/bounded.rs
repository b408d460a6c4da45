//! Runs under a memory and a time bound, measured from outside. Issue 13 holds every
//! command on every fuzz corpus input and every damaged image of the tests to [`MAX_RSS`].
//!
//! A process's peak resident set size as `wait4` gives it (`ru_maxrss`) starts from the
//! peak of the process that spawned it (Linux records the old address space's peak at
//! `exec`), so a child of a test that holds images in memory would be charged for them.
//! Each measured command is therefore started by a trampoline: this test binary run again
//! on one test (fresh, a few MiB), which spawns the command, reaps it with `wait4` and
//! writes its exit status and peak to a file. The command's own peak is measured (plus the
//! trampoline's few MiB), and a command that runs past its wall-clock limit is killed with
//! its trampoline (one process group).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most memory one run may hold at its peak.
pub const MAX_RSS: u64 = 512 << 20;

/// How long one command may run: far above what any takes (a few seconds at most), so
/// only a hang reaches it.
pub const WALL: Duration = Duration::from_secs(60);

/// Set in a test binary run again by [`rerun`]: it is the child, and runs the test's body.
const CHILD: &str = "REHOST_BOUNDED_CHILD";
/// Set in a trampoline: the command to run, its arguments separated by U+001F.
const EXEC: &str = "REHOST_BOUNDED_EXEC";
/// Set in a trampoline: the directory for the command's outputs and the report.
const DIR: &str = "REHOST_BOUNDED_DIR";

/// A finished command.
#[derive(Debug)]
pub struct Run {
    /// Its exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// What it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Standard error, as text.
    pub stderr: String,
    /// Its peak resident set size, in bytes.
    pub max_rss: u64,
    /// How long it ran (its trampoline's start and end included).
    pub elapsed: Duration,
}

/// Bytes as MiB with one decimal, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `wait4` on `pid`: `Some((status, peak RSS in bytes))` once it has ended, `None` while
/// it runs (with `block` false).
fn wait4(pid: u32, block: bool) -> Option<(i32, u64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain integers, for which all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: both pointers are to live locals of the types wait4 writes.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut usage) };
        if r == 0 {
            return None;
        }
        if r == pid as libc::pid_t {
            // Linux counts ru_maxrss in KiB.
            return Some((status, usage.ru_maxrss as u64 * 1024));
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::Interrupted,
            "wait4({pid}): {e}"
        );
    }
}

/// (exit code, signal) of a wait status.
fn decode(status: i32) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    }
}

/// Runs `argv` (the program, then its arguments; `env` added to the environment) through
/// a trampoline hosted by the test `host` of this binary (which must start with
/// `if trampoline() { return; }`, as [`reran_in_child`] does): `Err` naming it when it is
/// still running after `limit` (it is then killed).
// The child is reaped by `wait4`, which std's `wait` would not let us read the peak of.
#[allow(clippy::zombie_processes)]
pub fn run(
    host: &str,
    argv: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Result<Run, String> {
    assert!(
        argv.iter().all(|a| !a.contains('\u{1f}')),
        "{argv:?}: an argument holds U+001F"
    );
    let dir = tempfile::tempdir().expect("a directory for the command's outputs");
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([host, "--exact", "--quiet", "--test-threads=1"])
        .env(EXEC, argv.join("\u{1f}"))
        .env(DIR, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The trampoline and the command in a process group of their own, killed together.
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = child.stdout.take().expect("stdout piped");
    let err = child.stderr.take().expect("stderr piped");
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            b
        })
    };
    let (out, err) = (drain(Box::new(out)), drain(Box::new(err)));
    let pid = child.id();
    let started = Instant::now();
    // The trampoline is reaped here, never through `child`.
    let status = loop {
        if let Some((status, _)) = wait4(pid, false) {
            break status;
        }
        if started.elapsed() > limit {
            // SAFETY: kill has no memory effects; the group is the trampoline's own.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            wait4(pid, true);
            return Err(format!("{argv:?} still running after {limit:?}: killed"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    let (out, err) = (out.join().expect("stdout"), err.join().expect("stderr"));
    let report = std::fs::read_to_string(dir.path().join("report")).unwrap_or_else(|e| {
        panic!(
            "{argv:?}: the trampoline (exit {:?}) left no report ({e}): {}{}",
            decode(status),
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        )
    });
    let mut fields = report
        .split_whitespace()
        .map(|f| f.parse::<i64>().expect("a number"));
    let (status, max_rss) = (fields.next().expect("status"), fields.next().expect("peak"));
    let (code, signal) = decode(status as i32);
    Ok(Run {
        code,
        signal,
        stdout: std::fs::read(dir.path().join("stdout")).expect("the command's stdout"),
        stderr: String::from_utf8_lossy(
            &std::fs::read(dir.path().join("stderr")).expect("the command's stderr"),
        )
        .into_owned(),
        max_rss: max_rss as u64,
        elapsed,
    })
}

/// Whether this process is a trampoline started by [`run`]: if so, runs the command it
/// was given (its outputs to files), reaps it with `wait4`, writes its wait status and
/// peak RSS in bytes to the report file, and returns true (the calling test returns).
// The command is reaped by `wait4`, as in `run`.
#[allow(clippy::zombie_processes)]
pub fn trampoline() -> bool {
    let (Some(exec), Some(dir)) = (std::env::var_os(EXEC), std::env::var_os(DIR)) else {
        return false;
    };
    let exec = exec.into_string().expect("UTF-8 arguments");
    let dir = Path::new(&dir);
    let mut argv = exec.split('\u{1f}');
    let program = argv.next().expect("a program");
    let file = |n: &str| std::fs::File::create(dir.join(n)).expect("an output file");
    let child = Command::new(program)
        .args(argv)
        .env_remove(EXEC)
        .env_remove(DIR)
        .stdin(Stdio::null())
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let (status, rss) = wait4(child.id(), true).expect("the command ended");
    let tmp = dir.join("report.tmp");
    std::fs::write(&tmp, format!("{status} {rss}\n")).expect("the report");
    std::fs::rename(&tmp, dir.join("report")).expect("the report");
    true
}

/// The highest peak of a group of runs, kept across the threads of a test binary.
pub struct Peak {
    what: String,
    bytes: AtomicU64,
    runs: AtomicU64,
}

impl Peak {
    /// An empty record for the runs of `what`.
    pub fn new(what: impl Into<String>) -> Peak {
        Peak {
            what: what.into(),
            bytes: AtomicU64::new(0),
            runs: AtomicU64::new(0),
        }
    }

    /// Why `run` (of `label`) breaks [`MAX_RSS`], if it does; its peak is kept either way.
    pub fn verdict(&self, label: &str, run: &Run) -> Result<(), String> {
        let before = self.bytes.fetch_max(run.max_rss, Ordering::Relaxed);
        self.runs.fetch_add(1, Ordering::Relaxed);
        if run.max_rss < MAX_RSS {
            return Ok(());
        }
        Err(format!(
            "{label}: peak RSS {} reaches the bound of {} ({}: the highest so far {})",
            mib(run.max_rss),
            mib(MAX_RSS),
            self.what,
            mib(before.max(run.max_rss))
        ))
    }

    /// Asserts that `run` (of `label`) held less than [`MAX_RSS`], and keeps its peak.
    pub fn check(&self, label: &str, run: &Run) {
        if let Err(why) = self.verdict(label, run) {
            panic!("{why}");
        }
    }

    /// The highest peak so far, in bytes.
    pub fn max(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Prints the number of runs and the highest peak so far, and returns the peak.
    pub fn report(&self) -> u64 {
        let m = self.max();
        eprintln!(
            "{}: {} runs, the highest peak RSS {} (bound {})",
            self.what,
            self.runs.load(Ordering::Relaxed),
            mib(m),
            mib(MAX_RSS)
        );
        m
    }
}

/// Whether this process is a child started by [`rerun`] to run a test's body.
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// This test binary run again on the one test `test` (its name as libtest gives it), with
/// `env` set as well, through a trampoline (the same test) under [`WALL`]: the child must
/// pass its one test. Returns the run; the caller holds its peak to [`MAX_RSS`].
pub fn rerun(test: &str, env: &[(&str, &str)]) -> Run {
    let exe = std::env::current_exe().expect("the test binary");
    let exe = exe.to_str().expect("a UTF-8 path");
    let mut all = vec![(CHILD, test)];
    all.extend_from_slice(env);
    let argv = [exe, test, "--exact", "--nocapture", "--test-threads=1"];
    let run = run(test, &argv, &all, WALL).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.code == Some(0) && stdout.contains("1 passed"),
        "{test} {env:?} in a child: exit {:?}, signal {:?}, peak RSS {}\n{stdout}\n{}",
        run.code,
        run.signal,
        mib(run.max_rss),
        run.stderr
    );
    run
}

/// Runs the test `test` (the caller, by its name as libtest gives it) again in a child
/// process of this test binary, holds it to [`MAX_RSS`] and [`WALL`], prints its peak, and
/// returns true: the caller then returns. In that child (and in its trampoline) it
/// returns false and true: the caller goes on to its body only in the child. A test starts
/// with `if reran_in_child("name") { return; }`.
pub fn reran_in_child(test: &str) -> bool {
    if trampoline() {
        return true;
    }
    if is_child() {
        return false;
    }
    let run = rerun(test, &[]);
    let peak = Peak::new("in a child");
    peak.check(test, &run);
    eprintln!(
        "{test}: in a child, {:.1} s, peak RSS {} (bound {})",
        run.elapsed.as_secs_f64(),
        mib(run.max_rss),
        mib(MAX_RSS)
    );
    true
}
