//! New hives made from nothing (`Editor::create`), empty and after keys and values were
//! added, read by rehost's own readers, by nt-hive and by hivex (`hivexsh`, `hivexget`,
//! `hivexregedit --export`), which must all agree with the model of what was written.

mod common;

// The model is shared with the editor's tests, which use more of it.
#[allow(dead_code)]
#[path = "regf_edit/model.rs"]
mod model;

use model::Tree;
use rehost::formats::regf::{self, Editor, NewHive};
use rehost_core::{Ctx, Layer};
use std::process::Command;

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Keys and values of every kind the editor writes: nested keys, Unicode names, inline,
/// one-cell and (from 1.4) big data, enough subkeys for the lists to grow.
fn key(ed: &mut Editor, tree: &mut Tree, p: &str) {
    ed.create_key(p).unwrap();
    let mut path = String::new();
    for c in p.split('\\') {
        path = if path.is_empty() {
            c.into()
        } else {
            format!("{path}\\{c}")
        };
        tree.create(&path);
    }
}

fn set(ed: &mut Editor, tree: &mut Tree, p: &str, n: &str, k: u32, d: Vec<u8>) {
    ed.set_value(p, n, k, &d).unwrap();
    tree.set(p, n, k, d);
}

fn fill(ed: &mut Editor, tree: &mut Tree) {
    key(ed, tree, "Description");
    set(ed, tree, "Description", "KeyName", 1, utf16z("BCD00000000"));
    set(
        ed,
        tree,
        "Description",
        "System",
        4,
        1u32.to_le_bytes().to_vec(),
    );
    key(
        ed,
        tree,
        "Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\\Elements\\12000004",
    );
    set(ed, tree, "Objects", "", 1, utf16z("default value"));
    let multi: Vec<u8> = ["a", "bc"]
        .iter()
        .flat_map(|s| utf16z(s))
        .chain([0, 0])
        .collect();
    set(ed, tree, "Objects", "multi", 7, multi);
    set(
        ed,
        tree,
        "Objects",
        "q",
        11,
        u64::MAX.to_le_bytes().to_vec(),
    );
    set(ed, tree, "Objects", "b1", 3, vec![1]);
    // Big data from 1.4; a 1.3 hive holds such data in one cell, as Windows writes it, which
    // nt-hive does not read (it takes data above 16344 bytes for big data in any version).
    if ed.minor() >= 4 {
        set(
            ed,
            tree,
            "Objects",
            "big",
            3,
            (0..40_000u32).map(|i| i as u8).collect(),
        );
    }
    key(ed, tree, "Unicode \u{3042}\u{00e9}");
    set(
        ed,
        tree,
        "Unicode \u{3042}\u{00e9}",
        "\u{3042}",
        1,
        utf16z("\u{00e9}"),
    );
    for i in 0..300 {
        key(ed, tree, &format!("Many\\k{i:04}"));
    }
}

fn hivex_sees(file: &std::path::Path) -> Tree {
    Tree::from_hivex(file, "")
}

fn created(minor: u32) -> (Vec<u8>, Tree) {
    let mut tree = Tree::default();
    tree.create("");
    let mut ed = Editor::create("NewStoreRoot", minor).unwrap();
    fill(&mut ed, &mut tree);
    assert!(ed.check().unwrap() > 300);
    (ed.save(), tree)
}

#[test]
fn an_empty_new_hive_opens_in_every_reader() {
    for minor in 3..=6 {
        let b = Editor::create("ROOT", minor).unwrap().save();
        let h = regf::hive::Hive::parse(b.clone(), Ctx::new("new", Layer::Hive)).unwrap();
        assert!(h.subkeys("").unwrap().is_empty());
        let nt = nt_hive::Hive::new(&b[..]).unwrap();
        assert!(nt.root_key_node().unwrap().subkeys().is_none());
        assert_eq!(Tree::from_rehost(&b, "").keys.len(), 1);
        if common::have_tool("hivexsh") {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("empty");
            std::fs::write(&f, &b).unwrap();
            assert_eq!(hivexsh(&f, "ls"), "");
            let reg = hivex_sees(&f);
            assert_eq!(reg.keys.len(), 1, "{reg:?}");
        }
    }
}

