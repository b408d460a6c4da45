//! Planning writes in place into a VMDK whose descriptor is a file of its own and whose
//! extents are other files (Virtual Disk Format 1.1: twoGbMaxExtentSparse and
//! twoGbMaxExtentFlat, monolithicFlat with a flat extent not written as a raw file, vmfs
//! with several flat extents).
//!
//! The staged extents are cut at the disk's extents. A piece in a hosted sparse extent is
//! widened to whole grains of that extent and planned as a monolithicSparse extent's write
//! (`write`): grains written where the extent's grain table places them, others allocated
//! at the end of that extent's file, its grain tables and both grain directories kept in
//! step. A piece in a flat extent is written at the extent's offset in its file. The
//! descriptor's CID is renewed once, in the descriptor file.
//!
//! The result is one plan per file, the descriptor's first: the commit journals each file
//! beside it and ties the journals together (`several`), so that a commit interrupted in any
//! file is rolled back in all of them and `rehost undo` restores every file.
//!
//! Refused, with the reason: compressed (streamOptimized) extents, a sparse extent whose
//! grain directory is unusable or whose place on the disk does not fall on its grains, a
//! write into a ZERO extent, two sparse extents in one file, and growing the disk.

use super::sparse::SparseExtent;
use super::write::plan_sparse;
use super::{Store, Vmdk, MAX_DESCRIPTOR, SECTOR};
use crate::ids::Ids;
use crate::plan::{align, HostWrite, Phase, Plan};
use crate::{Format, ReadAt};
use rehost_core::error::Result;
use std::path::PathBuf;

impl Vmdk {
    /// Whether the descriptor is a file of its own, the extents other files.
    pub(super) fn is_split(&self) -> bool {
        self.extents.iter().all(|p| match &p.store {
            Store::Sparse(s) => s.file.name() != self.info.path,
            Store::Flat { file, .. } => file.name() != self.info.path,
            Store::Zero => true,
        })
    }

    /// Why this disk of several files is not written in place, if it is not.
    pub(super) fn split_refusal(&self) -> Option<String> {
        let last = self.extents.len().saturating_sub(1);
        for (i, p) in self.extents.iter().enumerate() {
            let Store::Sparse(s) = &p.store else { continue };
            if s.header.compressed() {
                return Some(
                    "its extents are streamOptimized (their grains are compressed), which is \
                     written whole, never in place"
                        .into(),
                );
            }
            if s.gd_offset != s.header.gd_offset {
                return Some(format!(
                    "the grain directory of extent {i} ({}) is unusable (the redundant one was \
                     read); repair it first",
                    s.file.name()
                ));
            }
            let grain = grain_bytes(s);
            if p.start % grain != 0 || (i != last && p.len % grain != 0) {
                return Some(format!(
                    "extent {i} ({}) does not begin and end on its grains",
                    s.file.name()
                ));
            }
        }
        None
    }

