//! A cell whose size field is 0, where the reader (nt-hive) goes: an error that names the
//! hive, not a panic. Found by the `regf_hive` fuzz target: nt-hive 0.3 subtracts the cell
//! header from the size unchecked, which panics with overflow checks on.

use rehost_core::{Ctx, Layer};
use rehost_regf::hive::Hive;
use rehost_regf::Editor;

fn minimal_with_a_key() -> (Vec<u8>, u32, u32) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/hives/hivex/minimal"
    );
    let mut ed = Editor::open(std::fs::read(path).unwrap()).unwrap();
    ed.create_key("Child").unwrap();
    let hive = ed.save();
    let ed = Editor::open(hive.clone()).unwrap();
    let (root, child) = (ed.root().unwrap(), ed.find("Child").unwrap().unwrap());
    (hive, root.offset, child.offset)
}

fn zero_size(hive: &mut [u8], cell: u32) {
    let o = 4096 + cell as usize;
    hive[o..o + 4].copy_from_slice(&0u32.to_le_bytes());
}

fn ctx() -> Ctx {
    Ctx::new("zero.hive", Layer::Hive)
}

#[test]
fn a_root_cell_of_size_zero_is_an_error() {
    let (mut hive, root, _) = minimal_with_a_key();
    assert!(Hive::parse(hive.clone(), ctx()).is_ok());
    zero_size(&mut hive, root);
    let e = Hive::parse(hive, ctx()).err().expect("refused");
    let msg = e.to_string();
    assert!(msg.contains("zero.hive"), "{msg}");
    assert!(msg.contains("size of 0"), "{msg}");
}

#[test]
fn a_subkey_cell_of_size_zero_is_an_error_at_its_path() {
    let (mut hive, _, child) = minimal_with_a_key();
    zero_size(&mut hive, child);
    let h = Hive::parse(hive, ctx()).unwrap();
    let msg = h.subkeys("").expect_err("refused").to_string();
    assert!(msg.contains("zero.hive"), "{msg}");
    assert!(h.has_key("Child").is_err());
}
