//! Planning writes into a qcow2 image in place (qcow2.txt, "Cluster mapping" and "Host
//! cluster management").
//!
//! The staged extents are widened to whole guest clusters (the rest of each cluster read
//! from the disk as staged, so a cluster that read from the backing file, as zeros or from a
//! snapshot's shared cluster is written whole). Then, cluster by cluster:
//! - a cluster stored uncompressed with a refcount of one (its L2 entry's COPIED flag) is
//!   written where it is, and loses a zero flag it had;
//! - a cluster not stored (unallocated, or zero with no host offset) gets a new host cluster
//!   at the end of the file, and its L2 entry points there with the COPIED flag;
//! - a cluster stored without the COPIED flag (shared with an internal snapshot) is copied
//!   on write: it gets a new host cluster the same way, and the old one's refcount drops by
//!   one (the snapshot keeps it; its tables are never written);
//! - an L1 entry with no L2 table gets a new one (one cluster, at the end of the file), and
//!   one without the COPIED flag (a table shared with a snapshot) gets a copy of its table
//!   there, the old table's refcount dropping by one;
//! - with extended L2 entries, the cluster's subcluster bitmap says all 32 subclusters
//!   are allocated and none reads as zeros (the cluster was written whole).
//!
//! Every new host cluster gets a refcount of one (`refcount`); a refcount block the refcount
//! table does not have yet is allocated at the end too. The refcount table itself never
//! moves: a commit that would need a longer one is refused.
//!
//! An image QEMU left dirty (lazy refcounts, not closed) has its refcounts rebuilt from its
//! tables first, as QEMU does when it opens one (`rebuild`): every refcount block set to the
//! counts, blocks allocated where counted clusters have none, the active state's COPIED
//! flags set by them; the write is then planned on the rebuilt state, and the header's dirty
//! bit is cleared last, once all of it is on disk.
//!
//! Order, each phase flushed before the next: the new clusters (data, L2 tables and their
//! copies, refcount blocks) and the in-place data; then the refcounts raised (or rebuilt)
//! and the refcount table entries; then the L2 tables and L1 entries that point at new
//! clusters; then the refcounts lowered for the clusters a copy on write left; then (a
//! dirty image) the header's dirty bit. A crash between phases leaves at worst clusters
//! counted but not used (a leak `qemu-img check` reports), never an entry pointing at a
//! cluster that is not counted; a dirty image stays marked dirty until the end. The journal
//! undoes it all.
//!
//! Refused, with the reason: compressed clusters to be rewritten, an external data file, an
//! image QEMU marked corrupt, a dirty one whose header extensions may own clusters rehost
//! does not count (persistent bitmaps, unknown types) or whose metadata is damaged,
//! refcounts narrower than a byte, and growing the disk past what its L1 table's clusters
//! hold.
//!
//! A disk grown (staged past its size) gets its new size in the header, and, where it needs
//! more L1 entries, the header's L1 size and the new entries (zero, or the new L2 tables):
//! the table grows inside the clusters it occupies, and is never moved.

use super::header::{CORRUPT, DIRTY, EXTERNAL_DATA_FILE};
use super::overlap::{Metadata, L2_TABLE};
use super::read::{COMPRESSED, COPIED, OFFSET_MASK, ZERO};
use super::refcount::Refcounts;
use super::Qcow2;
use crate::plan::{align, by_block, HostWrite, Phase, Plan};
use crate::{Format, ReadAt};
use rehost_core::error::Result;
use std::collections::BTreeMap;

/// An extended L2 entry's subcluster bitmap for a cluster written whole: the 32
/// allocation bits set, the 32 reads-as-zeros bits clear.
const ALL_SUBCLUSTERS_ALLOCATED: u64 = 0x0000_0000_ffff_ffff;
/// An L2 table as planned: where it is, whether the commit allocates it,
/// and its content.
struct Table<T> {
    at: u64,
    new: bool,
    content: Vec<T>,
}

