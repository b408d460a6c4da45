//! Any bytes as a cabinet: open it, list its members, and extract the first few; a member
//! whose name no other shares extracts to the size its entry declares, or fails.

use rehost::disk::Memory;
use rehost::formats::cab::{Cab, Member};

/// The target's body.
pub fn run(data: &[u8]) {
    let ctx = rehost::Ctx::new("fuzz.cab", rehost::Layer::Cab);
    let Ok(mut cab) = Cab::open(Memory::new("fuzz.cab", data.to_vec()), ctx) else {
        return;
    };
    let members = cab.members();
    for m in members.iter().take(8) {
        let same = |o: &&Member| o.name.eq_ignore_ascii_case(&m.name);
        let unique = members.iter().filter(same).count() == 1;
        if let (Ok(bytes), true) = (cab.read(&m.name), unique) {
            assert_eq!(bytes.len() as u64, m.size as u64, "{}", m.name);
        }
    }
    let _ = cab.find("viostor.sys");
}
