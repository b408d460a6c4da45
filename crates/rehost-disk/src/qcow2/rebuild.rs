//! The refcounts of an image QEMU left dirty, rebuilt from its metadata (qcow2.txt, "Host
//! cluster management"; what `qemu-img check -r all` and QEMU's open of a dirty image do).
//!
//! With lazy refcounts QEMU updates the refcounts only when it closes the image; one that
//! was not closed has the dirty bit set and refcounts that may be stale, while its L1 and
//! L2 tables are current. Every host cluster's refcount is the number of references to it,
//! counted as QEMU counts them:
//! - the header cluster (the header, its extensions and the backing file's name) once;
//! - the clusters of the active L1 table and of each internal snapshot's L1 table, once
//!   per table;
//! - an L2 table once per L1 entry (of any of those tables) that names it;
//! - a data cluster (standard, or zero with a host offset) once per L2 entry that names
//!   it, each L2 table's entries counted once per L1 entry that names the table;
//! - a compressed cluster: each host cluster its bytes touch (from its offset, its sector
//!   count of 512-byte sectors less the offset's place in its first sector), once per
//!   entry, so host clusters that several compressed clusters share count each of them;
//! - the snapshot table's clusters (each entry with its extra data, id and name) once;
//! - the refcount table's clusters once, and each refcount block once.
//!
//! A header extension that may refer to clusters outside the header (persistent bitmaps,
//! or a type rehost does not know) is refused by name, as is an external data file (not
//! written in place at all). Damaged metadata is refused, not repaired: a table or cluster
//! unaligned or past the end of the file, a compressed cluster with the COPIED flag, a
//! cluster used as two different things (metadata, L2 table, data, compressed data), and
//! a cluster the active state uses twice.
//!
//! Then the COPIED flags of the active state follow QEMU's rule (`qemu-img check`'s): an
//! L1 entry's is set exactly when its L2 table's refcount is one, a standard or allocated
//! zero L2 entry's exactly when its cluster's refcount is one. Snapshots' tables are left
//! as they are (QEMU does not check them).

use super::header::{EXT_BITMAPS, EXT_IN_HEADER};
use super::read::{COMPRESSED, COPIED, OFFSET_MASK};
use super::refcount::Refcounts;
use super::Qcow2;
use crate::ReadAt;
use rehost_core::error::Result;
use std::collections::BTreeMap;

/// Most host clusters whose refcounts are rebuilt (5 bytes each in memory).
const MAX_CLUSTERS: u64 = 1 << 25;
/// Largest L1 table read (QEMU's limit): 32 MiB.
const MAX_L1_BYTES: u64 = super::header::MAX_L1_BYTES;

/// What a cluster is used as.
const META: u8 = 1;
const L2: u8 = 2;
const DATA: u8 = 4;
const PACKED: u8 = 8;
const KINDS: u8 = META | L2 | DATA | PACKED;
/// Used by the active state (L2 tables and data).
const ACTIVE: u8 = 16;

/// The rebuilt refcounts and the active state's COPIED flags that change.
pub(super) struct Rebuilt {
    /// Each host cluster's refcount, by cluster index, to the end of the file.
    pub counts: Vec<u32>,
    /// Active L1 entries whose COPIED flag changes: the new entries, by index.
    pub l1: BTreeMap<u64, u64>,
    /// Active L2 tables whose COPIED flags change: the new content, by the table's offset.
    pub l2: BTreeMap<u64, Vec<u64>>,
    /// COPIED flags changed.
    pub flags: u64,
}

/// The walk's state.
struct Walk<'a> {
    q: &'a Qcow2,
    cs: u64,
    counts: Vec<u32>,
    uses: Vec<u8>,
}

/// The refusal of a dirty image whose metadata is damaged.
fn damaged(q: &Qcow2, at: u64, what: String) -> rehost_core::Error {
    q.ctx.corrupt(
        at,
        format!(
            "the image is marked dirty and its metadata is damaged: {what}; rehost rebuilds \
             the refcounts of a dirty image but does not repair damage (`qemu-img check` \
             tells more); nothing was written"
        ),
    )
}

