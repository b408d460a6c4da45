//! A key node that does not start where a cell of its hive bin does: its declared cell ran
//! over a free cell the walk of the bin found, so the allocator handed that space out and a
//! key creation wrote a subkey list into the key node. Found by the `regf_edit` fuzz target
//! (its input is kept in the fuzz corpus): the saved hive failed the check with "key name
//! runs past its cell". The check now refuses such a hive before any edit.

use rehost_regf::Editor;

fn crash_input() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/regf_edit/f03414b8248d3137cbde5b86e6f46d6898b3ce39"
    );
    std::fs::read(path).unwrap()
}

#[test]
fn a_key_off_its_bins_cell_boundaries_is_refused_by_the_check() {
    let hive = crash_input();
    let ed = Editor::open(hive.clone()).unwrap();
    let e = ed.check().expect_err("refused");
    let rehost_regf::Error::Cell { offset, what } = &e else {
        panic!("not a cell error: {e}");
    };
    assert_eq!(*offset, 432, "{e}");
    assert!(what.contains("does not start where a cell"), "{what}");
    // Why it matters: the cell at 432 is a key node of 88 bytes, and the bin's walk has a
    // free cell at 496, inside it.
    let at = |c: usize| 4096 + c;
    let size = |c: usize| i32::from_le_bytes(hive[at(c)..at(c) + 4].try_into().unwrap());
    assert_eq!(&hive[at(432) + 4..at(432) + 6], b"nk");
    assert_eq!(size(432), -88);
    assert!(size(496) > 0, "a free cell at 496: {}", size(496));
}

/// Sound hives still pass (the Windows hives of the test images are checked the same way
/// by every fix, before its edits: rehost-windows' registry session).
#[test]
fn sound_hives_still_pass_the_check() {
    for name in ["minimal", "special"] {
        let path = format!(
            "{}/../../testdata/hives/hivex/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let ed = Editor::open(std::fs::read(&path).unwrap()).unwrap();
        assert!(ed.check().is_ok(), "{name}: {:?}", ed.check());
        let mut ed = ed;
        ed.create_key("A\\B").unwrap();
        let saved = Editor::open(ed.save()).unwrap();
        assert!(
            saved.check().is_ok(),
            "{name} after an edit: {:?}",
            saved.check()
        );
    }
}
