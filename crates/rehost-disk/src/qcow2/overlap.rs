//! The host clusters an image's metadata occupies, which a write in place must never land
//! on (QEMU's metadata overlap check): a damaged or hostile image whose L2 entry names the
//! header, a table or a refcount block as a data cluster with the COPIED flag (and a
//! refcount of one, as the metadata's own) would otherwise have its metadata overwritten
//! with guest data.

use super::read::OFFSET_MASK;
use super::refcount::Refcounts;
use super::Qcow2;
use crate::ReadAt;
use std::collections::BTreeMap;

/// What an L2 table's cluster holds, as [`Metadata::at`] names it.
pub(super) const L2_TABLE: &str = "an L2 table";

/// The image's metadata: single clusters by host offset, and the tables that may span
/// several (each range cut at the end of the file), with what each holds.
pub(super) struct Metadata {
    clusters: BTreeMap<u64, &'static str>,
    /// Sorted by start.
    tables: Vec<(u64, u64, &'static str)>,
    /// `reach[i]`: the furthest end among `tables[..=i]`, so that a lookup that meets no
    /// table (every write of a sound image) costs a binary search, however many snapshot
    /// L1 tables the image lists.
    reach: Vec<u64>,
    cluster_size: u64,
}

impl Metadata {
    /// The header's cluster, the active and each snapshot's L1 table, the active L2
    /// tables, the snapshot table, the refcount table and each refcount block.
    pub(super) fn of(q: &Qcow2, refs: &Refcounts) -> Self {
        let cs = q.geometry.cluster_size();
        let h = &q.header;
        let mut tables = Vec::new();
        let end = q.file.size();
        let mut table = |at: u64, len: u64, what| {
            if at != 0 && len != 0 && at < end {
                tables.push((at, at.saturating_add(len).min(end), what));
            }
        };
        table(h.l1_table_offset, u64::from(h.l1_size) * 8, "the L1 table");
        let refcount_table = u64::from(h.refcount_table_clusters) * cs;
        table(
            h.refcount_table_offset,
            refcount_table,
            "the refcount table",
        );
        table(h.snapshots_offset, q.snapshots_bytes, "the snapshot table");
        for s in &q.snapshots {
            let len = u64::from(s.l1_size) * 8;
            table(s.l1_table_offset, len, "a snapshot's L1 table");
        }
        let mut clusters = BTreeMap::from([(0, "the header")]);
        let blocks = (0..refs.table_len()).map(|ti| (refs.block_offset(ti), "a refcount block"));
        let l2 = q.l1.iter().map(|e| (e & OFFSET_MASK, L2_TABLE));
        for (at, what) in blocks.chain(l2).filter(|(at, _)| *at != 0) {
            clusters.entry(at).or_insert(what);
        }
        Self::new(clusters, tables, cs)
    }

    /// From single `clusters` and `tables` (start, end, what), in any order.
    fn new(
        clusters: BTreeMap<u64, &'static str>,
        mut tables: Vec<(u64, u64, &'static str)>,
        cluster_size: u64,
    ) -> Self {
        tables.sort_by_key(|t| t.0);
        let reach = tables
            .iter()
            .scan(0, |far, t| {
                *far = t.1.max(*far);
                Some(*far)
            })
            .collect();
        Metadata {
            clusters,
            tables,
            reach,
            cluster_size,
        }
    }

    /// What the metadata cluster at `host` (a cluster's offset) holds, if it is one.
    pub(super) fn at(&self, host: u64) -> Option<&'static str> {
        let end = host.saturating_add(self.cluster_size);
        // The tables that start before `end`; one of them overlaps only if one reaches
        // past `host`.
        let before = self.tables.partition_point(|t| t.0 < end);
        let table = match before.checked_sub(1).map(|i| self.reach[i]) {
            Some(far) if far > host => self.tables[..before]
                .iter()
                .find(|(_, stop, _)| host < *stop)
                .map(|t| t.2),
            _ => None,
        };
        table.or_else(|| self.clusters.get(&host).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_table_is_found_past_a_later_short_one() {
        let m = Metadata::new(
            BTreeMap::from([(0, "the header"), (0x20_0000, L2_TABLE)]),
            vec![
                (0x2_0000, 0x3_0000, "the L1 table"),
                (0x1_0000, 0x10_0000, "a snapshot's L1 table"),
            ],
            0x1_0000,
        );
        assert_eq!(m.at(0x5_0000), Some("a snapshot's L1 table"));
        assert_eq!(m.at(0x2_0000), Some("a snapshot's L1 table"));
        assert_eq!(m.at(0x0), Some("the header"));
        assert_eq!(m.at(0x20_0000), Some(L2_TABLE));
        assert_eq!(m.at(0x10_0000), None);
        assert_eq!(m.at(0x30_0000), None);
    }
}
