//! The host clusters an image's metadata occupies, which a write in place must never land
//! on (QEMU's metadata overlap check): a damaged or hostile image whose L2 entry names the
//! header, a table or a refcount block as a data cluster with the COPIED flag (and a
//! refcount of one, as the metadata's own) would otherwise have its metadata overwritten
//! with guest data.

use super::read::OFFSET_MASK;
use super::refcount::Refcounts;
use super::Qcow2;
use std::collections::BTreeMap;

/// Metadata clusters by host offset: what each one holds.
pub(super) struct Metadata(BTreeMap<u64, &'static str>);

impl Metadata {
    /// The clusters of the header, the active and each snapshot's L1 table, the active L2
    /// tables, the snapshot table, the refcount table and each refcount block.
    pub(super) fn of(q: &Qcow2, refs: &Refcounts) -> Self {
        let cs = q.geometry.cluster_size();
        let h = &q.header;
        let mut m = Metadata(BTreeMap::new());
        m.range(0, 1, cs, "the header");
        m.range(
            h.l1_table_offset,
            u64::from(h.l1_size) * 8,
            cs,
            "the L1 table",
        );
        m.range(
            h.refcount_table_offset,
            u64::from(h.refcount_table_clusters) * cs,
            cs,
            "the refcount table",
        );
        m.range(
            h.snapshots_offset,
            q.snapshots_bytes,
            cs,
            "the snapshot table",
        );
        for s in &q.snapshots {
            let len = u64::from(s.l1_size) * 8;
            m.range(s.l1_table_offset, len, cs, "a snapshot's L1 table");
        }
        for ti in 0..refs.table_len() {
            m.range(refs.block_offset(ti), 1, cs, "a refcount block");
        }
        for e in &q.l1 {
            m.range(e & OFFSET_MASK, 1, cs, "an L2 table");
        }
        m
    }

    /// Marks the clusters of `len` bytes at `at` (none when `at` or `len` is 0).
    fn range(&mut self, at: u64, len: u64, cs: u64, what: &'static str) {
        if at == 0 && what != "the header" || len == 0 {
            return;
        }
        let first = at / cs;
        let last = at.saturating_add(len - 1) / cs;
        // A table larger than the file is refused where it is read; bound the walk anyway.
        for c in first..=last.min(first.saturating_add(1 << 20)) {
            self.0.entry(c * cs).or_insert(what);
        }
    }

    /// What the metadata cluster at `host` holds, if it is one.
    pub(super) fn at(&self, host: u64) -> Option<&'static str> {
        self.0.get(&host).copied()
    }
}