impl Qcow2 {
    /// Why this image cannot be written in place, if it cannot.
    pub(crate) fn write_refusal(&self) -> Option<String> {
        let h = &self.header;
        if h.has(CORRUPT) {
            return Some("QEMU marked the image corrupt".into());
        }
        if h.has(EXTERNAL_DATA_FILE) {
            return Some(
                "it keeps its data in an external data file, which rehost does not write".into(),
            );
        }
        if h.has(DIRTY) {
            if let Some(why) = self.rebuild_refusal() {
                return Some(why);
            }
        }
        if !(3..=6).contains(&h.refcount_order) {
            return Some(format!(
                "its refcounts are {} bits wide; rehost writes 8- to 64-bit refcounts",
                1u64 << h.refcount_order.min(63)
            ));
        }
        None
    }

    /// L1 entries a disk of `size` bytes needs.
    fn l1_entries_for(&self, size: u64) -> u64 {
        size.div_ceil(self.geometry.cluster_size() * self.geometry.l2_entries)
    }

    /// Why the disk cannot grow to `new_size` bytes, if it cannot: the L1 table grows only
    /// inside the clusters it already occupies (it is never moved).
    pub(crate) fn growth_refusal(&self, new_size: u64) -> Option<String> {
        if new_size <= self.header.size {
            return None;
        }
        if new_size % 512 != 0 {
            return Some(format!("{new_size} bytes is not a whole number of sectors"));
        }
        let cs = self.geometry.cluster_size();
        let room = (u64::from(self.header.l1_size) * 8).div_ceil(cs).max(1) * cs / 8;
        let needed = self.l1_entries_for(new_size);
        (needed > room).then(|| {
            format!(
                "its L1 table has room for {room} entries in the clusters it occupies and \
                 {needed} are needed; rehost does not move the table (`qemu-img resize` does; \
                 then run rehost again)"
            )
        })
    }

    /// The host writes that store `extents` (see the module documentation).
    pub(crate) fn plan(
        &self,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        new_size: u64,
    ) -> Result<Plan> {
        let refuse = |why: String| {
            self.ctx.refused(
                "",
                format!("this qcow2 image is not written in place: {why}"),
            )
        };
        if let Some(why) = self.write_refusal() {
            return Err(refuse(why));
        }
        if let Some(why) = self.growth_refusal(new_size) {
            return Err(self.ctx.refused("", format!("the disk cannot grow: {why}")));
        }
        let file_len = self.file.size();
        let mut plan = Plan::empty(Format::Qcow2, file_len);
        let grows = new_size > self.header.size;
        if extents.is_empty() && !grows {
            return Ok(plan);
        }
        let cs = self.geometry.cluster_size();
        let extents = align(view, extents, cs)?;
        let refs = Refcounts::read(self)?;
        let mut p = Planner {
            q: self,
            cs,
            next: file_len.div_ceil(cs) * cs,
            meta: Metadata::of(self, &refs),
            refs,
            l1: BTreeMap::new(),
            l2: BTreeMap::new(),
            rebuilt_l2: BTreeMap::new(),
            data: Vec::new(),
            in_place: 0,
            copied: 0,
        };
        if self.header.has(DIRTY) {
            let r = self.rebuild(&p.refs)?;
            p.refs.adopt(&r.counts, &mut p.next)?;
            p.l1 = r.l1;
            p.rebuilt_l2 = r.l2;
            let mut repair = "the qcow2 image is marked dirty (QEMU did not close it, with lazy \
                 refcounts): its refcounts are rebuilt from its tables, as QEMU does when it \
                 opens it, and the dirty bit cleared last"
                .to_string();
            if r.flags > 0 {
                repair.push_str(&format!(
                    "; {} COPIED flags of the active state set by them",
                    r.flags
                ));
            }
            plan.notes.push(repair.clone());
            plan.repairs.push(repair);
        }
        by_block(&extents, cs, |cluster, within, bytes| {
            p.cluster(cluster, within, bytes)
        })?;
        let header = if grows {
            Some(self.grown_header(new_size, &p.l1)?)
        } else {
            None
        };
        p.finish(&mut plan, header)?;
        plan.seal(&self.ctx)
    }

