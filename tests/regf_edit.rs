//! The hive editor against a model: random edits on copies of real SYSTEM hives, checked
//! after each sequence through rehost's export, nt-hive and hivexregedit; the lists it
//! writes follow Windows' own rules (checked first against what Windows wrote).

mod common;

#[path = "regf_edit/model.rs"]
mod model;

use model::Tree;
use rehost::formats::regf::cells::{Cells, Nk};
use rehost::formats::regf::{self, names, Editor, Log, Recovery};

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture(name)).unwrap()
}

fn windows_10_system() -> Vec<u8> {
    let logs = [
        bytes("hives/regipy/SYSTEM_B.LOG1.xz"),
        bytes("hives/regipy/SYSTEM_B.LOG2.xz"),
    ];
    let l = [
        Log {
            name: "SYSTEM.LOG1",
            bytes: &logs[0],
        },
        Log {
            name: "SYSTEM.LOG2",
            bytes: &logs[1],
        },
    ];
    match regf::recover(&bytes("hives/regipy/SYSTEM_B.xz"), &l) {
        Recovery::Replayed { bytes, .. } => bytes,
        other => panic!("{other:?}"),
    }
}

/// A subkey list entry as stored: the child's name, the leaf's signature, the hash field.
type Entry = (String, [u8; 2], u32);

