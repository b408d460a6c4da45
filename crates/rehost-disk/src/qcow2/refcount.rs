//! The refcounts a commit in place reads and changes (qcow2.txt, "Host cluster
//! management"): the refcount table, read whole, and its refcount blocks, each read when
//! first needed.
//!
//! A refcount is set (a rebuild), raised from zero to one (a new cluster), or lowered by
//! one (a cluster a copy on write leaves). A refcount block the table does not have yet is
//! allocated at the end of the file and counts itself, or is counted by the block that
//! covers it. The refcount table itself never moves: a cluster past what it covers is
//! refused.
//!
//! What changes is written slot by slot (runs of adjacent refcounts that change), so that
//! the raises go in one phase and the lowerings in a later one without two writes ever
//! covering the same bytes; a new block is written whole, with its final content.

use super::Qcow2;
use crate::plan::HostWrite;
use crate::ReadAt;
use rehost_core::error::Result;
use std::collections::BTreeMap;

/// Largest refcount table read to plan a commit.
const MAX_REFCOUNT_TABLE_BYTES: u64 = 32 << 20;
/// Bits 9-63 of a refcount table entry: the refcount block's offset.
const REFTABLE_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;

/// One refcount block: where it is, whether the commit allocates it, its bytes as on disk
/// (zeros for a new one) and as planned.
struct Block {
    at: u64,
    new: bool,
    disk: Vec<u8>,
    content: Vec<u8>,
}

/// The refcounts of one plan.
pub(super) struct Refcounts<'a> {
    q: &'a Qcow2,
    cs: u64,
    /// Bytes per refcount (1 to 8).
    width: usize,
    /// Refcounts per block.
    per_block: u64,
    /// The largest refcount the width holds.
    max: u64,
    /// The refcount table as on disk.
    table: Vec<u64>,
    /// The blocks read or allocated, by refcount table index.
    blocks: BTreeMap<u64, Block>,
    /// New refcount table entries (the blocks allocated), by index.
    entries: BTreeMap<u64, u64>,
    /// Clusters whose refcount drops by one after the tables stop naming them.
    freed: Vec<u64>,
}

/// A plan's refcount writes, by the phase they belong to.
pub(super) struct Writes {
    /// New refcount blocks, whole (with the new clusters, before anything names them).
    pub new_blocks: Vec<HostWrite>,
    /// Refcounts raised or set, and refcount table entries for the new blocks.
    pub raised: Vec<HostWrite>,
    /// Refcounts lowered (after the tables no longer name the clusters).
    pub lowered: Vec<HostWrite>,
    /// Refcounts that differ from the file's (not counting the new blocks').
    pub changed: u64,
}

impl<'a> Refcounts<'a> {
    /// Reads the refcount table of `q`, which must be a whole number of clusters inside the
    /// file.
    pub fn read(q: &'a Qcow2) -> Result<Self> {
        let h = &q.header;
        let cs = q.geometry.cluster_size();
        let table_bytes = u64::from(h.refcount_table_clusters) * cs;
        if table_bytes > MAX_REFCOUNT_TABLE_BYTES
            || h.refcount_table_offset % cs != 0
            || h.refcount_table_offset
                .checked_add(table_bytes)
                .is_none_or(|e| e > q.file.size())
        {
            return Err(q.ctx.corrupt(
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
        let table = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let width = 1usize << (h.refcount_order.clamp(3, 6) - 3);
        Ok(Refcounts {
            q,
            cs,
            width,
            per_block: cs / width as u64,
            max: if width == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * width)) - 1
            },
            table,
            blocks: BTreeMap::new(),
            entries: BTreeMap::new(),
            freed: Vec::new(),
        })
    }

    /// Entries in the refcount table.
    pub fn table_len(&self) -> u64 {
        self.table.len() as u64
    }

    /// The offset of the refcount block the table's entry `ti` names (0: none).
    pub fn block_offset(&self, ti: u64) -> u64 {
        self.table
            .get(ti as usize)
            .map_or(0, |e| e & REFTABLE_OFFSET_MASK)
    }

    /// Makes sure the block of table index `ti` is loaded; false when the table has none.
    fn load(&mut self, ti: u64) -> Result<bool> {
        if self.blocks.contains_key(&ti) {
            return Ok(true);
        }
        let at = self.block_offset(ti);
        if at == 0 {
            return Ok(false);
        }
        let q = self.q;
        if at % self.cs != 0 || at.saturating_add(self.cs) > q.file.size() {
            return Err(q.ctx.corrupt(
                q.header.refcount_table_offset + ti * 8,
                format!("refcount block at {at:#x} is not a whole cluster inside the file"),
            ));
        }
        let mut disk = vec![0u8; self.cs as usize];
        q.file.read_at(at, &mut disk)?;
        self.blocks.insert(
            ti,
            Block {
                at,
                new: false,
                content: disk.clone(),
                disk,
            },
        );
        Ok(true)
    }