impl Walk<'_> {
    /// Counts `times` references to the host clusters `len` bytes from `at` touch, used as
    /// `role` (a kind, with [`ACTIVE`] when the active state uses them); `what` names it
    /// for errors, `from` is where the reference is.
    fn add(
        &mut self,
        at: u64,
        len: u64,
        role: u8,
        times: u32,
        what: &str,
        from: u64,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let q = self.q;
        let (kind, active) = (role & KINDS, role & ACTIVE != 0);
        let first = at / self.cs;
        let last = at.saturating_add(len - 1) / self.cs;
        if last >= self.counts.len() as u64 {
            return Err(damaged(
                q,
                from,
                format!("{what} at {at:#x} ({len} bytes) runs past the end of the file"),
            ));
        }
        for i in first..=last {
            let u = &mut self.uses[i as usize];
            let had = *u & KINDS;
            let cluster = i * self.cs;
            if had != 0 && (had != kind || kind == META) {
                return Err(damaged(
                    q,
                    from,
                    format!("the cluster at {cluster:#x} is used as {what} and as something else"),
                ));
            }
            if active && kind & (L2 | DATA) != 0 && *u & ACTIVE != 0 {
                return Err(damaged(
                    q,
                    from,
                    format!(
                        "the cluster at {cluster:#x} ({what}) is used twice by the active state"
                    ),
                ));
            }
            *u |= kind | if active { ACTIVE } else { 0 };
            let c = &mut self.counts[i as usize];
            *c = c.checked_add(times).ok_or_else(|| {
                damaged(
                    q,
                    from,
                    format!("the cluster at {cluster:#x} has more than 2^32 references"),
                )
            })?;
        }
        Ok(())
    }

    /// Reads the `entries` entries of an L1 table at `at` (named at `from`), counting it.
    fn l1_table(&mut self, at: u64, entries: u32, what: &str, from: u64) -> Result<Vec<u64>> {
        let q = self.q;
        let bytes = u64::from(entries) * 8;
        if bytes > MAX_L1_BYTES {
            return Err(damaged(q, from, format!("{what} has {entries} entries")));
        }
        if entries > 0 && at % self.cs != 0 {
            return Err(damaged(
                q,
                from,
                format!("{what} at {at:#x} is not cluster-aligned"),
            ));
        }
        self.add(at, bytes, META | ACTIVE, 1, what, from)?;
        let mut raw = vec![0u8; bytes as usize];
        q.file.read_at(at, &mut raw)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }
}

impl Qcow2 {
    /// Why the refcounts of this dirty image are not rebuilt, if they are not: a header
    /// extension that may own clusters rehost does not count.
    pub(super) fn rebuild_refusal(&self) -> Option<String> {
        let h = &self.header;
        if h.extensions.contains(&EXT_BITMAPS) {
            return Some(
                "it is marked dirty and holds persistent bitmaps (the bitmaps header \
                 extension), whose clusters rehost does not count when it rebuilds the \
                 refcounts: let QEMU repair it (`qemu-img check -r all`) first"
                    .into(),
            );
        }
        let unknown = h.extensions.iter().find(|t| !EXT_IN_HEADER.contains(t))?;
        Some(format!(
            "it is marked dirty and has a header extension of type {unknown:#x} that rehost \
             does not know, which may own clusters it would not count when it rebuilds the \
             refcounts: let QEMU repair it (`qemu-img check -r all`) first"
        ))
    }

