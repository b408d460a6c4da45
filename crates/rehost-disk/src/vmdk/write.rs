//! Planning writes into a monolithicSparse VMDK in place (Virtual Disk Format 1.1, "Hosted
//! Sparse Extents").
//!
//! The disk is one hosted sparse extent, in the file opened, with its descriptor embedded.
//! The staged extents are widened to whole grains (the rest of each grain read from the
//! disk as staged, so a grain that read from the parent or as zeros is copied up whole).
//! Then, grain by grain:
//! - a grain the grain table (GT) places in the file is written where it is;
//! - any other grain (unallocated, or a zero grain) gets new sectors at the end of the file,
//!   and its entry in the GT, and in the redundant GT when the extent keeps one, points
//!   there;
//! - a GT the grain directory (GD) does not have yet (nor the redundant GD) is allocated at
//!   the end too, and both directories point at their copy.
//!
//! The descriptor's content id (CID) changes, as VMware and QEMU change it on the first
//! write, so that a snapshot made on this disk sees that its parent changed.
//!
//! Order, each phase flushed before the next: the new grains and tables and the grains
//! written in place; then the GT entries, the GD entries and the descriptor. The journal
//! undoes it all.
//!
//! A disk that is one flat extent (monolithicFlat, vmfs) never reaches this planner: it is
//! written as the raw disk its extent file is (`detect::write_path`).
//!
//! Refused, with the reason: streamOptimized extents (compressed grains) and growing the
//! disk. A disk whose descriptor is a file of its own (twoGbMaxExtentSparse, flat extents)
//! is planned file by file in `split`.

use super::header::FLAG_REDUNDANT_GT;
use super::header::FLAG_ZEROED_GTE;
use super::sparse::{read_gd, SparseExtent};
use super::{Store, Vmdk, SECTOR};
use crate::ids::Ids;
use crate::plan::{align, by_block, HostWrite, Phase, Plan};
use crate::{Format, ReadAt};
use rehost_core::error::Result;
use std::collections::BTreeMap;

/// One grain table as planned: where (sector), whether the commit allocates it, entries.
struct Table {
    at: u64,
    new: bool,
    entries: Vec<u32>,
}

impl Vmdk {
    /// The sparse extent written in place, or why the disk is not written in place.
    fn own_sparse(&self) -> std::result::Result<&SparseExtent, String> {
        let [p] = self.extents.as_slice() else {
            return Err(format!(
                "it has {} extents; rehost writes a monolithicSparse disk (one sparse extent, \
                 in the file itself) in place",
                self.extents.len()
            ));
        };
        let Store::Sparse(s) = &p.store else {
            return Err(format!(
                "its extent is {}; rehost writes a monolithicSparse disk in place",
                if matches!(p.store, Store::Zero) {
                    "ZERO"
                } else {
                    "flat, but not a whole file of the disk's size beside the descriptor (or \
                     the disk has a parent)"
                }
            ));
        };
        if s.file.name() != self.info.path {
            return Err("its sparse extent is another file than the one given".into());
        }
        if self.bare_extent {
            // Written alone, it would leave its disk's descriptor (its CID) and the
            // journals of the disk's other files out of step.
            return Err(
                "it is a sparse extent without a descriptor, an extent file of a disk of several \
                 files (twoGbMaxExtentSparse): write the disk through the descriptor that \
                 names it"
                    .into(),
            );
        }
        if s.gd_offset != s.header.gd_offset {
            return Err(
                "its grain directory is unusable (the redundant one was read); repair it first"
                    .into(),
            );
        }
        if s.header.compressed() {
            return Err(
                "it is streamOptimized (its grains are compressed), which is written whole, \
                 never in place"
                    .into(),
            );
        }
        Ok(s)
    }

    /// Why this disk cannot be written in place, if it cannot.
    pub(crate) fn write_refusal(&self) -> Option<String> {
        match self.own_sparse() {
            Ok(_) => None,
            Err(_) if self.is_split() => self.split_refusal(),
            Err(why) => Some(why),
        }
    }

    /// The plans, one per file written (the file opened first), that store `extents`: a
    /// monolithicSparse disk's one file, or a descriptor and its extent files (`split`).
    pub(crate) fn plan_files(
        &self,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        ids: &mut Ids,
        new_size: u64,
    ) -> Result<Vec<(std::path::PathBuf, Plan)>> {
        if self.own_sparse().is_err() && self.is_split() {
            if let Some(why) = self.growth_refusal(new_size) {
                return Err(self.ctx.refused("", format!("the disk cannot grow: {why}")));
            }
            return self.plan_split(view, extents, ids);
        }
        let plan = self.plan(view, extents, ids, new_size)?;
        Ok(vec![(std::path::PathBuf::from(&self.info.path), plan)])
    }

    /// Why the disk cannot grow to `new_size` bytes: VMDKs are not grown.
    pub(crate) fn growth_refusal(&self, new_size: u64) -> Option<String> {
        (new_size > self.size).then(|| {
            "rehost does not grow VMDK images: `qemu-img resize` (or VMware) does; then run \
             rehost again"
                .into()
        })
    }

