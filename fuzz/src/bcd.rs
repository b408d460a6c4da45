//! Any bytes as a BCD store: the hive read, every object and element decoded, and every
//! device element's partition descriptors found and rewritten.

use rehost::formats::bcd::{self, PartitionRef};
use rehost::formats::hive::Hive;

/// The target's body.
pub fn run(data: &[u8]) {
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Bcd);
    let Ok(hive) = Hive::parse(data.to_vec(), ctx) else {
        return;
    };
    let _ = bcd::objects(&hive);
    let Ok(raw) = bcd::binary_elements(&hive) else {
        return;
    };
    for e in raw.into_iter().take(64) {
        let _ = bcd::device(&e.bytes);
        let mut b = e.bytes.clone();
        for (at, _) in bcd::partitions(&e.bytes) {
            let r = PartitionRef::Mbr {
                signature: "12345678".into(),
                offset: 1 << 20,
            };
            let _ = bcd::set_partition(&mut b, at, &r);
        }
    }
}
