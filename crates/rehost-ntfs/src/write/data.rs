//! A file's unnamed `$DATA` as the writer changes it: resident in the record while it fits,
//! in clusters otherwise (allocated in `$Bitmap`, mapped by runs), moved between the two as
//! it grows and shrinks; bytes past the initialized size zeroed before they count.

use super::bitmap::pick_clusters;
use super::record::{self, align8, non_resident_with, resident, Sizes};
use super::runs;
use super::Writer;
use crate::le::{u16_at, u64_at};
use crate::record::{ATTR_SPARSE, AT_DATA};
use crate::runlist::{decode, Run};
use rehost_core::error::Result;

/// The unnamed `$DATA` of a file.
#[derive(Debug, Clone)]
pub enum Data {
    /// In the record.
    Resident(Vec<u8>),
    /// In clusters.
    NonResident {
        /// Runs, VCN 0 on.
        runs: Vec<Run>,
        /// Sizes.
        sizes: Sizes,
        /// Attribute flags (sparse).
        flags: u16,
    },
}

impl Data {
    /// Logical size.
    pub fn size(&self) -> u64 {
        match self {
            Data::Resident(v) => v.len() as u64,
            Data::NonResident { sizes, .. } => sizes.data,
        }
    }

    /// Allocated size as `$FILE_NAME` records it.
    pub fn allocated(&self) -> u64 {
        match self {
            Data::Resident(v) => align8(v.len()) as u64,
            Data::NonResident { sizes, .. } => sizes.allocated,
        }
    }

    /// Whether the value has holes.
    pub fn is_sparse(&self) -> bool {
        matches!(self, Data::NonResident { flags, .. } if flags & ATTR_SPARSE != 0)
    }
}

/// What a resize leaves in the new bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The old content stays; new bytes read as zeros.
    Zero,
    /// The caller writes the whole new content: nothing needs keeping or zeroing.
    Overwrite,
}

impl Writer {
    /// The unnamed `$DATA` of record `n` as the MFT cache holds it.
    pub(crate) fn data_get(&mut self, n: u64, path: &str) -> Result<Data> {
        let ctx = self.vol.ctx.clone();
        let r = self.mft.get(&self.vol, n)?;
        let at = r
            .find(AT_DATA, &[], &ctx)?
            .ok_or_else(|| ctx.corrupt_at_path(path, "the file has no unnamed $DATA"))?;
        if !at.non_resident {
            let v = r.value(&at).ok_or_else(|| {
                ctx.corrupt_at_path(path, "resident $DATA runs past its attribute")
            })?;
            return Ok(Data::Resident(v.to_vec()));
        }
        let b = r.bytes(&at);
        if u64_at(b, 0x10) != 0 {
            return Err(ctx.unsupported(0, format!("{path}: $DATA is split over several records")));
        }
        let runs_off = u16_at(b, 0x20) as usize;
        let runs = decode(
            b.get(runs_off..).unwrap_or(&[]),
            0,
            self.vol.total_clusters,
            &ctx,
            0,
        )?;
        Ok(Data::NonResident {
            runs,
            sizes: Sizes {
                allocated: u64_at(b, 0x28),
                data: u64_at(b, 0x30),
                initialized: u64_at(b, 0x38),
            },
            flags: u16_at(b, 12),
        })
    }

    /// The attribute bytes for `d`.
    fn data_attr(&self, d: &Data) -> Vec<u8> {
        match d {
            Data::Resident(v) => resident(AT_DATA, &[], v, 0),
            Data::NonResident {
                runs: r,
                sizes,
                flags,
            } => {
                let stored = (flags & ATTR_SPARSE != 0).then(|| runs::stored(r) * self.vol.cluster);
                non_resident_with(
                    AT_DATA,
                    &[],
                    *flags,
                    runs::clusters(r),
                    &runs::encode(r),
                    *sizes,
                    stored,
                )
            }
        }
    }