    /// The host writes that store `extents` (see the module documentation).
    pub(crate) fn plan(
        &self,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        ids: &mut Ids,
        new_size: u64,
    ) -> Result<Plan> {
        let s = self.own_sparse().map_err(|why| {
            self.ctx
                .refused("", format!("this VMDK is not written in place: {why}"))
        })?;
        if let Some(why) = self.growth_refusal(new_size) {
            return Err(self.ctx.refused("", format!("the disk cannot grow: {why}")));
        }
        if extents.is_empty() {
            return Ok(Plan::empty(Format::Vmdk, s.file.size()));
        }
        let grain = s.header.grain_size * SECTOR;
        let aligned = align(view, extents, grain)?;
        plan_sparse(s, &aligned, self.new_descriptor(s, ids)?)
    }

    /// The embedded descriptor with a new CID: its sector offset and its bytes.
    fn new_descriptor(&self, s: &SparseExtent, ids: &mut Ids) -> Result<Option<(u64, Vec<u8>)>> {
        let h = &s.header;
        if h.descriptor_offset == 0 || h.descriptor_size == 0 || self.descriptor.cid.is_none() {
            return Ok(None);
        }
        let at = h.descriptor_offset * SECTOR;
        let mut text = vec![0u8; (h.descriptor_size * SECTOR) as usize];
        s.file.read_at(at, &mut text)?;
        let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
        let new = self.renew_cid(&String::from_utf8_lossy(&text[..end]), ids);
        if new.len() > text.len() {
            return Err(self
                .ctx
                .refused("", "the descriptor with a new CID does not fit its sectors"));
        }
        let mut bytes = new.into_bytes();
        bytes.resize(text.len(), 0);
        Ok((bytes != text).then_some((at, bytes)))
    }
}

impl Vmdk {
    /// The descriptor text `old` with a new CID (one that is neither 0, nor `ffffffff`,
    /// nor the old one) on its `CID=` line.
    pub(super) fn renew_cid(&self, old: &str, ids: &mut Ids) -> String {
        let cid = loop {
            let b = ids.guid().into_bytes();
            let c = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if c != 0 && c != u32::MAX && Some(c) != self.descriptor.cid {
                break c;
            }
        };
        let mut new = String::with_capacity(old.len());
        for line in old.split_inclusive('\n') {
            if line.trim_start().starts_with("CID=") {
                let eol = &line[line.trim_end_matches(['\r', '\n']).len()..];
                new.push_str(&format!("CID={cid:08x}{eol}"));
            } else {
                new.push_str(line);
            }
        }
        new
    }
}

/// The plan of `aligned` (whole grains, sorted, offsets counted from the extent's start)
/// into the sparse extent `s`, with `descriptor` (an offset in its file and the bytes: the
/// embedded descriptor with a new CID) written with the tables.
pub(super) fn plan_sparse(
    s: &SparseExtent,
    aligned: &[(u64, Vec<u8>)],
    descriptor: Option<(u64, Vec<u8>)>,
) -> Result<Plan> {
    let file_len = s.file.size();
    let mut plan = Plan::empty(Format::Vmdk, file_len);
    if aligned.is_empty() {
        return Ok(plan);
    }
    let h = &s.header;
    let redundant = h.flags & FLAG_REDUNDANT_GT != 0 && h.rgd_offset != 0;
    let rgd = if redundant {
        Some(read_gd(&s.file, &s.ctx, h, h.rgd_offset)?)
    } else {
        None
    };
    let grain = h.grain_size * SECTOR;
    let mut p = Planner {
        s,
        next: file_len.div_ceil(SECTOR),
        gts: BTreeMap::new(),
        rgts: BTreeMap::new(),
        gd: BTreeMap::new(),
        rgd: BTreeMap::new(),
        rgd_old: rgd,
        data: Vec::new(),
        in_place: 0,
        new_grains: 0,
    };
    by_block(aligned, grain, |g, within, bytes| p.grain(g, within, bytes))?;
    p.finish(&mut plan, descriptor)?;
    plan.seal(&s.ctx)
}

/// The state of one plan.
struct Planner<'a> {
    s: &'a SparseExtent,
    /// The next free sector: the end of the file, then past each grain or table allocated.
    next: u64,
    /// Grain tables changed or allocated, by GD index; and their redundant copies.
    gts: BTreeMap<u64, Table>,
    rgts: BTreeMap<u64, Table>,
    /// GD and redundant GD entries that change.
    gd: BTreeMap<u64, u32>,
    rgd: BTreeMap<u64, u32>,
    /// The redundant GD as found, when the extent keeps one.
    rgd_old: Option<Vec<u32>>,
    data: Vec<HostWrite>,
    in_place: u64,
    new_grains: u64,
}

