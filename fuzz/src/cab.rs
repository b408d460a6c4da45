//! Any bytes as a cabinet: open it, list its members, and extract the first few.

use rehost::disk::Memory;
use rehost::formats::cab::Cab;

/// The target's body.
pub fn run(data: &[u8]) {
    let ctx = rehost::Ctx::new("fuzz.cab", rehost::Layer::Cab);
    let Ok(mut cab) = Cab::open(Memory::new("fuzz.cab", data.to_vec()), ctx) else {
        return;
    };
    for m in cab.members().into_iter().take(8) {
        if let Ok(bytes) = cab.read(&m.name) {
            assert_eq!(bytes.len() as u64, m.size as u64, "{}", m.name);
        }
    }
    let _ = cab.find("viostor.sys");
}
