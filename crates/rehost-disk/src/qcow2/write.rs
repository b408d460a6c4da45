//! Planning writes into a qcow2 image in place (qcow2.txt, "Cluster mapping" and "Host
//! cluster management").
//!
//! The staged extents are widened to whole guest clusters (the rest of each cluster read
//! from the disk as staged, so a cluster that read from the backing file or as zeros is
//! copied up whole). Then, cluster by cluster:
//! - a cluster stored uncompressed with a refcount of one (its L2 entry's COPIED flag) is
//!   written where it is, and loses a zero flag it had;
//! - a cluster not stored (unallocated, or zero with no host offset) gets a new host cluster
//!   at the end of the file, and its L2 entry points there with the COPIED flag;
//! - an L1 entry with no L2 table gets a new one (one cluster, at the end of the file);
//! - with extended L2 entries, the cluster's subcluster bitmap says all 32 subclusters
//!   are allocated and none reads as zeros (the cluster was written whole).
//!
//! Every new host cluster gets a refcount of one in its refcount block; a refcount block the
//! refcount table does not have yet is allocated at the end too (and counts itself, or is
//! counted by the block that covers it). The refcount table itself never moves: a commit
//! that would need a longer one is refused.
//!
//! Order, each phase flushed before the next: the new clusters (data, L2 tables, refcount
//! blocks) and the in-place data; then the refcount blocks and refcount table entries; then
//! the L2 tables and L1 entries that point at new clusters. A crash between phases leaves at
//! worst clusters counted but not used (a leak `qemu-img check` reports), never an entry
//! pointing at a cluster that is not counted. The journal undoes it all.
//!
//! Refused, with the reason: compressed clusters to be rewritten, clusters or L2 tables
//! shared with an internal snapshot, an external data file, an image
//! QEMU marked dirty or corrupt, refcounts narrower than a byte, and growing the disk past
//! what its L1 table's clusters hold.
//!
//! A disk grown (staged past its size) gets its new size in the header, and, where it needs
//! more L1 entries, the header's L1 size and the new entries (zero, or the new L2 tables):
//! the table grows inside the clusters it occupies, and is never moved.

use super::header::{CORRUPT, DIRTY, EXTERNAL_DATA_FILE};
use super::read::{COMPRESSED, COPIED, OFFSET_MASK, ZERO};
use super::Qcow2;
use crate::plan::{align, by_block, HostWrite, Phase, Plan};
use crate::{Format, ReadAt};
use rehost_core::error::Result;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// Largest refcount table read to plan a commit.
const MAX_REFCOUNT_TABLE_BYTES: u64 = 32 << 20;

/// An extended L2 entry's subcluster bitmap for a cluster written whole: the 32
/// allocation bits set, the 32 reads-as-zeros bits clear.
const ALL_SUBCLUSTERS_ALLOCATED: u64 = 0x0000_0000_ffff_ffff;
/// Bits 9-63 of a refcount table entry: the refcount block's offset.
const REFTABLE_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;

/// A table (L2 or refcount block) as planned: where it is, whether the commit allocates it,
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
        if h.has(DIRTY) {
            return Some(
                "the image is marked dirty (QEMU did not close it, so its refcounts may be \
                 stale): repair it with `qemu-img check -r all` first"
                    .into(),
            );
        }
        if h.has(CORRUPT) {
            return Some("QEMU marked the image corrupt".into());
        }
        if h.has(EXTERNAL_DATA_FILE) {
            return Some(
                "it keeps its data in an external data file, which rehost does not write".into(),
            );
        }
        if h.nb_snapshots > 0 {
            return Some(format!(
                "it holds {} internal snapshots, whose clusters the active state shares; rehost \
                 does not copy shared clusters on write",
                h.nb_snapshots
            ));
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
        let mut p = Planner {
            q: self,
            cs,
            next: file_len.div_ceil(cs) * cs,
            l1: BTreeMap::new(),
            l2: BTreeMap::new(),
            data: Vec::new(),
            counted: Vec::new(),
            in_place: 0,
            rewritten: Vec::new(),
        };
        by_block(&extents, cs, |cluster, within, bytes| {
            p.cluster(cluster, within, bytes)
        })?;
        let blocks = p.refcounts()?;
        let header = if grows {
            Some(self.grown_header(new_size, &p.l1)?)
        } else {
            None
        };
        p.finish(&mut plan, blocks)?;
        if let (Some((writes, note)), Some(last)) = (header, plan.phases.last_mut()) {
            last.writes.extend(writes);
            plan.notes.push(note);
        }
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

/// The refcount side of a plan: refcount blocks changed or allocated, and refcount table
/// entries that change, each by refcount table index.
#[derive(Default)]
struct Refcounts {
    blocks: BTreeMap<u64, Table<u8>>,
    entries: BTreeMap<u64, u64>,
}

/// The state of one plan.
struct Planner<'a> {
    q: &'a Qcow2,
    cs: u64,
    /// The next free host offset: the end of the file, then past each cluster allocated.
    next: u64,
    /// Changed L1 entries, by index.
    l1: BTreeMap<u64, u64>,
    /// L2 tables changed or allocated, by L1 index.
    l2: BTreeMap<u64, Table<u64>>,
    /// Data writes (new clusters and clusters written in place).
    data: Vec<HostWrite>,
    /// New host clusters, each to get a refcount of one.
    counted: Vec<u64>,
    /// Clusters written where they are.
    in_place: u64,
    /// Host clusters rewritten where they are (data and L2 tables), each of which must have
    /// a refcount of one.
    rewritten: Vec<u64>,
}

