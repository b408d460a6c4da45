//! `--shard K/N` and `rehost ledger merge` on the command line, without a scheduler: three
//! shards (one from `--shard`, one from a Slurm array task's variables, one from a
//! Kubernetes Indexed Job's) run every row of a manifest once, bad rows included; their
//! ledgers merge into what one process records; a merge is idempotent and refuses a
//! conflict. (`tests/slurm.rs` runs the same through a real Slurm cluster.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rehost() -> Command {
    let mut c = common::rehost_command();
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_STEP",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "REHOST_SHARD_COUNT",
    ] {
        c.env_remove(v);
    }
    c
}

/// A manifest of eight copies of two fixtures, a missing file and a duplicate.
fn fleet(d: &Path) -> PathBuf {
    let mut rows = vec!["image,target".to_string()];
    for (i, name) in ["ws2019-override", "xp-sp3"]
        .iter()
        .cycle()
        .take(8)
        .enumerate()
    {
        let src = common::windows_image(name);
        let ext = src.extension().unwrap().to_string_lossy().into_owned();
        let rel = format!("{name}-{i}.{ext}");
        std::fs::copy(&src, d.join(&rel)).unwrap();
        rows.push(rel);
    }
    rows.push("missing.vhdx".into());
    rows.push(format!("./{}", rows[1]));
    let m = d.join("fleet.csv");
    std::fs::write(&m, rows.join("\n") + "\n").unwrap();
    m
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Each row's (row, image, status, verdicts) in a ledger, sorted by row; a row twice fails.
fn rows(ledger: &Path) -> Vec<(i64, String, String, String)> {
    let db = rusqlite::Connection::open(ledger).unwrap();
    let mut st = db
        .prepare(
            "SELECT o.row, o.image, o.status,
                coalesce((SELECT group_concat(target || ' ' || verdict, ', ')
                          FROM verdicts v WHERE v.outcome = o.id), '')
             FROM outcomes o ORDER BY o.row",
        )
        .unwrap();
    let v: Vec<(i64, String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for w in v.windows(2) {
        assert_ne!(w[0].0, w[1].0, "row {} twice", w[0].0);
    }
    v
}

#[test]
fn three_shards_from_three_sources_run_each_row_once_and_merge_into_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = fleet(d);
    let check = |ledger: &Path| {
        let mut c = rehost();
        c.args(["check", "--jsonl", "-t", "kvm-sata", "--manifest"])
            .arg(&manifest)
            .arg("--ledger")
            .arg(ledger);
        c
    };
    let single = d.join("single.db");
    let out = check(&single).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!stderr(&out).contains("shard"), "{}", stderr(&out));

    let shards: Vec<PathBuf> = (0..3).map(|k| d.join(format!("shard-{k}.db"))).collect();
    let runs = [
        check(&shards[0]).args(["--shard", "0/3"]).output().unwrap(),
        check(&shards[1])
            .env("SLURM_ARRAY_TASK_ID", "11")
            .env("SLURM_ARRAY_TASK_MIN", "10")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .output()
            .unwrap(),
        check(&shards[2])
            .env("JOB_COMPLETION_INDEX", "2")
            .env("REHOST_SHARD_COUNT", "3")
            .output()
            .unwrap(),
    ];
    let mut total = 0;
    for (k, (out, origin)) in runs
        .iter()
        .zip(["--shard", "Slurm array task", "Kubernetes Indexed Job"])
        .enumerate()
    {
        let e = stderr(out);
        let want = format!("rehost: shard {k}/3 ({origin}): ");
        let line = e
            .lines()
            .find(|l| l.starts_with(&want))
            .unwrap_or_else(|| panic!("{e}"));
        let n: usize = line[want.len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(line.ends_with(" of 10 rows"), "{line}");
        assert_eq!(rows(&shards[k]).len(), n);
        total += n;
    }
    assert_eq!(total, 10, "every row in one shard");

    let merged = d.join("merged.db");
    let merge = |inputs: &[PathBuf]| {
        rehost()
            .args(["ledger", "merge"])
            .arg(&merged)
            .args(inputs)
            .output()
            .unwrap()
    };
    let out = merge(&shards);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let all = rows(&merged);
    assert_eq!(all, rows(&single), "the shards merged are the one run");
    assert_eq!(all.len(), 10);
    assert_eq!(all[8].2, "input", "the missing file: {:?}", all[8]);
    assert_eq!(all[9].2, "input", "the duplicate: {:?}", all[9]);
    let out = merge(&shards);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .all(|l| l.contains(": 0 runs and 0 outcomes added")));
    assert_eq!(rows(&merged), all, "merged twice: the same");

    // A ledger that judged an image otherwise: a conflict, and nothing written.
    let other = d.join("other.db");
    std::fs::copy(&single, &other).unwrap();
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute(
            "UPDATE verdicts SET verdict = 'boots', stop = NULL WHERE outcome = \
             (SELECT id FROM outcomes WHERE row = 1)",
            [],
        )
        .unwrap();
    let out = merge(&[other]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e = stderr(&out);
    assert!(
        e.contains("conflict: ") && e.contains("xp-sp3-1.vhd"),
        "{e}"
    );
    assert!(e.contains("1 conflict: nothing written"), "{e}");
    assert_eq!(rows(&merged), all);
}

#[test]
fn a_shard_the_environment_cannot_tell_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = fleet(dir.path());
    let run = |vars: &[(&str, &str)], args: &[&str]| {
        let mut c = rehost();
        c.args(["check", "-t", "kvm-sata", "--manifest"])
            .arg(&manifest)
            .args(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = run(&[("JOB_COMPLETION_INDEX", "1")], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("REHOST_SHARD_COUNT is not set"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("uneven ids"), "{}", stderr(&out));
    // --shard 0/1 runs every row inside an array task.
    let out = run(
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ],
        &["--shard", "0/1", "-q", "--jsonl"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 10);
    let out = run(&[], &["--shard", "3/3"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
