//! Any bytes as a disk: read its partition table with 512 and 4096-byte sectors; a GPT
//! read is planned as the MBR a conversion to BIOS would write (`mbr_plan`), whose entries
//! must lie inside the disk and whose GPT sectors to zero outside every partition.

use rehost::disk::{Memory, ReadAt};
use rehost::volume::{gpt, mbr_plan, Layout, Partitioning};
use std::sync::Arc;

/// The target's body.
pub fn run(data: &[u8]) {
    let dev: Arc<dyn ReadAt> = Arc::new(Memory::new("fuzz", data.to_vec()));
    let ctx = rehost::Ctx::new("fuzz", rehost::Layer::Volume);
    for ss in [512, 4096] {
        if let Ok(l) = rehost::volume::scan(dev.clone(), ss, &ctx) {
            for v in &l.volumes {
                assert!(v.offset + v.size <= dev.size());
            }
            if l.partitioning == Partitioning::Gpt {
                to_mbr(&*dev, &l, &ctx);
            }
        }
    }
}

/// The MBR conversion of a GPT layout, planned and held to its bounds.
fn to_mbr(dev: &dyn ReadAt, l: &Layout, ctx: &rehost::Ctx) {
    let ss = u64::from(l.sector_size);
    let mut sector0 = vec![0u8; ss as usize];
    if dev.read_at(0, &mut sector0).is_err() {
        return;
    }
    let _ = mbr_plan::boot_code(&sector0, mbr_plan::Profile::builtin());
    let last = (dev.size() / ss).saturating_sub(1);
    let headers = [1, last]
        .iter()
        .filter_map(|lba| gpt::header(dev, *lba, ss, ctx).ok())
        .collect();
    let req = mbr_plan::Request {
        sector0: &sector0,
        headers,
        signature: 1,
        active: l.volumes.first().map_or(1, |v| v.index),
        disk_size: dev.size(),
    };
    let Ok(p) = mbr_plan::plan(l, &req) else {
        return;
    };
    assert_eq!(p.sector0.len(), sector0.len());
    for e in &p.entries {
        assert!((1..=4).contains(&e.slot));
        assert!((u64::from(e.first_lba) + u64::from(e.sectors)) * ss <= dev.size());
    }
    for (at, len) in &p.zero {
        assert!(at + len <= dev.size());
        assert!(l
            .volumes
            .iter()
            .all(|v| at + len <= v.offset || v.offset + v.size <= *at));
    }
}
