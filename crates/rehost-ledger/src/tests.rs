use super::*;

fn outcome(row: usize, status: Status, before: Option<Identity>) -> Outcome {
    Outcome {
        row,
        source: format!("argument {}", row + 1),
        image: format!("img{row}"),
        options: Options::new("check", &serde_json::json!({"targets": ["kvm-sata"]})),
        status,
        before,
        after: None,
        committed: false,
        journal: None,
        bytes_read: 10,
        bytes_written: 0,
        elapsed_ms: 1.5,
        errors: vec![],
        verdicts: vec![Verdict {
            install: "volume 1 \\Windows".into(),
            target: "kvm-sata".into(),
            verdict: "boots".into(),
            ..Verdict::default()
        }],
        findings: vec![],
        changes: vec![],
        report: "{}".into(),
    }
}

fn id(path: &str, hash: &str) -> Identity {
    Identity {
        path: path.into(),
        size: 1,
        mtime_ns: 2,
        dev: 3,
        inode: 4,
        hash: hash.into(),
    }
}

#[test]
fn outcomes_recorded_by_the_writer_are_final_only_when_ok() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.schema_version().unwrap(), schema::VERSION);
    let run = ledger.begin_run("check", &["rehost".into()], "0").unwrap();
    let w = writer::Writer::spawn(ledger, run);
    let tx = w.sender();
    tx.send(outcome(0, Status::Ok, Some(id("/a", "h1"))))
        .unwrap();
    tx.send(outcome(1, Status::Failed, Some(id("/b", "h2"))))
        .unwrap();
    tx.send(outcome(2, Status::Input, None)).unwrap();
    drop(tx);
    w.finish(run).unwrap();

    let ledger = Ledger::open(&path).unwrap();
    let opts = Options::new("check", &serde_json::json!({"targets": ["kvm-sata"]}));
    let finals = ledger.finals("check").unwrap();
    assert_eq!(finals.len(), 1);
    assert!(finals.contains(&(opts.key.clone(), "/a".into(), 1, 2, "h1".into())));
    assert!(ledger.finals("fix").unwrap().is_empty());
    let n: i64 = ledger
        .conn
        .query_row("SELECT count(*) FROM verdicts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    let mode: String = ledger
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn equal_options_have_equal_keys_whatever_the_order_of_their_fields() {
    let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":[1,2]}"#).unwrap();
    let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap();
    assert_eq!(Options::new("fix", &a), Options::new("fix", &b));
    assert_ne!(Options::new("fix", &a).key, Options::new("check", &a).key);
}

#[test]
fn a_newer_schema_and_a_foreign_database_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.db");
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version=99")
        .unwrap();
    assert!(Ledger::open(&newer)
        .err()
        .unwrap()
        .to_string()
        .contains("newer rehost"));
    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    assert!(Ledger::open(&foreign)
        .err()
        .unwrap()
        .to_string()
        .contains("something else"));
}