    /// Puts `d` as the unnamed `$DATA` of record `n`; false, changing nothing, when it
    /// does not fit the record.
    pub(crate) fn data_put(&mut self, n: u64, d: &Data) -> Result<bool> {
        let ctx = self.vol.ctx.clone();
        let mut attr = self.data_attr(d);
        let r = self.mft.get(&self.vol, n)?;
        match r.find(AT_DATA, &[], &ctx)? {
            Some(at) => {
                record::keep_instance(r.bytes(&at), &mut attr);
                Ok(r.replace(&at, &attr))
            }
            None => Ok(r.insert(attr, &ctx)?.is_some()),
        }
    }

    /// Whether `d` fits as record `n`'s `$DATA`, instead of what is there now.
    fn data_fits(&mut self, n: u64, d: &Data) -> Result<bool> {
        let ctx = self.vol.ctx.clone();
        let len = self.data_attr(d).len();
        let r = self.mft.get(&self.vol, n)?;
        let old = r.find(AT_DATA, &[], &ctx)?.map_or(0, |a| a.len);
        Ok(r.fits(old, len))
    }

    /// Takes `count` clusters, after `hint` where possible.
    pub(crate) fn take_clusters(
        &mut self,
        count: u64,
        hint: Option<u64>,
    ) -> Result<Vec<(u64, u64)>> {
        let zone_end = self.vol.mft_lcn + self.vol.total_clusters / 8;
        let pieces = pick_clusters(&self.clusters, count, hint, zone_end).ok_or_else(|| {
            self.vol.ctx.refused(
                "",
                format!(
                    "the volume has too few free clusters ({count} needed, {} free)",
                    self.free_clusters()
                ),
            )
        })?;
        for &(l, n) in &pieces {
            self.clusters.set_range(l, n, true);
        }
        Ok(pieces)
    }

    /// Frees stored pieces.
    fn free_pieces(&mut self, pieces: &[(u64, u64)]) {
        for &(l, n) in pieces {
            self.clusters.set_range(l, n, false);
        }
    }

    /// Frees every stored cluster of `runs`.
    pub(crate) fn free_runs(&mut self, r: &[Run]) {
        let pieces: Vec<(u64, u64)> = r.iter().filter_map(|r| r.lcn.map(|l| (l, r.len))).collect();
        self.free_pieces(&pieces);
    }

    /// Gives record `n`'s `$DATA` the size `new`: resident while it fits the record,
    /// clusters taken or freed otherwise. Returns the new state (already in the record).
    pub(crate) fn data_resize(&mut self, n: u64, path: &str, new: u64, fill: Fill) -> Result<Data> {
        let cur = self.data_get(n, path)?;
        let cl = self.vol.cluster;
        // Resident, when it fits.
        if new <= self.vol.record_size as u64 {
            let mut value = match (&cur, fill) {
                (_, Fill::Overwrite) => Vec::new(),
                (Data::Resident(v), Fill::Zero) => v.clone(),
                (Data::NonResident { runs: r, sizes, .. }, Fill::Zero) => {
                    let keep = sizes.initialized.min(new) as usize;
                    let mut v = vec![0u8; keep];
                    self.vol.read_runs(r, 0, &mut v, path)?;
                    v
                }
            };
            value.resize(new as usize, 0);
            let d = Data::Resident(value);
            if self.data_fits(n, &d)? {
                if let Data::NonResident { runs: r, .. } = &cur {
                    self.free_runs(r);
                }
                self.data_put(n, &d)?;
                return Ok(d);
            }
        }
        let need = new.div_ceil(cl);
        let (mut r, flags, old_init, old_value) = match cur {
            Data::Resident(v) => (Vec::new(), 0, 0, Some(v)),
            Data::NonResident { runs, sizes, flags } => (runs, flags, sizes.initialized, None),
        };
        let have = runs::clusters(&r);
        if need < have {
            let freed = runs::truncate(&mut r, need);
            self.free_pieces(&freed);
        } else if need > have {
            let pieces = self.take_clusters(need - have, runs::next_lcn(&r))?;
            runs::append(&mut r, &pieces);
        }
        let d = Data::NonResident {
            sizes: Sizes {
                allocated: runs::clusters(&r) * cl,
                data: new,
                initialized: new,
            },
            runs: r.clone(),
            flags,
        };
        if !self.data_fits(n, &d)? {
            return Err(self.vol.ctx.unsupported(
                0,
                format!("{path}: the file's data runs do not fit its MFT record (too fragmented); rehost does not write attribute lists"),
            ));
        }
        // Bytes that must read as zeros are zeroed, the old resident value moved; all in
        // clusters no file refers to yet or past the old initialized size.
        let mut keep_from = 0u64;
        if fill == Fill::Zero {
            if let Some(v) = &old_value {
                let k = (v.len() as u64).min(new) as usize;
                self.vol.write_runs(&r, 0, &v[..k], path)?;
                keep_from = k as u64;
            } else {
                keep_from = old_init.min(new);
            }
        }
        let zero_from = if fill == Fill::Zero { keep_from } else { new };
        let end = need * cl;
        if end > zero_from {
            self.vol.zero_runs(&r, zero_from, end - zero_from, path)?;
        }
        self.data_put(n, &d)?;
        Ok(d)
    }

