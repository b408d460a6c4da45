//! The registry engine against Windows and hivex: transaction log replay gives what Windows
//! itself recovered; exports read back to what hivexregedit exports; broken hives give
//! errors, not panics.

mod common;

use rehost::formats::hive::Hive;
use rehost::formats::regf::cells::Cells;
use rehost::formats::regf::regtext::{self, Op};
use rehost::formats::regf::{self, export, Log, Recovery};
use rehost::{Ctx, Layer};
use std::collections::BTreeMap;
use std::process::Command;

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture(name)).unwrap()
}

fn export_all(hive: &[u8], root: &str) -> String {
    let c = Cells::new(hive);
    let r = c.root(hive).unwrap();
    export::export(&c, &r, root).unwrap()
}

fn replayed(primary: &[u8], logs: &[(&str, Vec<u8>)]) -> (Vec<u8>, String) {
    let l: Vec<Log> = logs
        .iter()
        .map(|(n, b)| Log { name: n, bytes: b })
        .collect();
    match regf::recover(primary, &l) {
        Recovery::Replayed { bytes, note } => (bytes, note),
        other => panic!("not replayed: {other:?}"),
    }
}

#[test]
fn new_format_logs_replay_to_what_windows_10_recovered() {
    let dir = "hives/yarp/NewDirtyHive1";
    let primary = bytes(&format!("{dir}/NewDirtyHive.zst"));
    let logs = [
        (
            "NewDirtyHive.LOG1",
            bytes(&format!("{dir}/NewDirtyHive.LOG1")),
        ),
        (
            "NewDirtyHive.LOG2",
            bytes(&format!("{dir}/NewDirtyHive.LOG2")),
        ),
    ];
    let (ours, note) = replayed(&primary, &logs);
    assert!(
        note.contains("1 from NewDirtyHive.LOG1, 3 from NewDirtyHive.LOG2"),
        "{note}"
    );
    let windows = bytes(&format!("{dir}/RecoveredHive_Windows10.zst"));
    assert_eq!(export_all(&ours, "ROOT"), export_all(&windows, "ROOT"));
    assert_ne!(
        export_all(&primary, "ROOT"),
        export_all(&windows, "ROOT"),
        "the replay changed nothing"
    );
    // The result is clean and nt-hive accepts it.
    let h = Hive::parse(ours, Ctx::new("NewDirtyHive", Layer::Hive)).unwrap();
    assert!(h.dirty().is_none());
    // A damaged entry stops recovery there: only the entries before it are applied.
    let mut log2 = logs[1].1.clone();
    let second_entry = 512 + u32::from_le_bytes(log2[516..520].try_into().unwrap()) as usize;
    log2[second_entry + 100] ^= 0xFF;
    let (_, note) = replayed(&primary, &[("LOG1", logs[0].1.clone()), ("LOG2", log2)]);
    assert!(note.contains("1 from LOG1, 1 from LOG2"), "{note}");
}

#[test]
fn old_format_logs_replay_to_what_windows_7_recovered() {
    let dir = "hives/yarp/OldDirtyHive";
    let primary = bytes(&format!("{dir}/OldDirtyHive.zst"));
    let logs = [(
        "OldDirtyHive.LOG1",
        bytes(&format!("{dir}/OldDirtyHive.LOG1")),
    )];
    let (ours, note) = replayed(&primary, &logs);
    assert!(note.contains("old format"), "{note}");
    let windows = bytes(&format!("{dir}/RecoveredHive_Windows7.zst"));
    assert_eq!(export_all(&ours, "ROOT"), export_all(&windows, "ROOT"));
    assert!(Hive::parse(ours, Ctx::new("OldDirtyHive", Layer::Hive))
        .unwrap()
        .dirty()
        .is_none());
}