#[test]
fn keys_and_values_added_to_a_new_hive_read_back_alike_in_every_reader() {
    for minor in [3, 5] {
        let (b, tree) = created(minor);
        let rehost = Tree::from_rehost(&b, "");
        assert_eq!(tree.difference(&rehost), None, "1.{minor}, rehost's export");
        let nt = Tree::from_nt_hive(&b, "");
        assert_eq!(
            tree.types_as_nt_hive_sees().difference(&nt),
            None,
            "1.{minor}, nt-hive"
        );
        let h = regf::hive::Hive::parse(b.clone(), Ctx::new("new", Layer::Hive)).unwrap();
        assert_eq!(h.subkeys("Many").unwrap().len(), 300);
        assert_eq!(h.number("Description", "System").unwrap(), Some(1));
        // Saved, opened again and edited again.
        let mut again = Editor::open(b.clone()).unwrap();
        again.delete_key("Many").unwrap();
        let b2 = again.save();
        assert_eq!(Tree::from_rehost(&b2, "").keys.len(), tree.keys.len() - 301);
        if !common::have_tool("hivexregedit") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hive");
        std::fs::write(&f, &b).unwrap();
        let theirs = hivex_sees(&f);
        assert_eq!(tree.difference(&theirs), None, "1.{minor}, hivexregedit");
        let get = common::run(
            Command::new("hivexget")
                .arg(&f)
                .arg("\\Description")
                .arg("KeyName"),
        );
        assert_eq!(String::from_utf8_lossy(&get).trim(), "BCD00000000");
        assert_eq!(
            hivexsh(&f, "ls"),
            "Description\nMany\nObjects\nUnicode \u{3042}\u{e9}\n"
        );
        assert_eq!(hivexsh(&f, "cd Many\nls").lines().count(), 300);
    }
}

/// What `hivexsh` prints for the commands `script` on the hive `file`.
fn hivexsh(file: &std::path::Path, script: &str) -> String {
    let s = file.with_extension("hivexsh");
    std::fs::write(&s, format!("{script}\n")).unwrap();
    let out = common::run(Command::new("hivexsh").arg("-f").arg(&s).arg(file));
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_new_hive_with_the_bcd_descriptor_and_file_name_keeps_them() {
    use regf::security::{self, Ace};
    let sd = security::descriptor(
        &security::administrators(),
        &security::local_system(),
        &[
            Ace::allow(
                0,
                security::KEY_READ | security::WRITE_DAC,
                security::administrators(),
            ),
            Ace::allow(0, security::KEY_ALL_ACCESS, security::local_system()),
        ],
        0,
    );
    let mut spec = NewHive::new("NewStoreRoot", 3);
    spec.security = sd.clone();
    spec.file_name = "\\EFI\\Microsoft\\Boot\\BCD".into();
    spec.timestamp = 0x01d7_8a15_358a_127a;
    let mut ed = Editor::create_from(&spec).unwrap();
    ed.create_key("Objects").unwrap();
    let b = ed.save();
    // The descriptor of Windows' own BCD store, byte for byte (regipy's BCD fixture).
    let real = std::fs::read(common::fixture("hives/regipy/BCD.xz")).unwrap();
    let sk = |h: &[u8]| {
        let c = regf::cells::Cells::new(h);
        let root = c.root(h).unwrap();
        c.cell(root.security).unwrap()[20..].to_vec()
    };
    assert_eq!(sk(&b)[..sd.len()], sk(&real)[..sd.len()]);
    assert_eq!(&b[12..20], &spec.timestamp.to_le_bytes());
    assert_eq!(&b[48..56], &utf16z("\\EFI")[..8]);
}