    /// Writes `bytes` at `off` of record `n`'s data (the size already covers them): into
    /// the record, or into clusters, holes filled and the initialized size moved on.
    /// `only_changed` stages only the pages whose bytes differ.
    pub(crate) fn data_write(
        &mut self,
        n: u64,
        path: &str,
        off: u64,
        bytes: &[u8],
        only_changed: bool,
    ) -> Result<Data> {
        let mut d = self.data_get(n, path)?;
        let end = off + bytes.len() as u64;
        if end > d.size() {
            return Err(self
                .vol
                .ctx
                .invalid(format!("{path}: write past the end of the data")));
        }
        let cl = self.vol.cluster;
        match &mut d {
            Data::Resident(v) => {
                v[off as usize..end as usize].copy_from_slice(bytes);
                self.data_put(n, &d)?;
            }
            Data::NonResident { runs: r, sizes, .. } => {
                let mut changed = false;
                for (vcn, len) in runs::holes(r, off / cl, end.div_ceil(cl)) {
                    let hint = r
                        .iter()
                        .rev()
                        .find(|x| x.vcn < vcn)
                        .and_then(|x| x.lcn.map(|l| l + x.len));
                    let pieces = self.take_clusters(len, hint)?;
                    runs::fill_hole(r, vcn, len, &pieces);
                    self.vol.zero_runs(r, vcn * cl, len * cl, path)?;
                    changed = true;
                }
                if off > sizes.initialized {
                    self.vol
                        .zero_runs(r, sizes.initialized, off - sizes.initialized, path)?;
                }
                if end > sizes.initialized {
                    sizes.initialized = end;
                    changed = true;
                }
                if changed && !self.data_put(n, &d)? {
                    return Err(self.vol.ctx.unsupported(
                        0,
                        format!("{path}: the file's data runs do not fit its MFT record (too fragmented)"),
                    ));
                }
                let Data::NonResident { runs: r, .. } = &d else {
                    unreachable!()
                };
                if only_changed {
                    self.vol.write_runs_changed(r, off, bytes, path)?;
                } else {
                    self.vol.write_runs(r, off, bytes, path)?;
                }
            }
        }
        Ok(d)
    }

    /// Moves a resident value into clusters to make room in the record; false when there
    /// is nothing to move.
    pub(crate) fn data_evict(&mut self, n: u64, path: &str) -> Result<bool> {
        let Data::Resident(v) = self.data_get(n, path)? else {
            return Ok(false);
        };
        if v.len() < 0x40 {
            return Ok(false);
        }
        let cl = self.vol.cluster;
        let need = (v.len() as u64).div_ceil(cl);
        let pieces = self.take_clusters(need, None)?;
        let mut r = Vec::new();
        runs::append(&mut r, &pieces);
        self.vol.write_runs(&r, 0, &v, path)?;
        self.vol
            .zero_runs(&r, v.len() as u64, need * cl - v.len() as u64, path)?;
        let d = Data::NonResident {
            sizes: Sizes {
                allocated: need * cl,
                data: v.len() as u64,
                initialized: v.len() as u64,
            },
            runs: r,
            flags: 0,
        };
        self.data_put(n, &d)
    }
}
