//! Any bytes as a hive to edit: opened by the editor and checked as Windows checks a hive
//! it loads; then a few edits chosen by the input's last bytes (keys created and deleted,
//! values set and deleted), the hive saved, and what was saved read back by the editor
//! and by nt-hive, which must accept it when it accepted the hive before the edits.

use rehost::formats::hive::Hive;
use rehost::formats::regf::cells::decode_name;
use rehost::formats::regf::Editor;

/// The target's body.
pub fn run(data: &[u8]) {
    let Ok(mut ed) = Editor::open(data.to_vec()) else {
        return;
    };
    if ed.check().is_err() {
        return;
    }
    let tail = &data[data.len().saturating_sub(8)..];
    let cells = ed.cells();
    let first = ed
        .root()
        .and_then(|r| cells.subkeys(&r))
        .ok()
        .and_then(|k| k.first().and_then(|&o| cells.nk_name(o).ok()))
        .map(|(name, ascii)| decode_name(name, ascii));
    let mut ok = true;
    for (i, &b) in tail.iter().enumerate() {
        let key = format!("Fuzz{}\\K{}", b % 3, i % 2);
        let bytes = vec![b; (b as usize) * 40];
        let r = match b % 5 {
            0 => ed.create_key(&key).map(|_| ()),
            1 => ed.set_value(&key, &format!("v{}", b % 4), u32::from(b % 12), &bytes),
            2 => ed.delete_value(&key, "v1").map(|_| ()),
            3 => ed.delete_key(&format!("Fuzz{}", b % 3)).map(|_| ()),
            _ => match &first {
                Some(k) => ed.set_value(k, "", 4, &[b; 4]),
                None => Ok(()),
            },
        };
        ok &= r.is_ok();
    }
    let saved = ed.save();
    if ok {
        let again = Editor::open(saved.clone()).expect("the saved hive opens");
        again.check().expect("the saved hive checks");
        // nt-hive reads what it read before the edits (it refuses hive versions the editor
        // takes, 1.0 to 1.2).
        let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Hive);
        if Hive::parse(data.to_vec(), ctx.clone()).is_ok() {
            Hive::parse(saved, ctx).expect("nt-hive reads the saved hive");
        }
    }
}