    /// The refcount of the host cluster at `cluster` (0 where no block covers it).
    pub fn get(&mut self, cluster: u64) -> Result<u64> {
        let index = cluster / self.cs;
        let (ti, bi) = (index / self.per_block, (index % self.per_block) as usize);
        if !self.load(ti)? {
            return Ok(0);
        }
        let w = self.width;
        Ok(self.blocks.get(&ti).map_or(0, |b| {
            b.content[bi * w..(bi + 1) * w]
                .iter()
                .fold(0u64, |v, b| v << 8 | u64::from(*b))
        }))
    }

    /// Sets the refcount of the host cluster at `cluster` to `value`, allocating at `next`
    /// (the end of the file as planned, moved on) the refcount blocks it needs, each counted.
    pub fn set(&mut self, cluster: u64, value: u64, next: &mut u64) -> Result<()> {
        let q = self.q;
        let mut pending = vec![(cluster, value)];
        while let Some((c, v)) = pending.pop() {
            if v > self.max {
                return Err(q.ctx.refused(
                    "",
                    format!(
                        "this qcow2 image is not written in place: the cluster at {c:#x} \
                         would need a refcount of {v}, more than its {}-bit refcounts hold",
                        self.width * 8
                    ),
                ));
            }
            let index = c / self.cs;
            let (ti, bi) = (index / self.per_block, (index % self.per_block) as usize);
            if ti >= self.table_len() {
                if v == 0 {
                    continue;
                }
                return Err(q.ctx.refused(
                    "",
                    format!(
                        "this qcow2 image is not written in place: its refcount table ({} \
                         entries) has no room for the cluster at {c:#x}, and rehost does not \
                         move the table; write a new image with --output instead",
                        self.table.len()
                    ),
                ));
            }
            if !self.load(ti)? {
                if v == 0 {
                    continue;
                }
                let at = *next;
                *next += self.cs;
                self.entries.insert(ti, at);
                self.blocks.insert(
                    ti,
                    Block {
                        at,
                        new: true,
                        disk: vec![0; self.cs as usize],
                        content: vec![0; self.cs as usize],
                    },
                );
                pending.push((c, v));
                pending.push((at, 1));
                continue;
            }
            let w = self.width;
            if let Some(b) = self.blocks.get_mut(&ti) {
                let bytes = v.to_be_bytes();
                b.content[bi * w..(bi + 1) * w].copy_from_slice(&bytes[8 - w..]);
            }
        }
        Ok(())
    }

    /// Counts a new host cluster (at or past the end of the file), which must have no
    /// refcount yet.
    pub fn count_new(&mut self, cluster: u64, next: &mut u64) -> Result<()> {
        let count = self.get(cluster)?;
        if count != 0 {
            return Err(self.q.ctx.corrupt(
                self.slot_offset(cluster),
                format!(
                    "the cluster at {cluster:#x}, at or past the end of the file, already has \
                     a refcount ({count})"
                ),
            ));
        }
        self.set(cluster, 1, next)
    }

    /// Checks that the cluster at `cluster`, written where it is, is counted exactly once.
    pub fn check_one(&mut self, cluster: u64) -> Result<()> {
        let count = self.get(cluster)?;
        if count != 1 {
            return Err(self.q.ctx.corrupt(
                self.slot_offset(cluster),
                format!(
                    "the cluster at {cluster:#x} is in use, but its refcount is {count}, not \
                     one: the refcounts are damaged (`qemu-img check -r all` repairs them); \
                     nothing was written"
                ),
            ));
        }
        Ok(())
    }

    /// Lowers the refcount of the cluster at `cluster` by one once the tables no longer
    /// name it (a copy on write left it); it must have one.
    pub fn free(&mut self, cluster: u64) -> Result<()> {
        if self.get(cluster)? == 0 {
            return Err(self.q.ctx.corrupt(
                self.slot_offset(cluster),
                format!(
                    "the cluster at {cluster:#x} is in use, but its refcount is 0: the \
                     refcounts are damaged (`qemu-img check -r all` repairs them); nothing \
                     was written"
                ),
            ));
        }
        self.freed.push(cluster);
        Ok(())
    }