    /// The refcounts rebuilt from every table (see the module documentation); `refs` gives
    /// the refcount table's blocks.
    pub(super) fn rebuild(&self, refs: &Refcounts) -> Result<Rebuilt> {
        if let Some(why) = self.rebuild_refusal() {
            return Err(self.ctx.refused(
                "",
                format!("this qcow2 image is not written in place: {why}"),
            ));
        }
        let h = &self.header;
        let cs = self.geometry.cluster_size();
        let nb = self.file.size().div_ceil(cs);
        if nb > MAX_CLUSTERS {
            return Err(self.ctx.refused(
                "",
                format!(
                    "this qcow2 image is not written in place: it is marked dirty and its \
                     {nb} clusters are more than the {MAX_CLUSTERS} whose refcounts rehost \
                     rebuilds: let QEMU repair it (`qemu-img check -r all`) first"
                ),
            ));
        }
        let mut w = Walk {
            q: self,
            cs,
            counts: vec![0; nb as usize],
            uses: vec![0; nb as usize],
        };
        w.add(0, cs, META | ACTIVE, 1, "the header", 0)?;
        // The L2 tables each L1 table names: how many times, and whether the active one does.
        let mut tables: BTreeMap<u64, (u32, bool)> = BTreeMap::new();
        let active = w.l1_table(h.l1_table_offset, h.l1_size, "the active L1 table", 40)?;
        let mut named = |w: &mut Walk, l1: &[u64], at: u64, active: bool| -> Result<()> {
            for (i, e) in l1.iter().enumerate() {
                let l2 = e & OFFSET_MASK;
                let from = at + i as u64 * 8;
                if l2 == 0 {
                    continue;
                }
                if l2 % cs != 0 {
                    return Err(damaged(
                        self,
                        from,
                        format!("the L2 table at {l2:#x} is not cluster-aligned"),
                    ));
                }
                w.add(
                    l2,
                    cs,
                    L2 | if active { ACTIVE } else { 0 },
                    1,
                    "an L2 table",
                    from,
                )?;
                let t = tables.entry(l2).or_insert((0, false));
                t.0 = t.0.saturating_add(1);
                t.1 |= active;
            }
            Ok(())
        };
        named(&mut w, &active, h.l1_table_offset, true)?;
        for s in &self.snapshots {
            let what = format!("the L1 table of snapshot {} ({})", s.name, s.id);
            let l1 = w.l1_table(s.l1_table_offset, s.l1_size, &what, h.snapshots_offset)?;
            named(&mut w, &l1, s.l1_table_offset, false)?;
        }
        if h.nb_snapshots > 0 {
            w.add(
                h.snapshots_offset,
                self.snapshots_bytes,
                META | ACTIVE,
                1,
                "the snapshot table",
                64,
            )?;
        }
        let rt_bytes = u64::from(h.refcount_table_clusters) * cs;
        w.add(
            h.refcount_table_offset,
            rt_bytes,
            META | ACTIVE,
            1,
            "the refcount table",
            48,
        )?;
        for ti in 0..refs.table_len() {
            let at = refs.block_offset(ti);
            let from = h.refcount_table_offset + ti * 8;
            if at != 0 && at % cs != 0 {
                return Err(damaged(
                    self,
                    from,
                    format!("the refcount block at {at:#x} is not cluster-aligned"),
                ));
            }
            if at != 0 {
                w.add(at, cs, META | ACTIVE, 1, "a refcount block", from)?;
            }
        }
        let mut l2_fixes = BTreeMap::new();
        let mut flags = 0;
        for (&at, &(times, active)) in &tables {
            let table = self.l2_table(at, at)?;
            self.count_l2(&mut w, &table, at, times, active)?;
        }
        // The active state's COPIED flags, by the counts.
        let once = |w: &Walk, at: u64| w.counts.get((at / cs) as usize) == Some(&1);
        let mut l1_fixes = BTreeMap::new();
        for (i, &e) in active.iter().enumerate() {
            let l2 = e & OFFSET_MASK;
            if l2 == 0 {
                continue;
            }
            let want = if once(&w, l2) {
                e | COPIED
            } else {
                e & !COPIED
            };
            if want != e {
                l1_fixes.insert(i as u64, want);
                flags += 1;
            }
            if l2_fixes.contains_key(&l2) {
                continue;
            }
            let mut table = self
                .l2_table(l2, h.l1_table_offset + i as u64 * 8)?
                .to_vec();
            let mut changed = false;
            for e in table.iter_mut().step_by(self.geometry.words as usize) {
                let host = *e & OFFSET_MASK;
                if *e & COMPRESSED != 0 || host == 0 {
                    continue;
                }
                let want = if once(&w, host) {
                    *e | COPIED
                } else {
                    *e & !COPIED
                };
                if want != *e {
                    *e = want;
                    changed = true;
                    flags += 1;
                }
            }
            if changed {
                l2_fixes.insert(l2, table);
            }
        }
        Ok(Rebuilt {
            counts: w.counts,
            l1: l1_fixes,
            l2: l2_fixes,
            flags,
        })
    }

