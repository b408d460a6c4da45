//! Check and fix tell one story, on every fixture of testdata/windows and every built-in
//! target: check → fix --dry-run → fix --in-place → check → undo, with the virtio-win test
//! folder as `--drivers` (so the injection paths run too), asserting:
//!
//! - no finding in fix's `remaining` that check did not report (check tells up front every
//!   error, warning and note the fix will meet);
//! - every finding check calls fixable is gone after the fix (`fixable` is a promise), and
//!   every finding it does not call fixable says why when its case is fixable in general;
//! - what fix leaves alone is still reported afterwards (a finding disappears only when a
//!   change of its rule was made);
//! - the dry run stages what the write writes, and predicts the same verdict;
//! - after a commit, check on the written image gives fix's predicted verdict and exactly
//!   its remaining findings;
//! - undo restores the image's bytes.
//!
//! The cells run in-process on a pool of threads, one working copy per fixture.

mod common;

use rehost::fs::staged::Mode;
use rehost::rules::fix::run::{fix, FixReport};
use rehost::rules::{self, CheckReport, FixOptions, Shared, Target};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What identifies a finding between two reports.
fn id(f: &Shared) -> String {
    format!(
        "{}/{} cs={:?} svc={:?}: {}",
        f.rule, f.case, f.control_set, f.service, f.message
    )
}

fn fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::root().join("testdata/windows"))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn options() -> FixOptions {
    FixOptions {
        drivers: Some(common::root().join("testdata/drivers/virtio-win")),
        ..Default::default()
    }
}

/// The findings of install `n` of a check, by id.
fn ids(r: &CheckReport, n: usize) -> BTreeSet<String> {
    r.installs[n].findings.iter().map(id).collect()
}

/// One fixture on every target; returns what went wrong, one line each.
fn fixture(name: &str, targets: &[Target], dir: &Path) -> (Vec<String>, usize) {
    let pristine = common::windows_image(name);
    let copy = dir.join(pristine.file_name().unwrap());
    std::fs::copy(&pristine, &copy).unwrap();
    let original = std::fs::read(&pristine).unwrap();
    let opts = options();
    let mut bad = Vec::new();
    let mut commits = 0;
    for t in targets {
        let cell = format!("{name} on {}", t.name);
        let mut say = |what: String| bad.push(format!("{cell}: {what}"));
        let before = rules::check_with(&copy, std::slice::from_ref(t), &opts).unwrap();
        let dry = match fix(&copy, t, Mode::DryRun, &opts, false) {
            Ok(r) => r,
            Err(e) => {
                say(format!("fix --dry-run failed: {e}"));
                continue;
            }
        };
        if dry.installs.len() != before.installs.len() {
            say(format!(
                "check sees {} installs, fix {}",
                before.installs.len(),
                dry.installs.len()
            ));
            continue;
        }
        for (n, (c, f)) in before.installs.iter().zip(&dry.installs).enumerate() {
            let had = ids(&before, n);
            if c.verdict != f.before {
                say(format!(
                    "fix's verdict before {:?}, check's {:?}",
                    f.before, c.verdict
                ));
            }
            let changed: BTreeSet<&str> = f.changes.iter().map(|a| a.rule.as_str()).collect();
            let left: BTreeSet<String> = f.remaining.iter().map(id).collect();
            for r in f.remaining.iter().filter(|r| !had.contains(&id(r))) {
                say(format!("fix meets what check did not report: {}", id(r)));
            }
            for x in &c.findings {
                let general = rules::finding::case(x.rule, x.case).is_some_and(|k| k.fixable);
                if x.fixable && left.contains(&id(x)) {
                    say(format!("called fixable, left by fix: {}", id(x)));
                }
                if general && !x.fixable && x.cannot_fix.is_none() {
                    say(format!("not fixable here, and not said why: {}", id(x)));
                }
                if !x.fixable && !left.contains(&id(x)) && !changed.contains(x.rule) {
                    say(format!(
                        "gone after the fix, though no change of its rule was made: {}",
                        id(x)
                    ));
                }
            }
        }
        let written = match fix(&copy, t, Mode::InPlace, &opts, false) {
            Ok(r) => r,
            Err(e) => {
                say(format!("fix --in-place failed: {e}"));
                continue;
            }
        };
        compare(&dry, &written, &mut say);
        if !written.committed {
            if std::fs::read(&copy).unwrap() != original {
                say("an in-place fix that committed nothing changed the image".into());
            }
            continue;
        }
        commits += 1;
        let after = rules::check_with(&copy, std::slice::from_ref(t), &opts).unwrap();
        for (n, (c, f)) in after.installs.iter().zip(&written.installs).enumerate() {
            if c.verdict != f.after {
                say(format!(
                    "fix predicted {:?}, check on the written image says {:?}",
                    f.after, c.verdict
                ));
            }
            let left: BTreeSet<String> = f.remaining.iter().map(id).collect();
            if ids(&after, n) != left {
                say(format!(
                    "check after the fix finds {:?}, fix predicted {:?}",
                    ids(&after, n),
                    left
                ));
            }
        }
        if let Err(e) = rehost::disk::undo(&copy, None) {
            say(format!("undo failed: {e}"));
        }
        if std::fs::read(&copy).unwrap() != original {
            say("undo did not restore the image's bytes".into());
            std::fs::copy(&pristine, &copy).unwrap();
        }
    }
    (bad, commits)
}