    /// A grown disk's header fields (its size; the L1 table's entry count where more are
    /// needed) and the L1 entries it brings into use that the plan leaves alone, zeroed, so
    /// that none of them names a table; written last, after every table they point at.
    fn grown_header(
        &self,
        new_size: u64,
        planned: &BTreeMap<u64, u64>,
    ) -> Result<(Vec<HostWrite>, String)> {
        let h = &self.header;
        let mut writes = vec![HostWrite::new(
            24,
            new_size.to_be_bytes().to_vec(),
            "header: size",
        )];
        let (old, new) = (u64::from(h.l1_size), self.l1_entries_for(new_size));
        if new > old {
            let Ok(count) = u32::try_from(new) else {
                return Err(self.ctx.invalid("an L1 table of more than 2^32 entries"));
            };
            writes.push(HostWrite::new(
                36,
                count.to_be_bytes().to_vec(),
                "header: L1 size",
            ));
            let mut bytes = Vec::with_capacity(((new - old) * 8) as usize);
            for i in old..new {
                bytes.extend(planned.get(&i).copied().unwrap_or(0).to_be_bytes());
            }
            writes.push(HostWrite::new(
                h.l1_table_offset + old * 8,
                bytes,
                format!("L1 entries {old}..{new}"),
            ));
        }
        Ok((
            writes,
            format!(
                "the disk grows from {} to {new_size} bytes (the header's size; the L1 table \
                 from {old} to {} entries)",
                h.size,
                new.max(old)
            ),
        ))
    }
}

/// The state of one plan.
struct Planner<'a> {
    q: &'a Qcow2,
    cs: u64,
    /// The next free host offset: the end of the file, then past each cluster allocated.
    next: u64,
    /// The refcounts, as planned.
    refs: Refcounts<'a>,
    /// The metadata clusters, which no data write may land on.
    meta: Metadata,
    /// Changed L1 entries, by index.
    l1: BTreeMap<u64, u64>,
    /// L2 tables changed or allocated, by L1 index.
    l2: BTreeMap<u64, Table<u64>>,
    /// L2 tables whose COPIED flags a rebuild changed, by offset, until the plan takes them.
    rebuilt_l2: BTreeMap<u64, Vec<u64>>,
    /// Data writes (new clusters and clusters written in place).
    data: Vec<HostWrite>,
    /// Clusters written where they are.
    in_place: u64,
    /// Clusters and L2 tables copied on write (shared with a snapshot).
    copied: u64,
}

