//! A key whose cell lies inside a free cell of a damaged hive: the editor's check refuses
//! the hive, since the allocator would hand that space out and a later edit overwrite the
//! key. Found by the `regf_edit` fuzz target: two key creations left a saved hive pointing
//! at a free cell.

use rehost_regf::Editor;

#[test]
fn a_key_inside_a_free_cell_is_refused_by_the_check() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/hives/hivex/minimal"
    );
    let mut ed = Editor::open(std::fs::read(path).unwrap()).unwrap();
    ed.create_key("A").unwrap();
    ed.create_key("B").unwrap();
    let (a, b) = (
        ed.find("A").unwrap().unwrap(),
        ed.find("B").unwrap().unwrap(),
    );
    ed.delete_key("A").unwrap();
    let mut hive = ed.save();
    assert!(Editor::open(hive.clone()).unwrap().check().is_ok());
    let at = |cell: u32| 4096 + cell as usize;
    let size =
        |h: &[u8], cell: u32| i32::from_le_bytes(h[at(cell)..at(cell) + 4].try_into().unwrap());
    // A's cell, now free, directly precedes B's: widened over it.
    let free = size(&hive, a.offset);
    assert!(
        free > 0 && a.offset + free as u32 == b.offset,
        "{free} {} {}",
        a.offset,
        b.offset
    );
    let widened = free + size(&hive, b.offset).abs();
    hive[at(a.offset)..at(a.offset) + 4].copy_from_slice(&widened.to_le_bytes());

    let ed = Editor::open(hive).unwrap();
    let e = ed.check().expect_err("refused");
    let rehost_regf::Error::Cell { offset, what } = &e else {
        panic!("not a cell error: {e}");
    };
    assert_eq!(*offset, b.offset);
    assert!(what.contains("inside a free cell"), "{what}");
    // As an error of an image: corrupt, at the cell.
    let e = rehost_core::Ctx::new("SYSTEM", rehost_core::Layer::Hive).locate(e);
    assert!(
        matches!(
            (&e.location, &e.kind),
            (rehost_core::Location::Cell(c), rehost_core::ErrorKind::Corrupt(_)) if *c == b.offset
        ),
        "{e}"
    );
}