impl Planner<'_> {
    /// `sectors` new sectors at the end of the file.
    fn allocate(&mut self, sectors: u64) -> Result<u32> {
        let at = self.next;
        self.next += sectors;
        u32::try_from(self.next).map(|_| at as u32).map_err(|_| {
            self.s.ctx.refused(
                "",
                "this VMDK is not written in place: its sparse extent would pass 2 TiB, \
                 beyond what a grain table entry can point at",
            )
        })
    }

    /// A grain table as found at `sector` (0: none yet, so a new one).
    fn table(&mut self, sector: u32) -> Result<Table> {
        let n = self.s.header.num_gtes_per_gt as u64;
        if sector == 0 {
            let at = self.allocate((n * 4).div_ceil(SECTOR))?;
            return Ok(Table {
                at: at as u64,
                new: true,
                entries: vec![0; n as usize],
            });
        }
        let at = sector as u64 * SECTOR;
        let mut raw = vec![0u8; (n * 4) as usize];
        self.s.file.read_at(at, &mut raw)?;
        Ok(Table {
            at: sector as u64,
            new: false,
            entries: raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }

    /// Plans grain `g`'s bytes from `within` on.
    fn grain(&mut self, g: u64, within: u64, bytes: &[u8]) -> Result<()> {
        let h = &self.s.header;
        let n = h.num_gtes_per_gt as u64;
        let (t, i) = (g / n, (g % n) as usize);
        if !self.gts.contains_key(&t) {
            let gde = self.s.gd.get(t as usize).copied().unwrap_or(0);
            let table = self.table(gde)?;
            if table.new {
                self.gd.insert(t, table.at as u32);
            }
            self.gts.insert(t, table);
            if let Some(rgd) = &self.rgd_old {
                let rgde = rgd.get(t as usize).copied().unwrap_or(0);
                if (rgde == 0) != (gde == 0) {
                    return Err(self.s.ctx.corrupt(
                        h.rgd_offset * SECTOR + t * 4,
                        format!("grain table {t} is in one grain directory and not in the other"),
                    ));
                }
                let rtable = self.table(rgde)?;
                if rtable.new {
                    self.rgd.insert(t, rtable.at as u32);
                }
                self.rgts.insert(t, rtable);
            }
        }
        let entry = self.gts.get(&t).map_or(0, |x| x.entries[i]);
        let zero = entry == 1 && h.flags & FLAG_ZEROED_GTE != 0;
        let grain_sectors = h.grain_size;
        let sector = if entry != 0 && !zero {
            let end = (entry as u64 * SECTOR + within).saturating_add(bytes.len() as u64);
            if end > self.s.file.size().div_ceil(SECTOR) * SECTOR {
                return Err(self.s.ctx.corrupt(
                    self.gts.get(&t).map_or(0, |x| x.at) * SECTOR + i as u64 * 4,
                    format!("grain {g} is at sector {entry}, past the end of the file"),
                ));
            }
            self.in_place += 1;
            entry
        } else {
            self.new_grains += 1;
            self.allocate(grain_sectors)?
        };
        for tables in [&mut self.gts, &mut self.rgts] {
            if let Some(x) = tables.get_mut(&t) {
                x.entries[i] = sector;
            }
        }
        self.data.push(HostWrite::new(
            sector as u64 * SECTOR + within,
            bytes.to_vec(),
            format!("grain {g}"),
        ));
        Ok(())
    }

    /// Puts the writes into the plan's phases, with notes.
    fn finish(self, plan: &mut Plan, descriptor: Option<(u64, Vec<u8>)>) -> Result<()> {
        let h = &self.s.header;
        let le = |v: &[u32]| v.iter().flat_map(|e| e.to_le_bytes()).collect::<Vec<u8>>();
        let new_len = (self.next * SECTOR).max(plan.file_len);
        let mut first = Phase {
            name: "grains",
            set_len: (new_len > plan.file_len).then_some(new_len),
            writes: self.data,
        };
        let mut tables = Phase {
            name: "tables",
            ..Phase::default()
        };
        let mut new_tables = 0;
        for (which, map) in [
            ("grain table", self.gts),
            ("redundant grain table", self.rgts),
        ] {
            for (t, x) in map {
                let w = HostWrite::new(x.at * SECTOR, le(&x.entries), format!("{which} {t}"));
                if x.new {
                    new_tables += 1;
                    first.writes.push(w);
                } else {
                    tables.writes.push(w);
                }
            }
        }
        for (which, at, map) in [
            ("grain directory", h.gd_offset, self.gd),
            ("redundant grain directory", h.rgd_offset, self.rgd),
        ] {
            for (t, sector) in map {
                tables.writes.push(HostWrite::new(
                    at * SECTOR + t * 4,
                    sector.to_le_bytes().to_vec(),
                    format!("{which} entry {t}"),
                ));
            }
        }
        if let Some((at, bytes)) = descriptor {
            tables
                .writes
                .push(HostWrite::new(at, bytes, "descriptor (a new CID)"));
        }
        plan.new_len = new_len;
        plan.notes.push(format!(
            "{} grains written in place; {} new grains and {new_tables} new grain tables at \
             the end of the file",
            self.in_place, self.new_grains
        ));
        plan.phases = vec![first, tables];
        Ok(())
    }
}
