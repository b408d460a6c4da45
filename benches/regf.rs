//! In-process costs of the registry engine (run `cargo bench --bench regf`; the whole-hive
//! export beside hivexregedit, as whole processes, is in `scripts/bench-reg.sh`).
//!
//! - query: one 4-level key path (`ControlSet001\Services\Tcpip\Parameters`) of the real
//!   Windows 7 SYSTEM hive (11.7 MB) read with its values;
//! - edit: open + log recovery + the whole-tree check + 1,000 edits (values set on existing and new keys, keys
//!   created and deleted) + save, on that hive, and on the dirty Windows 10 SYSTEM_B hive
//!   whose logs are really replayed;
//! - export: the whole Windows 7 SYSTEM hive as .reg text, in process.

use criterion::{criterion_group, criterion_main, Criterion};
use rehost::formats::regf::cells::Cells;
use rehost::formats::regf::{self, export, query, Editor, Log, Recovery};

#[path = "../tests/common/mod.rs"]
mod common;

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture(name)).unwrap()
}

/// Open (recovering from the logs when dirty), 1,000 edits, save.
fn thousand_edits(primary: &[u8], logs: &[Log]) -> Vec<u8> {
    let clean = match regf::recover(primary, logs) {
        Recovery::Replayed { bytes, .. } => bytes,
        Recovery::Clean => primary.to_vec(),
        Recovery::Unreplayable(why) => panic!("{why}"),
    };
    let mut ed = Editor::open(clean).unwrap();
    ed.check().unwrap();
    ed.create_key("ControlSet001\\Services\\rehost-bench")
        .unwrap();
    for i in 0..1000u32 {
        match i % 4 {
            0 => {
                let k = format!("ControlSet001\\Services\\rehost-bench\\k{i}");
                ed.create_key(&k).unwrap();
            }
            1 => ed
                .set_value(
                    "ControlSet001\\Services\\rehost-bench",
                    &format!("v{i}"),
                    4,
                    &i.to_le_bytes(),
                )
                .unwrap(),
            2 => ed
                .set_value(
                    &format!("ControlSet001\\Services\\rehost-bench\\k{}", i - 2),
                    "ImagePath",
                    2,
                    &[0x41; 120],
                )
                .unwrap(),
            _ => {
                ed.delete_key(&format!(
                    "ControlSet001\\Services\\rehost-bench\\k{}",
                    i - 3
                ))
                .unwrap();
            }
        }
    }
    ed.save()
}

fn benches(c: &mut Criterion) {
    let win7 = bytes("hives/regipy/SYSTEM.xz");
    let mut g = c.benchmark_group("regf");
    g.bench_function("query a 4-level path (Windows 7 SYSTEM)", |b| {
        b.iter(|| {
            query::key(&win7, "ControlSet001\\Services\\Tcpip\\Parameters")
                .unwrap()
                .unwrap()
        })
    });
    g.sample_size(20);
    g.bench_function("open + 1,000 edits + save (Windows 7 SYSTEM, clean)", |b| {
        b.iter(|| thousand_edits(&win7, &[]))
    });
    let win10 = bytes("hives/regipy/SYSTEM_B.xz");
    let l1 = bytes("hives/regipy/SYSTEM_B.LOG1.xz");
    let l2 = bytes("hives/regipy/SYSTEM_B.LOG2.xz");
    let logs = [
        Log {
            name: "SYSTEM.LOG1",
            bytes: &l1,
        },
        Log {
            name: "SYSTEM.LOG2",
            bytes: &l2,
        },
    ];
    g.bench_function(
        "open + replay + 1,000 edits + save (Windows 10 SYSTEM_B, dirty)",
        |b| b.iter(|| thousand_edits(&win10, &logs)),
    );
    g.bench_function("export the whole Windows 7 SYSTEM hive", |b| {
        b.iter(|| {
            let cells = Cells::new(&win7);
            let root = cells.root(&win7).unwrap();
            export::export(&cells, &root, "HKEY_LOCAL_MACHINE\\SYSTEM").unwrap()
        })
    });
    g.finish();
}

criterion_group!(regf_benches, benches);
criterion_main!(regf_benches);
