//! A key that counts no subkeys or no values but still names a list (left behind by an
//! older edit, or another key's list): the editor starts new lists for it and writes into
//! none of the old. Found by the `regf_edit` fuzz target: the subkey list of such a root
//! was extended, and the saved hive counted one subkey where its list held two.

use rehost_regf::Editor;

/// Offsets in a key node (the cell's data, after its 4-byte size).
const SUBKEY_COUNT: usize = 20;
const VALUE_COUNT: usize = 36;
const VALUE_LIST: usize = 40;

fn minimal() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/hives/hivex/minimal"
    );
    std::fs::read(path).expect("the hivex minimal hive")
}

/// Writes `v` at field `at` of the key node at cell offset `cell`.
fn patch(hive: &mut [u8], cell: u32, at: usize, v: u32) {
    let o = 4096 + cell as usize + 4 + at;
    hive[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn a_subkey_list_the_count_disowns_is_not_extended() {
    let mut ed = Editor::open(minimal()).unwrap();
    ed.create_key("Old").unwrap();
    let mut hive = ed.save();
    let root = Editor::open(hive.clone()).unwrap().root().unwrap();
    assert_eq!(root.subkey_count, 1);
    patch(&mut hive, root.offset, SUBKEY_COUNT, 0);

    let mut ed = Editor::open(hive).unwrap();
    assert_eq!(
        ed.check().unwrap(),
        1,
        "the root alone: its list is not read"
    );
    ed.create_key("New\\Child").unwrap();
    let ed = Editor::open(ed.save()).unwrap();
    assert_eq!(ed.check().unwrap(), 3);
    let root = ed.root().unwrap();
    assert_eq!(root.subkey_count, 1);
    assert!(ed.find("New\\Child").unwrap().is_some());
    assert!(ed.find("Old").unwrap().is_none());
}

#[test]
fn another_keys_value_list_is_not_written_into() {
    let mut ed = Editor::open(minimal()).unwrap();
    ed.create_key("A").unwrap();
    ed.set_value("A", "a", 4, &1u32.to_le_bytes()).unwrap();
    let mut hive = ed.save();
    let ed = Editor::open(hive.clone()).unwrap();
    let (root, a) = (ed.root().unwrap(), ed.find("A").unwrap().unwrap());
    patch(&mut hive, root.offset, VALUE_LIST, a.value_list);
    patch(&mut hive, root.offset, VALUE_COUNT, 0);

    let mut ed = Editor::open(hive).unwrap();
    ed.check().unwrap();
    ed.set_value("", "w", 4, &2u32.to_le_bytes()).unwrap();
    let ed = Editor::open(ed.save()).unwrap();
    ed.check().unwrap();
    assert_eq!(
        ed.value("A", "a").unwrap(),
        Some((4, 1u32.to_le_bytes().to_vec()))
    );
    assert_eq!(ed.value("A", "w").unwrap(), None);
    assert_eq!(
        ed.value("", "w").unwrap(),
        Some((4, 2u32.to_le_bytes().to_vec()))
    );
    assert_eq!(ed.value("", "a").unwrap(), None);
}