    /// Counts the references of the L2 table at `at`, named `times` times (by the active
    /// L1 table among them when `active`).
    fn count_l2(
        &self,
        w: &mut Walk,
        table: &[u64],
        at: u64,
        times: u32,
        active: bool,
    ) -> Result<()> {
        let g = &self.geometry;
        let cs = g.cluster_size();
        for (i, &e) in table.iter().enumerate().step_by(g.words as usize) {
            let from = at + i as u64 * 8;
            if e & COMPRESSED != 0 {
                if e & COPIED != 0 {
                    return Err(damaged(
                        self,
                        from,
                        "a compressed cluster has the COPIED flag".into(),
                    ));
                }
                let x = 62 - (g.cluster_bits - 8);
                let host = e & ((1u64 << x) - 1);
                let sectors = ((e & !COMPRESSED & !COPIED) >> x) + 1;
                let len = sectors * 512 - (host & 511);
                w.add(
                    host,
                    len,
                    PACKED | if active { ACTIVE } else { 0 },
                    times,
                    "a compressed cluster",
                    from,
                )?;
                continue;
            }
            let host = e & OFFSET_MASK;
            // A zero cluster with no host offset, or an unallocated one, holds nothing.
            if host == 0 {
                continue;
            }
            if host % cs != 0 {
                return Err(damaged(
                    self,
                    from,
                    format!("the data cluster at {host:#x} is not cluster-aligned"),
                ));
            }
            w.add(
                host,
                cs,
                DATA | if active { ACTIVE } else { 0 },
                times,
                "a data cluster",
                from,
            )?;
        }
        Ok(())
    }
}

impl Qcow2 {
    /// Checks, after a commit that rebuilt the refcounts, that the image is clean as
    /// `qemu-img check` sees it: the dirty bit clear, every host cluster's refcount the
    /// count of references the tables make (walked again from the file, independently of
    /// the plan that wrote them), and the active state's COPIED flags in step with them.
    pub(crate) fn check_rebuilt(&self) -> Result<()> {
        if self.header.has(super::header::DIRTY) {
            return Err(self.ctx.corrupt(
                72,
                "the image is still marked dirty after its refcounts were rebuilt",
            ));
        }
        let mut refs = Refcounts::read(self)?;
        let walked = self.rebuild(&refs)?;
        let cs = self.geometry.cluster_size();
        for (index, &want) in walked.counts.iter().enumerate() {
            let have = refs.get(index as u64 * cs)?;
            if have != u64::from(want) {
                return Err(self.ctx.corrupt(
                    index as u64 * cs,
                    format!(
                        "after the refcounts were rebuilt, the cluster at {:#x} has a refcount \
                         of {have} and {want} references",
                        index as u64 * cs
                    ),
                ));
            }
        }
        if walked.flags != 0 {
            return Err(self.ctx.corrupt(
                self.header.l1_table_offset,
                format!(
                    "after the refcounts were rebuilt, {} COPIED flags of the active state \
                     disagree with them",
                    walked.flags
                ),
            ));
        }
        Ok(())
    }
}
