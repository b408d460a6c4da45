//! Any bytes as boot.ini: parsed, its default entry found, and edited (an entry added, an
//! ARC path rewritten) with the result parsed again.

use rehost::formats::bootini::{self, edit::Edit};

/// The target's body.
pub fn run(data: &[u8]) {
    let ini = bootini::parse(data);
    let _ = ini.default_entry();
    let text = String::from_utf8_lossy(data);
    let added = bootini::edit::apply(
        &text,
        &Edit::AddEntry {
            arc: "multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS".into(),
            description: "Windows".into(),
            switches: "/fastdetect /HAL=halmacpi.dll".into(),
            default: true,
        },
    );
    let _ = bootini::parse(added.as_bytes());
    if let Some(e) = ini.entries.first() {
        let to = "multi(0)disk(0)rdisk(0)partition(2)\\WINDOWS";
        let moved = bootini::edit::apply(
            &text,
            &Edit::RewriteArc {
                from: e.target.clone(),
                to: to.into(),
            },
        );
        let _ = bootini::parse(moved.as_bytes());
        let _ = bootini::parse_arc(&e.target);
    }
}