#[test]
fn windows_10_system_hive_opens_clean_after_replay() {
    let primary = bytes("hives/regipy/SYSTEM_B.xz");
    let logs = [
        ("SYSTEM.LOG1", bytes("hives/regipy/SYSTEM_B.LOG1.xz")),
        ("SYSTEM.LOG2", bytes("hives/regipy/SYSTEM_B.LOG2.xz")),
    ];
    let l: Vec<Log> = logs
        .iter()
        .map(|(n, b)| Log { name: n, bytes: b })
        .collect();
    let h = Hive::parse_with_logs(primary.clone(), &l, Ctx::new("SYSTEM_B", Layer::Hive)).unwrap();
    assert!(h.dirty().is_none(), "{:?}", h.dirty());
    assert_eq!(
        h.replayed(),
        Some("replayed log entries: 4 from SYSTEM.LOG1, 20 from SYSTEM.LOG2 (new format)")
    );
    assert_ne!(export_all(h.bytes(), "S"), export_all(&primary, "S"));
    // Without logs it stays dirty and says why.
    let alone = Hive::parse_with_logs(primary, &[], Ctx::new("SYSTEM_B", Layer::Hive)).unwrap();
    assert!(
        alone.dirty().unwrap().contains("no transaction log"),
        "{:?}",
        alone.dirty()
    );
}

/// key (lower case) -> value name (lower case) -> (type, data)
type Model = BTreeMap<String, BTreeMap<String, (u32, Vec<u8>)>>;

fn model(text: &str) -> Model {
    let mut m = Model::new();
    let mut key = String::new();
    for op in regtext::parse(text).unwrap() {
        match op {
            Op::Key(k) => {
                key = k.trim_end_matches('\\').to_lowercase();
                m.entry(key.clone()).or_default();
            }
            Op::Set { name, kind, data } => {
                m.get_mut(&key)
                    .unwrap()
                    .insert(name.to_lowercase(), (kind, data));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    m
}

#[test]
fn export_of_the_windows_7_system_hive_reads_like_hivexregedit() {
    let hive = bytes("hives/regipy/SYSTEM.xz");
    let ours = model(&export_all(&hive, "HKEY_LOCAL_MACHINE\\SYSTEM"));
    assert!(ours.len() > 30_000, "{} keys", ours.len());
    if !common::have_tool("hivexregedit") {
        return;
    }
    let path = common::fixture("hives/regipy/SYSTEM.xz");
    let out = common::run(
        Command::new("hivexregedit")
            .args(["--export", "--prefix", "HKEY_LOCAL_MACHINE\\SYSTEM"])
            .arg(&path)
            .arg("\\"),
    );
    let theirs = model(&String::from_utf8(out).unwrap());
    let diffs: Vec<&String> = ours
        .keys()
        .filter(|k| ours.get(*k) != theirs.get(*k))
        .take(5)
        .collect();
    assert!(diffs.is_empty(), "keys that differ: {diffs:?}");
    assert_eq!(ours.len(), theirs.len());
}

#[test]
fn broken_hives_give_errors_not_panics() {
    if common::bounded::reran_in_child("broken_hives_give_errors_not_panics") {
        return;
    }
    for name in [
        "TruncatedHive",
        "GarbageHive",
        "BadListHive",
        "BadSubkeyHive",
        "EmptyHive",
    ] {
        let b = bytes(&format!("hives/yarp/{name}.zst"));
        let c = Cells::new(&b);
        if let Ok(root) = c.root(&b) {
            let _ = export::export(&c, &root, "R");
        }
        let _ = regf::recover(&b, &[]);
    }
    // Seeded mutations of a real hive's cells.
    let base = bytes("hives/yarp/ManySubkeysHive.zst");
    let mut rng = common::Rng(0xfeed_f00d_1234_5678);
    for _ in 0..300 {
        let mut m = base.clone();
        for _ in 0..1 + rng.below(16) {
            let at = 4096 + rng.below((m.len() - 4096) as u64) as usize;
            m[at] = rng.next() as u8;
        }
        let c = Cells::new(&m);
        if let Ok(root) = c.root(&m) {
            let _ = export::export(&c, &root, "R");
        }
    }
}