/// Every key node of a hive, with the raw entries of its subkey lists.
fn lists(hive: &[u8]) -> Vec<(Nk, Vec<Entry>)> {
    let c = Cells::new(hive);
    let mut out = Vec::new();
    let mut stack = vec![c.root(hive).unwrap()];
    while let Some(k) = stack.pop() {
        let mut entries = Vec::new();
        if k.subkey_count > 0 {
            let top = c.cell(k.subkey_list).unwrap();
            let leaves: Vec<u32> = if &top[..2] == b"ri" {
                let n = u16::from_le_bytes([top[2], top[3]]) as usize;
                (0..n).map(|i| u32_at(top, 4 + 4 * i)).collect()
            } else {
                vec![k.subkey_list]
            };
            for l in leaves {
                let leaf = c.cell(l).unwrap();
                let sig = [leaf[0], leaf[1]];
                let n = u16::from_le_bytes([leaf[2], leaf[3]]) as usize;
                let stride = if &sig == b"li" { 4 } else { 8 };
                for i in 0..n {
                    let child = c.nk(u32_at(leaf, 4 + stride * i)).unwrap();
                    let hash = if stride == 8 {
                        u32_at(leaf, 8 + stride * i)
                    } else {
                        0
                    };
                    entries.push((child.name.clone(), sig, hash));
                    stack.push(child);
                }
            }
        }
        out.push((k, entries));
    }
    out
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// The rules the editor writes by, checked on every list of a hive: sorted by upper-cased
/// name, `lh` hashes and `lf` hints as computed, the key node's largest-name field in bytes
/// of UTF-16 and never below its longest subkey name.
fn check_lists(hive: &[u8], exact_max: bool) -> usize {
    let mut n = 0;
    for (k, entries) in lists(hive) {
        for w in entries.windows(2) {
            assert!(
                names::compare(&w[0].0, &w[1].0).is_lt(),
                "{:?} before {:?}",
                w[0].0,
                w[1].0
            );
        }
        for (name, sig, hash) in &entries {
            match sig {
                b"lh" => assert_eq!(*hash, names::lh_hash(name), "{name}"),
                b"lf" => assert_eq!(*hash, names::lf_hint(name), "{name}"),
                _ => {}
            }
            n += 1;
        }
        if let Some(longest) = entries.iter().map(|e| names::utf16_bytes(&e.0)).max() {
            let c = Cells::new(hive);
            let field = u32_at(c.cell(k.offset).unwrap(), 52) & 0xFFFF;
            if exact_max {
                assert_eq!(field, longest, "{}", k.name);
            } else {
                assert!(field >= longest, "{}", k.name);
            }
        }
    }
    n
}

#[test]
fn windows_lists_follow_the_rules_the_editor_writes_by() {
    // Windows 7 SYSTEM (lh lists, 1.5) and an install medium's BCD (lf lists, 1.3).
    let n = check_lists(&bytes("hives/regipy/SYSTEM.xz"), true);
    assert!(n > 30_000, "{n} entries");
    assert!(check_lists(&bytes("hives/registry-ez/BCD-install-media"), true) > 50);
    check_lists(&bytes("hives/yarp/ManySubkeysHive.zst"), false);
}

#[test]
fn a_key_created_and_deleted_leaves_the_hive_as_it_was() {
    let hive = bytes("hives/regipy/SYSTEM.xz");
    let before = Tree::from_rehost(&hive, "");
    let mut ed = Editor::open(hive).unwrap();
    let free = ed.free_bytes();
    let (_, created) = ed
        .create_key("ControlSet001\\Services\\rehost\\Parameters")
        .unwrap();
    assert!(created);
    ed.set_value(
        "ControlSet001\\Services\\rehost",
        "Start",
        4,
        &0u32.to_le_bytes(),
    )
    .unwrap();
    ed.set_value(
        "ControlSet001\\Services\\rehost",
        "Big",
        3,
        &vec![7u8; 200_000],
    )
    .unwrap();
    let big = ed.value("ControlSet001\\Services\\Rehost", "BIG").unwrap();
    assert_eq!(big, Some((3, vec![7u8; 200_000])));
    assert!(ed.delete_key("ControlSet001\\Services\\REHOST").unwrap());
    assert!(!ed.delete_key("ControlSet001\\Services\\rehost").unwrap());
    let saved = ed.save();
    assert_eq!(Tree::from_nt_hive(&saved, ""), before);
    check_lists(&saved, false);
    // Freed cells merge: the hive has as much free space as before, plus whatever bin was
    // appended for the big value.
    let again = Editor::open(saved).unwrap();
    assert!(
        again.free_bytes() >= free,
        "{} < {free}",
        again.free_bytes()
    );
}

#[path = "regf_edit/random.rs"]
mod random;

/// Random edit sequences on a copy of `hive`, below `sub`; after each sequence the saved
/// hive is read back by rehost's export, by nt-hive and by hivexregedit, and each must equal
/// the model; the rest of the hive must be untouched.
fn random_edits(hive: Vec<u8>, sub: &str, seed: u64, sequences: usize, edits: usize) {
    let hivex = common::have_tool("hivexregedit");
    let whole = Tree::from_rehost(&hive, "");
    let outside = whole.outside(sub);
    let mut tree = whole.subtree(sub);
    let mut rng = common::Rng(seed);
    let mut bytes = hive;
    let dir = tempfile::tempdir().unwrap();
    for seq in 0..sequences {
        let mut ed = Editor::open(bytes).unwrap();
        let mut log = Vec::new();
        for _ in 0..edits {
            let e = random::edit(&mut rng, &mut tree, sub);
            let r = match &e {
                random::Edit::Create(p) => ed.create_key(p).map(|(_, c)| assert!(c, "{p}")),
                random::Edit::Delete(p) => ed.delete_key(p).map(|d| assert!(d, "{p}")),
                random::Edit::Set(p, n, k, d) => ed.set_value(p, n, *k, d),
                random::Edit::Unset(p, n) => ed.delete_value(p, n).map(|d| assert!(d, "{p}")),
            };
            r.unwrap_or_else(|err| panic!("{e:?}: {err}"));
            log.push(e);
        }
        bytes = ed.save();
        let what = |how: &str, d: Option<String>| {
            if let Some(d) = d {
                panic!(
                    "sequence {seq}, {how}: {d}\nedits: {:#?}",
                    log.iter().map(short).collect::<Vec<_>>()
                );
            }
        };
        what(
            "rehost export",
            tree.difference(&Tree::from_rehost(&bytes, sub)),
        );
        let nt = Tree::from_nt_hive(&bytes, sub);
        what("nt-hive", tree.types_as_nt_hive_sees().difference(&nt));
        let rest = Tree::from_rehost(&bytes, "").outside(sub);
        what("outside the edited subtree", outside.difference(&rest));
        check_lists(&bytes, false);
        if hivex {
            let f = dir.path().join("hive");
            std::fs::write(&f, &bytes).unwrap();
            let theirs = Tree::from_hivex(&f, sub).without_values_over(16_344);
            what(
                "hivexregedit",
                tree.without_values_over(16_344).difference(&theirs),
            );
        }
    }
}

fn short(e: &random::Edit) -> String {
    match e {
        random::Edit::Set(p, n, k, d) => format!("set {p} {n:?} type {k:#x}, {} bytes", d.len()),
        other => format!("{other:?}"),
    }
}

#[test]
fn random_edits_on_the_windows_7_system_hive_read_back_like_the_model() {
    let hive = bytes("hives/regipy/SYSTEM.xz");
    random_edits(hive, "ControlSet001\\services", 0x5eed_0001, 4, 150);
}

#[test]
fn random_edits_on_the_windows_10_system_hive_read_back_like_the_model() {
    random_edits(windows_10_system(), "DriverDatabase", 0x5eed_0002, 4, 150);
}