    /// The plans, one per file (the descriptor's first), that store `extents` (sorted,
    /// disjoint virtual-disk extents) on a disk of several files (see the module
    /// documentation).
    pub(crate) fn plan_split(
        &self,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        ids: &mut Ids,
    ) -> Result<Vec<(PathBuf, Plan)>> {
        if let Some(why) = self.split_refusal() {
            return Err(self
                .ctx
                .refused("", format!("this VMDK is not written in place: {why}")));
        }
        let lead = PathBuf::from(&self.info.path);
        if extents.is_empty() {
            return Ok(vec![(lead, Plan::empty(Format::Vmdk, 0))]);
        }
        let mut files: Vec<(PathBuf, Plan)> = vec![(lead, self.descriptor_plan(ids)?)];
        for (i, p) in self.extents.iter().enumerate() {
            let end = p.start + p.len;
            let pieces: Vec<(u64, Vec<u8>)> = extents
                .iter()
                .filter_map(|(at, bytes)| {
                    let (a, b) = ((*at).max(p.start), (at + bytes.len() as u64).min(end));
                    (a < b).then(|| (a, bytes[(a - at) as usize..(b - at) as usize].to_vec()))
                })
                .collect();
            if pieces.is_empty() {
                continue;
            }
            match &p.store {
                Store::Zero => {
                    return Err(self.ctx.refused(
                        "",
                        format!(
                            "this VMDK is not written in place: the write reaches extent {i}, \
                             a ZERO extent, which no file stores"
                        ),
                    ))
                }
                Store::Flat { file, offset } => {
                    let path = PathBuf::from(file.name());
                    let at = files.iter().position(|(f, _)| *f == path);
                    let at = at.unwrap_or_else(|| {
                        let mut plan = Plan::empty(Format::Vmdk, file.size());
                        plan.phases.push(Phase {
                            name: "data",
                            ..Phase::default()
                        });
                        files.push((path, plan));
                        files.len() - 1
                    });
                    let plan = &mut files[at].1;
                    let Some(phase) = plan.phases.iter_mut().find(|ph| ph.name == "data") else {
                        return Err(self.ctx.refused(
                            "",
                            "this VMDK is not written in place: a flat extent shares its file \
                             with a sparse one",
                        ));
                    };
                    let bytes: u64 = pieces.iter().map(|(_, b)| b.len() as u64).sum();
                    for (a, b) in pieces {
                        let what = format!("extent {i} (flat)");
                        phase
                            .writes
                            .push(HostWrite::new(offset + (a - p.start), b, what));
                    }
                    plan.notes.push(format!(
                        "extent {i}: {bytes} bytes written in place in {}",
                        file.name()
                    ));
                }
                Store::Sparse(s) => {
                    let path = PathBuf::from(s.file.name());
                    if files.iter().any(|(f, _)| *f == path) {
                        return Err(self.ctx.refused(
                            "",
                            format!(
                                "this VMDK is not written in place: {} holds more than one \
                                 extent",
                                s.file.name()
                            ),
                        ));
                    }
                    // Whole grains, read from the disk as staged, each inside this extent
                    // (it begins and ends on its grains, or ends with the disk).
                    let aligned = align(view, &pieces, grain_bytes(s))?
                        .into_iter()
                        .map(|(a, b)| (a - p.start, b))
                        .collect::<Vec<_>>();
                    let mut plan = plan_sparse(s, &aligned, None)?;
                    for n in &mut plan.notes {
                        *n = format!("extent {i} ({}): {n}", s.file.name());
                    }
                    files.push((path, plan));
                }
            }
        }
        files
            .into_iter()
            .map(|(path, plan)| {
                let ctx = self.ctx.clone();
                plan.seal(&ctx).map(|p| (path, p))
            })
            .collect()
    }

    /// The descriptor file rewritten with a new CID: written by every commit, as the
    /// commit's first file (its journal is the one the others' follow).
    fn descriptor_plan(&self, ids: &mut Ids) -> Result<Plan> {
        let file = crate::HostFile::open(
            std::path::Path::new(&self.info.path),
            false,
            crate::IoStats::new(),
        )?;
        let len = file.size();
        if len > MAX_DESCRIPTOR {
            return Err(self.ctx.corrupt(0, "the descriptor file grew past 1 MiB"));
        }
        let mut text = vec![0u8; len as usize];
        file.read_at(0, &mut text)?;
        let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
        let mut new = self
            .renew_cid(&String::from_utf8_lossy(&text[..end]), ids)
            .into_bytes();
        // A shorter CID line than the old one leaves blank lines, so that no old byte is
        // left behind the text; what followed the text (padding) is kept.
        if new.len() < end {
            new.resize(end, b'\n');
        }
        new.extend_from_slice(&text[end..]);
        let mut plan = Plan::empty(Format::Vmdk, len);
        let new_len = (new.len() as u64).max(len);
        plan.new_len = new_len;
        plan.phases.push(Phase {
            name: "descriptor",
            set_len: (new_len > len).then_some(new_len),
            writes: vec![HostWrite::new(0, new, "descriptor (a new CID)")],
        });
        plan.notes.push(format!(
            "the descriptor {} gets a new CID",
            std::path::Path::new(&self.info.path).display()
        ));
        Ok(plan)
    }
}

/// A sparse extent's grain, in bytes.
fn grain_bytes(s: &SparseExtent) -> u64 {
    s.grain_sectors().max(1) * SECTOR
}
