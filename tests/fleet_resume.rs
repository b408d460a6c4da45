//! `--resume` after a SIGKILL of a whole `fix --in-place` fleet: the next run does exactly
//! the images the ledger has no outcome for, no image is fixed twice, every image then
//! boots and every undo journal still restores the original bytes.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn rehost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Outcomes in the ledger so far (0 while it is not there yet).
fn outcomes(ledger: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|db| db.query_row("SELECT count(*) FROM outcomes", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn fleet(dir: &Path, n: usize) -> Vec<PathBuf> {
    let src = common::windows_image("win7");
    (0..n)
        .map(|i| {
            let p = dir.join(format!("win7-{i:02}.vhd"));
            std::fs::copy(&src, &p).unwrap();
            p
        })
        .collect()
}

const FIX: [&str; 6] = ["fix", "--in-place", "--jsonl", "-j", "1", "-t"];

#[test]
fn a_killed_fleet_resumes_with_exactly_the_images_left() {
    let dir = tempfile::tempdir().unwrap();
    let images = fleet(dir.path(), 8);
    let original = common::sha256_file(&images[0]);
    let ledger = dir.path().join("ledger.db");
    let mut child = rehost()
        .args(FIX)
        .arg("kvm-sata")
        .arg("--ledger")
        .arg(&ledger)
        .args(&images)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once three images have their outcome, by what the ledger shows.
    loop {
        if outcomes(&ledger) >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before three outcomes were seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = outcomes(&ledger) as usize;
    assert!(
        (3..images.len()).contains(&before),
        "killed halfway: {before}"
    );

    let out = rehost()
        .args(FIX)
        .arg("kvm-sata")
        .args(["--resume", "--ledger"])
        .arg(&ledger)
        .args(&images)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines(&out).len(), images.len() - before, "exactly the rest");
    let db = rusqlite::Connection::open(&ledger).unwrap();
    for image in &images {
        let (n, committed): (i64, i64) = db
            .query_row(
                "SELECT count(*), sum(committed) FROM outcomes WHERE image = ?1 AND status = 'ok'",
                [image.to_str().unwrap()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(n, 1, "{} once in the ledger", image.display());
        // The image in flight at the kill may have committed before it: then its second
        // run found nothing to fix and wrote nothing.
        assert!(committed <= 1);
    }
    let check = rehost()
        .args(["check", "--jsonl", "-t", "kvm-sata"])
        .args(&images)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    for l in lines(&check) {
        assert_eq!(l["installs"][0]["verdict"], "boots", "{l}");
    }
    for image in &images {
        let undo = rehost().arg("undo").arg(image).output().unwrap();
        assert_eq!(undo.status.code(), Some(0), "{undo:?}");
        assert_eq!(common::sha256_file(image), original, "{}", image.display());
    }
}

#[test]
fn an_image_fixed_before_its_outcome_was_recorded_is_not_fixed_again() {
    let dir = tempfile::tempdir().unwrap();
    let images = fleet(dir.path(), 1);
    let image = &images[0];
    let original = common::sha256_file(image);
    // The fix commits, and the run dies before the ledger hears of it: here, a run
    // without a ledger.
    let first = rehost()
        .args(FIX)
        .arg("kvm-sata")
        .arg(image)
        .output()
        .unwrap();
    assert_eq!(lines(&first)[0]["committed"], true, "{first:?}");
    let journal = PathBuf::from(format!("{}.rehost-undo", image.display()));
    let journal_sha = common::sha256_file(&journal);
    let ledger = dir.path().join("ledger.db");
    let resume = || {
        rehost()
            .args(FIX)
            .arg("kvm-sata")
            .args(["--resume", "--ledger"])
            .arg(&ledger)
            .arg(image)
            .output()
            .unwrap()
    };
    let second = resume();
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    let l = lines(&second);
    assert_eq!(l[0]["committed"], false, "fixed once only: {}", l[0]);
    assert_eq!(
        common::sha256_file(&journal),
        journal_sha,
        "the journal untouched"
    );
    let db = rusqlite::Connection::open(&ledger).unwrap();
    let j: Option<String> = db
        .query_row("SELECT journal FROM outcomes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        j.as_deref(),
        journal.to_str(),
        "the ledger names the journal"
    );
    assert!(lines(&resume()).is_empty(), "then it is done");
    let undo = rehost().arg("undo").arg(image).output().unwrap();
    assert_eq!(undo.status.code(), Some(0), "{undo:?}");
    assert_eq!(common::sha256_file(image), original);
}

#[test]
fn a_target_profile_changed_under_its_name_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let image = &fleet(dir.path(), 1)[0];
    let ledger = dir.path().join("ledger.db");
    // The same name, another machine: kvm-sata's profile with an AMD processor.
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let text = std::fs::read_to_string(common::root().join("profiles/targets/kvm-sata.toml"))
        .unwrap()
        .replace("cpu_vendor = \"any\"", "cpu_vendor = \"amd\"");
    std::fs::write(profiles.join("kvm-sata.toml"), text).unwrap();
    let check = |profiles: Option<&Path>| {
        let mut cmd = rehost();
        cmd.args(["check", "--jsonl", "-t", "kvm-sata", "--resume", "--ledger"])
            .arg(&ledger)
            .arg(image);
        if let Some(p) = profiles {
            cmd.arg("--profiles").arg(p);
        }
        let out = cmd.output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
        lines(&out).len()
    };
    assert_eq!(check(None), 1, "first run: checked");
    assert_eq!(check(None), 0, "the same profile: resumed");
    assert_eq!(
        check(Some(&profiles)),
        1,
        "a profile changed under its name: checked again"
    );
    assert_eq!(check(Some(&profiles)), 0, "then resumed");
    assert_eq!(outcomes(&ledger), 2);
}