impl Planner<'_> {
    /// A new host cluster at the end of the file, counted once.
    fn allocate(&mut self) -> Result<u64> {
        let at = self.next;
        self.next += self.cs;
        self.refs.count_new(at, &mut self.next)?;
        Ok(at)
    }

    /// The L2 table at `at` (named by the L1 entry at `l1_at`), as a rebuild left it.
    fn l2_content(&mut self, at: u64, l1_at: u64) -> Result<Vec<u64>> {
        match self.rebuilt_l2.remove(&at) {
            Some(t) => Ok(t),
            None => Ok(self.q.l2_table(at, l1_at)?.to_vec()),
        }
    }

    /// The L2 table of L1 entry `l1_index` as the plan writes it: the table itself (its
    /// refcount one), a copy of it (shared), or a new one (none).
    fn table(&mut self, l1_index: u64) -> Result<Table<u64>> {
        let q = self.q;
        let g = &q.geometry;
        let l1_at = q.header.l1_table_offset + l1_index * 8;
        let l1 = match (self.l1.get(&l1_index), q.l1.get(l1_index as usize)) {
            (Some(&l1), _) | (None, Some(&l1)) => l1,
            // Past the disk as it was (it grows): an entry the table already holds, or
            // none yet.
            (None, None) if l1_index < u64::from(q.header.l1_size) => {
                let mut b = [0u8; 8];
                q.file.read_at(l1_at, &mut b)?;
                u64::from_be_bytes(b)
            }
            (None, None) => 0,
        };
        let at = l1 & OFFSET_MASK;
        if at == 0 {
            let at = self.allocate()?;
            self.l1.insert(l1_index, at | COPIED);
            return Ok(Table {
                at,
                new: true,
                content: vec![0; (g.l2_entries * g.words) as usize],
            });
        }
        if let Some(what) = self.meta.at(at).filter(|w| *w != L2_TABLE) {
            return Err(q.ctx.corrupt(
                l1_at,
                format!(
                    "L1 entry {l1_index} names the cluster at {at:#x} as an L2 table, but it \
                     holds {what}: the image's tables are damaged; nothing was written"
                ),
            ));
        }
        let content = self.l2_content(at, l1_at)?;
        if l1 & COPIED != 0 {
            self.refs.check_one(at)?;
            return Ok(Table {
                at,
                new: false,
                content,
            });
        }
        // Shared with a snapshot: a copy of the table, the old one counted once less.
        self.refs.free(at)?;
        let copy = self.allocate()?;
        self.l1.insert(l1_index, copy | COPIED);
        self.copied += 1;
        Ok(Table {
            at: copy,
            new: true,
            content,
        })
    }

    /// Plans guest cluster `cluster`'s bytes from `within` on.
    fn cluster(&mut self, cluster: u64, within: u64, bytes: &[u8]) -> Result<()> {
        let q = self.q;
        let g = &q.geometry;
        let (l1_index, l2_index) = (cluster / g.l2_entries, cluster % g.l2_entries);
        if !self.l2.contains_key(&l1_index) {
            let table = self.table(l1_index)?;
            self.l2.insert(l1_index, table);
        }
        // An entry is one 64-bit word, or two with extended L2 (the second the subclusters'
        // bitmap).
        let i = (l2_index * g.words) as usize;
        let (entry, entry_at) = match self.l2.get(&l1_index) {
            Some(t) => (t.content.get(i).copied().unwrap_or(0), t.at + i as u64 * 8),
            None => return Err(q.ctx.invalid("an L2 table planned is missing")),
        };
        if entry & COMPRESSED != 0 {
            return Err(q.ctx.refused(
                "",
                format!(
                    "this qcow2 image is not written in place: guest cluster {cluster} is \
                     compressed (L2 entry at {entry_at:#x}), and rehost does not rewrite \
                     compressed clusters; write a new image with --output instead"
                ),
            ));
        }
        let host = entry & OFFSET_MASK;
        let host = if host != 0 {
            if host % self.cs != 0
                || host.saturating_add(self.cs) > q.file.size().div_ceil(self.cs) * self.cs
            {
                return Err(q.ctx.corrupt(
                    entry_at,
                    format!("guest cluster {cluster} is stored at {host:#x}, not a whole cluster inside the file"),
                ));
            }
            if let Some(what) = self.meta.at(host) {
                return Err(q.ctx.corrupt(
                    entry_at,
                    format!(
                        "guest cluster {cluster} is stored at {host:#x}, which holds {what}: \
                         the image's tables are damaged; nothing was written"
                    ),
                ));
            }
            if entry & COPIED != 0 {
                self.refs.check_one(host)?;
                self.in_place += 1;
                host
            } else {
                // Shared with a snapshot: copied on write, the old cluster counted once less.
                self.refs.free(host)?;
                self.copied += 1;
                self.allocate()?
            }
        } else {
            self.allocate()?
        };
        // The whole cluster is written (the extents were widened to whole clusters from
        // the disk as it reads), so with extended L2 each of its subclusters is allocated
        // and none reads as zeros.
        if let Some(t) = self.l2.get_mut(&l1_index) {
            if let Some(e) = t.content.get_mut(i) {
                *e = (host | COPIED) & !ZERO;
            }
            if g.words == 2 {
                if let Some(bitmap) = t.content.get_mut(i + 1) {
                    *bitmap = ALL_SUBCLUSTERS_ALLOCATED;
                }
            }
        }
        self.data.push(HostWrite::new(
            host + within,
            bytes.to_vec(),
            format!("guest cluster {cluster}"),
        ));
        Ok(())
    }

    /// Puts the writes into the plan's phases, with notes; `grown` is a grown disk's header
    /// writes and its note.
    fn finish(self, plan: &mut Plan, grown: Option<(Vec<HostWrite>, String)>) -> Result<()> {
        let q = self.q;
        let be = |v: &[u64]| v.iter().flat_map(|e| e.to_be_bytes()).collect::<Vec<u8>>();
        let new_clusters = (self.next - plan.file_len.div_ceil(self.cs) * self.cs) / self.cs;
        let refs = self.refs.writes()?;
        let new_blocks = refs.new_blocks.len() as u64;
        let mut first = Phase {
            name: "clusters",
            set_len: (self.next > plan.file_len).then_some(self.next),
            writes: self.data,
        };
        first.writes.extend(refs.new_blocks);
        let raised = Phase {
            name: "refcounts",
            set_len: None,
            writes: refs.raised,
        };
        let mut tables = Phase {
            name: "tables",
            ..Phase::default()
        };
        let mut new_l2 = 0;
        for (i, t) in self.l2 {
            let w = HostWrite::new(t.at, be(&t.content), format!("L2 table {i}"));
            if t.new {
                new_l2 += 1;
                first.writes.push(w);
            } else {
                tables.writes.push(w);
            }
        }
        // Tables whose COPIED flags a rebuild changed that the write does not touch.
        for (at, t) in self.rebuilt_l2 {
            tables
                .writes
                .push(HostWrite::new(at, be(&t), format!("L2 table at {at:#x}")));
        }
        let l1_size = u64::from(q.header.l1_size);
        for (i, e) in self.l1.into_iter().filter(|(i, _)| *i < l1_size) {
            tables.writes.push(HostWrite::new(
                q.header.l1_table_offset + i * 8,
                e.to_be_bytes().to_vec(),
                format!("L1 entry {i}"),
            ));
        }
        if let Some((writes, note)) = grown {
            tables.writes.extend(writes);
            plan.notes.push(note);
        }
        let lowered = Phase {
            name: "frees",
            set_len: None,
            writes: refs.lowered,
        };
        let mut header = Phase {
            name: "header",
            ..Phase::default()
        };
        let h = &q.header;
        if h.has(DIRTY) {
            header.writes.push(HostWrite::new(
                72,
                (h.incompatible_features & !DIRTY).to_be_bytes().to_vec(),
                "header: incompatible features (the dirty bit cleared)",
            ));
            plan.notes.push(format!(
                "{} refcounts rewritten (rebuilt, and the new clusters')",
                refs.changed
            ));
        }
        plan.new_len = self.next.max(plan.file_len);
        plan.notes.push(format!(
            "{} clusters written in place; {new_clusters} new clusters at the end of the file \
             ({} data, {new_l2} L2 tables, {new_blocks} refcount blocks), each counted once",
            self.in_place,
            new_clusters - new_l2 - new_blocks
        ));
        if self.copied > 0 {
            plan.notes.push(format!(
                "{} clusters and L2 tables shared with internal snapshots copied on write \
                 (the snapshots keep the old ones)",
                self.copied
            ));
        }
        plan.phases = vec![first, raised, tables, lowered, header];
        Ok(())
    }
}