impl Planner<'_> {
    /// A new host cluster at the end of the file.
    fn allocate(&mut self) -> u64 {
        let at = self.next;
        self.next += self.cs;
        self.counted.push(at);
        at
    }

    /// Plans guest cluster `cluster`'s bytes from `within` on.
    fn cluster(&mut self, cluster: u64, within: u64, bytes: &[u8]) -> Result<()> {
        let q = self.q;
        let g = &q.geometry;
        let (l1_index, l2_index) = (cluster / g.l2_entries, cluster % g.l2_entries);
        let l1_at = q.header.l1_table_offset + l1_index * 8;
        if !self.l2.contains_key(&l1_index) {
            let l1 = match q.l1.get(l1_index as usize) {
                Some(&l1) => l1,
                // Past the disk as it was (it grows): an entry the table already holds, or
                // none yet.
                None if l1_index < u64::from(q.header.l1_size) => {
                    let mut b = [0u8; 8];
                    q.file.read_at(l1_at, &mut b)?;
                    u64::from_be_bytes(b)
                }
                None => 0,
            };
            let at = l1 & OFFSET_MASK;
            let table = if at == 0 {
                let at = self.allocate();
                self.l1.insert(l1_index, at | COPIED);
                Table {
                    at,
                    new: true,
                    content: vec![0; (g.l2_entries * g.words) as usize],
                }
            } else if l1 & COPIED == 0 {
                return Err(q.ctx.refused(
                    "",
                    format!(
                        "this qcow2 image is not written in place: the L2 table at {at:#x} \
                         (L1 entry at {l1_at:#x}) is shared (its refcount is not one)"
                    ),
                ));
            } else {
                self.rewritten.push(at);
                Table {
                    at,
                    new: false,
                    content: q.l2_table(at, l1_at)?.to_vec(),
                }
            };
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
            if entry & COPIED == 0 {
                return Err(q.ctx.refused(
                    "",
                    format!(
                        "this qcow2 image is not written in place: guest cluster {cluster} is \
                         shared (L2 entry at {entry_at:#x} has a refcount other than one)"
                    ),
                ));
            }
            if host % self.cs != 0
                || host.saturating_add(self.cs) > q.file.size().div_ceil(self.cs) * self.cs
            {
                return Err(q.ctx.corrupt(
                    entry_at,
                    format!("guest cluster {cluster} is stored at {host:#x}, not a whole cluster inside the file"),
                ));
            }
            self.in_place += 1;
            self.rewritten.push(host);
            host
        } else {
            self.allocate()
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

    /// Gives each new cluster a refcount of one: the refcount blocks changed or allocated,
    /// by refcount table index, and the refcount table entries that change.
    fn refcounts(&mut self) -> Result<Refcounts> {
        let q = self.q;
        let h = &q.header;
        let ctx = &q.ctx;
        let table_bytes = u64::from(h.refcount_table_clusters) * self.cs;
        if table_bytes > MAX_REFCOUNT_TABLE_BYTES
            || h.refcount_table_offset % self.cs != 0
            || h.refcount_table_offset
                .checked_add(table_bytes)
                .is_none_or(|e| e > q.file.size())
        {
            return Err(ctx.corrupt(
                48,
                format!(
                    "refcount table at {:#x} ({} clusters) is not a whole number of clusters \
                     inside the file (or larger than {MAX_REFCOUNT_TABLE_BYTES} bytes)",
                    h.refcount_table_offset, h.refcount_table_clusters
                ),
            ));
        }
        let mut raw = vec![0u8; table_bytes as usize];
        q.file.read_at(h.refcount_table_offset, &mut raw)?;
        let table: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let width = 1usize << (h.refcount_order - 3);
        let per_block = self.cs / width as u64;
        let mut r = Refcounts::default();
        // The clusters rewritten where they are first: each must be counted once (the L2
        // entries' COPIED flags say so, the refcounts decide). Then the new ones.
        let mut pending = std::mem::take(&mut self.counted);
        let rewritten = std::mem::take(&mut self.rewritten);
        let mut checked = rewritten.len();
        pending.extend(rewritten.into_iter().rev());
        while let Some(cluster) = pending.pop() {
            let check = checked > 0;
            checked = checked.saturating_sub(1);
            let index = cluster / self.cs;
            let (ti, bi) = (index / per_block, (index % per_block) as usize);
            let Some(&entry) = table.get(ti as usize) else {
                return Err(ctx.refused(
                    "",
                    format!(
                        "this qcow2 image is not written in place: its refcount table ({} \
                         entries) has no room for the cluster at {cluster:#x}, and rehost \
                         does not move the table; write a new image with --output instead",
                        table.len()
                    ),
                ));
            };
            if let Entry::Vacant(slot) = r.blocks.entry(ti) {
                let at = entry & REFTABLE_OFFSET_MASK;
                let block = if at == 0 {
                    let at = self.next;
                    self.next += self.cs;
                    pending.push(at);
                    r.entries.insert(ti, at);
                    Table {
                        at,
                        new: true,
                        content: vec![0; self.cs as usize],
                    }
                } else {
                    if at % self.cs != 0 || at.saturating_add(self.cs) > q.file.size() {
                        return Err(ctx.corrupt(
                            h.refcount_table_offset + ti * 8,
                            format!(
                                "refcount block at {at:#x} is not a whole cluster inside the file"
                            ),
                        ));
                    }
                    let mut content = vec![0u8; self.cs as usize];
                    q.file.read_at(at, &mut content)?;
                    Table {
                        at,
                        new: false,
                        content,
                    }
                };
                slot.insert(block);
            }
            let Some(block) = r.blocks.get_mut(&ti) else {
                return Err(ctx.invalid("a refcount block planned is missing"));
            };
            let slot = &mut block.content[bi * width..(bi + 1) * width];
            if check {
                let count = slot.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
                if count != 1 || block.new {
                    return Err(ctx.corrupt(
                        block.at + (bi * width) as u64,
                        format!(
                            "the cluster at {cluster:#x} is in use, but its refcount is {}, not \
                             one: the refcounts are damaged (`qemu-img check -r all` repairs \
                             them); nothing was written",
                            if block.new { 0 } else { count }
                        ),
                    ));
                }
                continue;
            }
            if slot.iter().any(|b| *b != 0) {
                return Err(ctx.corrupt(
                    block.at + (bi * width) as u64,
                    format!(
                        "the cluster at {cluster:#x}, at or past the end of the file, already has \
                         a refcount"
                    ),
                ));
            }
            slot[width - 1] = 1;
        }
        Ok(r)
    }

    /// Puts the writes into the plan's phases, with notes.
    fn finish(self, plan: &mut Plan, Refcounts { blocks, entries }: Refcounts) -> Result<()> {
        let q = self.q;
        let be = |v: &[u64]| v.iter().flat_map(|e| e.to_be_bytes()).collect::<Vec<u8>>();
        let new_clusters = (self.next - plan.file_len.div_ceil(self.cs) * self.cs) / self.cs;
        let mut first = Phase {
            name: "clusters",
            set_len: (self.next > plan.file_len).then_some(self.next),
            writes: self.data,
        };
        let mut refs = Phase {
            name: "refcounts",
            ..Phase::default()
        };
        let mut tables = Phase {
            name: "tables",
            ..Phase::default()
        };
        let (mut new_l2, mut new_blocks) = (0, 0);
        for (i, t) in self.l2 {
            let w = HostWrite::new(t.at, be(&t.content), format!("L2 table {i}"));
            if t.new {
                new_l2 += 1;
                first.writes.push(w);
            } else {
                tables.writes.push(w);
            }
        }
        for (i, b) in blocks {
            let w = HostWrite::new(b.at, b.content, format!("refcount block {i}"));
            if b.new {
                new_blocks += 1;
                first.writes.push(w);
            } else {
                refs.writes.push(w);
            }
        }
        for (i, at) in entries {
            refs.writes.push(HostWrite::new(
                q.header.refcount_table_offset + i * 8,
                at.to_be_bytes().to_vec(),
                format!("refcount table entry {i}"),
            ));
        }
        let l1_size = u64::from(q.header.l1_size);
        for (i, e) in self.l1.into_iter().filter(|(i, _)| *i < l1_size) {
            tables.writes.push(HostWrite::new(
                q.header.l1_table_offset + i * 8,
                e.to_be_bytes().to_vec(),
                format!("L1 entry {i}"),
            ));
        }
        plan.new_len = self.next.max(plan.file_len);
        plan.notes.push(format!(
            "{} clusters written in place; {new_clusters} new clusters at the end of the file \
             ({} data, {new_l2} L2 tables, {new_blocks} refcount blocks), each counted once",
            self.in_place,
            new_clusters - new_l2 - new_blocks
        ));
        plan.phases = vec![first, refs, tables];
        Ok(())
    }
}
