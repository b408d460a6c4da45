//! Two key nodes naming one value list: an edit that grows the list of one (a value set)
//! moves it to a new cell and frees the old, while the other key still names it. Found by
//! the `regf_edit` fuzz target (its input is kept in the fuzz corpus): the saved hive failed
//! the check with "a cell in use lies inside a free cell". The check now refuses a hive in
//! which a key node, list, value or data cell has two owners, before any edit.

use rehost_regf::Editor;

fn crash_input() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/regf_edit/c8a79d9775e393799867446bdda8d9a371cc63ae"
    );
    std::fs::read(path).unwrap()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn a_value_list_named_by_two_keys_is_refused_by_the_check() {
    let hive = crash_input();
    // Why it matters: the key nodes at 936 and 1096 (cell offsets in the hive bins data)
    // both give their one value in the list at 880.
    let at = |c: usize| 4096 + c;
    for key in [936, 1096] {
        assert_eq!(&hive[at(key) + 4..at(key) + 6], b"nk", "{key}");
        assert_eq!(u32_at(&hive, at(key) + 4 + 36), 1, "value count of {key}");
        assert_eq!(u32_at(&hive, at(key) + 4 + 40), 880, "value list of {key}");
    }
    let ed = Editor::open(hive).unwrap();
    let e = ed.check().expect_err("refused");
    let rehost_regf::Error::Cell { offset, what } = &e else {
        panic!("not a cell error: {e}");
    };
    assert_eq!(*offset, 880, "{e}");
    assert!(what.contains("two owners"), "{what}");
}

/// Keys share their security cell by design: a BCD store Windows wrote, whose keys do,
/// passes, and still passes after a key and a value are added.
#[test]
fn shared_security_cells_still_pass() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/hives/registry-ez/BCD-install-media"
    );
    let mut ed = Editor::open(std::fs::read(path).unwrap()).unwrap();
    let objects = ed.find("Objects").unwrap().expect("the Objects key");
    let cells = ed.cells();
    let mut security: Vec<u32> = (cells.subkeys(&objects).unwrap().into_iter())
        .map(|c| cells.nk(c).unwrap().security)
        .collect();
    let objects_count = security.len();
    security.sort_unstable();
    security.dedup();
    assert!(
        security.len() < objects_count,
        "{objects_count} objects, {} security cells: some share one",
        security.len()
    );
    let keys = ed.check().unwrap();
    ed.create_key("A\\B").unwrap();
    ed.set_value("A\\B", "v", 3, &[7; 100]).unwrap();
    let saved = Editor::open(ed.save()).unwrap();
    assert_eq!(saved.check().unwrap(), keys + 2);
}