/// The dry run and the write plan the same changes to the same end.
fn compare(dry: &FixReport, written: &FixReport, say: &mut impl FnMut(String)) {
    let plan = |r: &FixReport| -> Vec<String> {
        r.installs
            .iter()
            .flat_map(|i| {
                i.changes.iter().map(|c| {
                    format!(
                        "{} {} {:?} {:?} {:?}",
                        c.rule, c.kind, c.hive, c.file, c.sha256
                    )
                })
            })
            .collect()
    };
    if plan(dry) != plan(written) {
        say(format!(
            "the dry run staged {:?}, the write {:?}",
            plan(dry),
            plan(written)
        ));
    }
    for (d, w) in dry.installs.iter().zip(&written.installs) {
        if d.after != w.after {
            say(format!(
                "the dry run predicts {:?}, the write {:?}",
                d.after, w.after
            ));
        }
    }
    if dry.rounds != written.rounds {
        say(format!(
            "the dry run took {} rounds, the write {}",
            dry.rounds, written.rounds
        ));
    }
}

#[test]
fn check_and_fix_tell_one_story_on_every_fixture_and_target() {
    let targets = rules::target::builtin().unwrap();
    let names = fixtures();
    // Decompress every fixture first (the helper serialises it).
    let paths: Vec<PathBuf> = names.iter().map(|n| common::windows_image(n)).collect();
    assert!(paths.len() >= 36, "fixtures: {}", paths.len());
    let dir = tempfile::tempdir().unwrap();
    let queue = Mutex::new(names.clone());
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let Some(name) = queue.lock().unwrap().pop() else {
                    break;
                };
                let sub = dir.path().join(&name);
                std::fs::create_dir_all(&sub).unwrap();
                let r = fixture(&name, &targets, &sub);
                results.lock().unwrap().push((name, r));
            });
        }
    });
    let results = results.into_inner().unwrap();
    let cells = names.len() * targets.len();
    let commits: usize = results.iter().map(|(_, (_, c))| c).sum();
    let bad: Vec<&String> = results.iter().flat_map(|(_, (b, _))| b).collect();
    eprintln!(
        "coherence: {} fixtures x {} targets = {cells} cells, {commits} written in place and undone, {} disagreements",
        names.len(),
        targets.len(),
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {cells} cells disagree:\n{}",
        bad.len(),
        bad.iter()
            .take(60)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The matrix did write: a run where nothing commits would prove little.
    assert!(commits > cells / 4, "only {commits} of {cells} cells wrote");
}
