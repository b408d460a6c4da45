use super::*;
use crate::{Change, Finding, Identity, Options, Outcome, Status, Verdict};

fn identity(n: usize) -> Identity {
    Identity {
        path: format!("/fleet/vm-{n}.vhdx"),
        size: 1 << 20,
        mtime_ns: 1_000 + n as i64,
        dev: 1,
        inode: n as u64,
        hash: format!("{n:064x}"),
    }
}

fn outcome(n: usize, verdict: &str) -> Outcome {
    Outcome {
        row: n,
        source: format!("fleet.csv line {}", n + 2),
        image: format!("fleet/vm-{n}.vhdx"),
        options: Options::new("check", &serde_json::json!({"targets": ["kvm-sata"]})),
        status: Status::Ok,
        before: Some(identity(n)),
        after: None,
        committed: false,
        journal: None,
        bytes_read: 4096,
        bytes_written: 0,
        elapsed_ms: 10.0 + n as f64,
        errors: vec![],
        verdicts: vec![Verdict {
            install: "volume 1 \\Windows".into(),
            target: "kvm-sata".into(),
            verdict: verdict.into(),
            ..Verdict::default()
        }],
        findings: vec![Finding {
            install: "volume 1 \\Windows".into(),
            target: "kvm-sata".into(),
            rule: "storage-driver".into(),
            case: "demand".into(),
            severity: "error".into(),
            fixable: true,
            message: "msahci starts on demand".into(),
        }],
        changes: vec![Change {
            install: "volume 1 \\Windows".into(),
            rule: "storage-driver".into(),
            kind: "registry".into(),
            file: None,
            why: "start at boot".into(),
        }],
        report: format!("{{\"image\":\"fleet/vm-{n}.vhdx\"}}"),
    }
}

/// A shard's ledger holding the outcomes of `rows`, each with `verdict`, in a run of its
/// own (its command line names the ledger and the rows).
fn shard(path: &Path, rows: std::ops::Range<usize>, verdict: &str) {
    let mut l = Ledger::open(path).unwrap();
    let argv = vec![
        "rehost".to_string(),
        path.display().to_string(),
        format!("{rows:?}"),
    ];
    let run = l.begin_run("check", &argv, "0").unwrap();
    for n in rows {
        l.record(run, &outcome(n, verdict)).unwrap();
    }
    l.end_run(run).unwrap();
}

fn count(path: &Path, table: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Every outcome's image, row, verdict and counts of findings and changes, sorted.
fn contents(path: &Path) -> Vec<(String, i64, String, i64, i64)> {
    let db = Connection::open(path).unwrap();
    let mut st = db
        .prepare(
            "SELECT o.image, o.row, v.verdict,
                (SELECT count(*) FROM findings f WHERE f.outcome = o.id),
                (SELECT count(*) FROM changes c WHERE c.outcome = o.id)
             FROM outcomes o JOIN verdicts v ON v.outcome = o.id ORDER BY o.row",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn shards_merge_into_one_ledger_once_however_often_they_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b, c) = (d.join("0.db"), d.join("1.db"), d.join("2.db"));
    shard(&a, 0..4, "boots");
    shard(&b, 4..7, "boots");
    shard(&c, 7..10, "no-boot");
    let out = d.join("all.db");
    let m = merge(&out, &[a.clone(), b.clone(), c.clone()]).unwrap();
    assert!(m.conflicts.is_empty());
    let added: Vec<usize> = m.inputs.iter().map(|i| i.outcomes_added).collect();
    assert_eq!(added, [4, 3, 3]);
    assert!(m.inputs.iter().all(|i| i.runs_added == 1));
    let all = contents(&out);
    assert_eq!(all.len(), 10);
    for (n, (image, row, verdict, findings, changes)) in all.iter().enumerate() {
        assert_eq!(
            (image.as_str(), *row),
            (format!("fleet/vm-{n}.vhdx").as_str(), n as i64)
        );
        assert_eq!(verdict, if n >= 7 { "no-boot" } else { "boots" });
        assert_eq!((*findings, *changes), (1, 1));
    }
    // Again, and a shard once more: nothing added, nothing changed.
    let m = merge(&out, &[a.clone(), b.clone(), c.clone(), b.clone()]).unwrap();
    assert!(m
        .inputs
        .iter()
        .all(|i| i.outcomes_added == 0 && i.runs_added == 0));
    assert_eq!(m.inputs[3].outcomes_present, 3);
    assert_eq!(contents(&out), all);
    assert_eq!(count(&out, "runs"), 3);
    // One by one into another ledger, then that ledger into a third: the same.
    let one_by_one = d.join("one-by-one.db");
    for s in [&c, &a, &b] {
        merge(&one_by_one, std::slice::from_ref(s)).unwrap();
    }
    assert_eq!(contents(&one_by_one), all);
    let again = d.join("again.db");
    merge(&again, &[one_by_one.clone(), out.clone()]).unwrap();
    assert_eq!(contents(&again), all);
    for t in ["outcomes", "verdicts", "findings", "changes", "runs"] {
        assert_eq!(count(&again, t), count(&out, t), "{t}");
    }
}

#[test]
fn the_same_image_judged_two_ways_is_a_conflict_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (d.join("a.db"), d.join("b.db"));
    shard(&a, 0..3, "boots");
    // The same three images, the same identities and options; image 1 judged otherwise.
    shard(&b, 0..1, "boots");
    shard(&b, 1..2, "no-boot");
    shard(&b, 2..3, "boots");
    let out = d.join("out.db");
    let m = merge(&out, &[a.clone(), b.clone()]).unwrap();
    assert_eq!(m.conflicts.len(), 1, "{:?}", m.conflicts);
    let c = &m.conflicts[0];
    assert_eq!(c.path, "/fleet/vm-1.vhdx");
    assert_eq!(c.command, "check");
    assert!(
        c.first_says.contains("boots") && c.second_says.contains("no-boot"),
        "{c}"
    );
    assert_eq!(c.second, b.display().to_string());
    assert_eq!(count(&out, "outcomes"), 0, "refused whole");
    // The same judgement twice (two runs of one shard) is no conflict: both are kept.
    let m = merge(&out, &[a.clone(), a.clone()]).unwrap();
    assert!(m.conflicts.is_empty());
    assert_eq!(count(&out, "outcomes"), 3);
    let twice = d.join("twice.db");
    shard(&twice, 0..3, "boots");
    let m = merge(&out, &[twice]).unwrap();
    assert!(m.conflicts.is_empty());
    assert_eq!(count(&out, "outcomes"), 6);
}

#[test]
fn inputs_that_are_not_ledgers_or_are_the_output_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out.db");
    shard(&out, 0..2, "boots");
    let e = merge(&out, std::slice::from_ref(&out)).unwrap_err();
    assert!(
        e.to_string().contains("the output is among the inputs"),
        "{e}"
    );
    let e = merge(&out, &[d.join("missing.db")]).unwrap_err();
    assert!(e.to_string().contains("missing.db"), "{e}");
    let foreign = d.join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    let e = merge(&out, &[foreign]).unwrap_err();
    assert!(e.to_string().contains("schema version 0"), "{e}");
    assert_eq!(count(&out, "outcomes"), 2);
}