    /// Where the refcount of `cluster` is in the file (its block's offset if not loaded).
    fn slot_offset(&self, cluster: u64) -> u64 {
        let index = cluster / self.cs;
        let ti = index / self.per_block;
        let bi = index % self.per_block;
        let at = self
            .blocks
            .get(&ti)
            .map_or_else(|| self.block_offset(ti), |b| b.at);
        at + bi * self.width as u64
    }

    /// Every refcount of the file set from `counts` (by cluster index; clusters past it
    /// counted zero): every block the table names rewritten where it differs, and blocks
    /// allocated where a counted cluster has none.
    pub fn adopt(&mut self, counts: &[u32], next: &mut u64) -> Result<()> {
        let w = self.width;
        for ti in 0..self.table_len() {
            if !self.load(ti)? {
                continue;
            }
            let first = ti * self.per_block;
            if let Some(b) = self.blocks.get_mut(&ti) {
                for bi in 0..self.per_block {
                    let v = counts
                        .get((first + bi) as usize)
                        .map_or(0, |&v| u64::from(v));
                    let bytes = v.to_be_bytes();
                    let i = bi as usize * w;
                    b.content[i..i + w].copy_from_slice(&bytes[8 - w..]);
                }
            }
        }
        // The clusters no block of the table covers: their blocks allocated (by the first
        // of them) and filled.
        for (index, &v) in counts.iter().enumerate() {
            let ti = index as u64 / self.per_block;
            let on_disk = self.blocks.get(&ti).is_some_and(|b| !b.new);
            if v != 0 && !on_disk {
                self.set(index as u64 * self.cs, u64::from(v), next)?;
            }
        }
        Ok(())
    }

    /// The writes of every change, by phase (see [`Writes`]).
    pub fn writes(mut self) -> Result<Writes> {
        let mut out = Writes {
            new_blocks: Vec::new(),
            raised: Vec::new(),
            lowered: Vec::new(),
            changed: 0,
        };
        // The refcounts as raised, before the lowerings.
        let raised: BTreeMap<u64, Vec<u8>> = self
            .blocks
            .iter()
            .filter(|(_, b)| !b.new)
            .map(|(ti, b)| (*ti, b.content.clone()))
            .collect();
        let mut unused = 0;
        for cluster in std::mem::take(&mut self.freed) {
            let v = self.get(cluster)?;
            self.set(cluster, v.saturating_sub(1), &mut unused)?;
        }
        let w = self.width;
        for (ti, b) in &self.blocks {
            let what = format!("refcount block {ti}");
            if b.new {
                out.new_blocks
                    .push(HostWrite::new(b.at, b.content.clone(), what));
                continue;
            }
            let Some(mid) = raised.get(ti) else {
                continue;
            };
            out.changed += runs(&b.disk, mid, w, b.at, &what, &mut out.raised);
            runs(mid, &b.content, w, b.at, &what, &mut out.lowered);
        }
        for (ti, at) in &self.entries {
            out.raised.push(HostWrite::new(
                self.q.header.refcount_table_offset + ti * 8,
                at.to_be_bytes().to_vec(),
                format!("refcount table entry {ti}"),
            ));
        }
        Ok(out)
    }
}

/// Pushes a write of each run of adjacent `width`-byte slots that differ between `from`
/// and `to` (a block at `at`); returns the slots that differ.
fn runs(
    from: &[u8],
    to: &[u8],
    width: usize,
    at: u64,
    what: &str,
    out: &mut Vec<HostWrite>,
) -> u64 {
    let slots = from.len() / width;
    let differs = |i: usize| from[i * width..(i + 1) * width] != to[i * width..(i + 1) * width];
    let (mut i, mut changed) = (0, 0);
    while i < slots {
        if !differs(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < slots && differs(i) {
            i += 1;
        }
        changed += (i - start) as u64;
        out.push(HostWrite::new(
            at + (start * width) as u64,
            to[start * width..i * width].to_vec(),
            what,
        ));
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_cover_exactly_the_slots_that_change() {
        let from = [0u8, 1, 0, 1, 0, 1, 0, 1, 0, 0];
        let mut to = from;
        // Slots of two bytes: 1 and 2 change (adjacent: one run), 4 changes alone.
        to[3] = 2;
        to[4] = 9;
        to[9] = 1;
        let mut out = Vec::new();
        assert_eq!(runs(&from, &to, 2, 0x1000, "b", &mut out), 3);
        let got: Vec<(u64, Vec<u8>)> = out.into_iter().map(|w| (w.offset, w.data)).collect();
        assert_eq!(got, vec![(0x1002, vec![0, 2, 9, 1]), (0x1008, vec![0, 1])]);
        let mut none = Vec::new();
        assert_eq!(runs(&from, &from, 2, 0, "b", &mut none), 0);
        assert!(none.is_empty());
    }
}
