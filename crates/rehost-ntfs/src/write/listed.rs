//! Files whose attributes span several MFT records (an `$ATTRIBUTE_LIST`), as a large,
//! long-lived hive often is, fragmented past what one record maps. Their bytes are
//! written in the clusters they have; they grow by clusters appended to the runs of their
//! last `$DATA` extent, in the record that holds it, when its mapping pairs still fit there
//! (the list names extents by their first VCN, which does not change); they shrink by
//! their sizes alone, the clusters kept allocated. What would need a new extension record
//! or a rewritten list is refused, and said.
//!
//! The runs come from the reader's assembly of every extent ([`crate::Ntfs::data`]);
//! every stored cluster must be allocated in `$Bitmap` and outside the metafiles before a
//! byte is written. The sizes live in the header of the extent at VCN 0; the
//! `$FILE_NAME`s, wherever they are, and their index entries get the new sizes.

use super::data::Data;
use super::guard;
use super::record::Sizes;
use super::runs;
use super::{Op, Writer};
use crate::file::File;
use crate::le::{u16_at, u64_at};
use crate::record::{Body, ATTR_COMPRESSED, ATTR_ENCRYPTED, ATTR_SPARSE, AT_DATA};
use rehost_core::error::Result;

/// What a change to a listed file does: its new size, and bytes written at an offset.
pub(crate) struct Change<'a> {
    /// The size afterwards (`None`: as it is, or as far as the bytes reach).
    pub size: Option<u64>,
    /// Where the bytes go.
    pub offset: u64,
    /// The bytes.
    pub bytes: &'a [u8],
    /// Stage only the pages whose bytes differ (for bytes already initialized).
    pub changed_only: bool,
}

impl Writer {
    /// Whether `f` keeps its attributes in several records.
    pub(crate) fn is_listed(f: &File) -> bool {
        f.attribute_list().is_some()
    }

    /// Applies `c` to the attribute-list file `f` at `path`, as one operation.
    pub(crate) fn change_listed(&mut self, f: &File, path: &str, c: Change) -> Result<()> {
        let ctx = self.vol.ctx.clone();
        let desc = self.ntfs.data(f, "")?.desc().clone();
        let refuse = |why: String| {
            ctx.unsupported(
                0,
                format!(
                    "{path}: the file's attributes span several MFT records, and {why}; \
                     rehost cannot write that (delete the file and create a new one)"
                ),
            )
        };
        if desc.resident.is_some() {
            return Err(refuse("its data is resident".into()));
        }
        if desc.flags & (ATTR_COMPRESSED | ATTR_ENCRYPTED | ATTR_SPARSE) != 0 {
            return Err(refuse("its data is compressed, encrypted or sparse".into()));
        }
        let end = c
            .offset
            .checked_add(c.bytes.len() as u64)
            .ok_or_else(|| ctx.invalid("write past 2^64"))?;
        let size = c.size.unwrap_or(desc.data_size.max(end));
        if end > size {
            return Err(ctx.invalid(format!("{path}: a write past the size it sets")));
        }
        guard::check_owned(&desc.runs, &self.clusters, &self.meta, path, &ctx)?;
        let extent = |pick: fn(u64, u64) -> bool| {
            let mut best: Option<(u64, u64)> = None;
            for a in f
                .attributes
                .iter()
                .filter(|a| a.ty == AT_DATA && a.name.is_empty())
            {
                if let Body::NonResident(nr) = &a.body {
                    if best.is_none_or(|(v, _)| pick(nr.start_vcn, v)) {
                        best = Some((nr.start_vcn, a.record));
                    }
                }
            }
            best
        };
        let first = extent(|a, b| a < b).filter(|(v, _)| *v == 0);
        let (Some((_, first)), Some(last)) = (first, extent(|a, b| a > b)) else {
            return Err(refuse("its data extents cannot be found".into()));
        };
        self.run(|w, op| {
            let mut runs = desc.runs.clone();
            let cl = w.vol.cluster;
            let mut sizes = Sizes {
                allocated: desc.allocated_size,
                data: size,
                initialized: desc.initialized_size.min(size),
            };
            let need = size.div_ceil(cl);
            let have = runs::clusters(&runs);
            if need > have {
                let pieces = w.take_clusters(need - have, runs::next_lcn(&runs))?;
                runs::append(&mut runs, &pieces);
                w.put_last_extent(last, &runs, path)?;
                sizes.allocated = need * cl;
            }
            if !c.bytes.is_empty() {
                let init = sizes.initialized;
                // Bytes past the initialized size read as zeros: the clusters must hold them
                // before the initialized size moves past them.
                if c.offset > init {
                    w.vol.zero_runs(&runs, init, c.offset - init, path)?;
                }
                if c.changed_only && end <= init {
                    w.vol.write_runs_changed(&runs, c.offset, c.bytes, path)?;
                } else {
                    w.vol.write_runs(&runs, c.offset, c.bytes, path)?;
                }
                sizes.initialized = init.max(end);
            }
            w.put_sizes(first, &sizes, path)?;
            let time = w.now();
            let d = Data::NonResident {
                runs,
                sizes,
                flags: desc.flags,
            };
            w.sync_listed_names(op, f, &d, time)
        })
    }

    /// The extent of the unnamed `$DATA` that starts at `vcn`, in record `n`: its position.
    fn data_extent(&mut self, n: u64, vcn: u64, path: &str) -> Result<super::record::AttrAt> {
        let ctx = self.vol.ctx.clone();
        let r = self.mft.get(&self.vol, n)?;
        r.attrs(&ctx)?
            .into_iter()
            .find(|a| {
                a.ty == AT_DATA
                    && a.name.is_empty()
                    && a.non_resident
                    && u64_at(r.bytes(a), 0x10) == vcn
            })
            .ok_or_else(|| {
                ctx.corrupt_at_path(
                    path,
                    format!("MFT record {n} holds no $DATA extent at VCN {vcn}"),
                )
            })
    }

    /// Rewrites the mapping pairs of the last extent (`(first VCN, record)`) for `runs`,
    /// the whole runlist: the extent maps those of its VCNs on.
    fn put_last_extent(
        &mut self,
        (vcn, n): (u64, u64),
        runs: &[crate::runlist::Run],
        path: &str,
    ) -> Result<()> {
        let at = self.data_extent(n, vcn, path)?;
        let r = self.mft.get(&self.vol, n)?;
        let old = r.bytes(&at).to_vec();
        let mine: Vec<_> = runs.iter().filter(|x| x.vcn >= vcn).cloned().collect();
        // The runs reach the end of the value; the last extent maps from its first VCN on.
        let end = runs.last().map_or(0, |x| x.vcn + x.len);
        if mine.first().map(|x| x.vcn) != Some(vcn) || end <= vcn {
            return Err(self.vol.ctx.unsupported(
                0,
                format!("{path}: the last data extent (VCN {vcn}) maps no run of its own"),
            ));
        }
        let pairs = runs::encode(&mine);
        let runs_off = u16_at(&old, 0x20) as usize;
        if runs_off < 0x40 || runs_off > old.len() {
            return Err(self.vol.ctx.corrupt_at_path(
                path,
                "a $DATA extent's mapping pairs offset is out of place",
            ));
        }
        let mut b = old[..runs_off].to_vec();
        b.extend_from_slice(&pairs);
        b.resize(super::record::align8(b.len()), 0);
        let len = b.len() as u32;
        b[4..8].copy_from_slice(&len.to_le_bytes());
        let last_vcn = end - 1;
        b[0x18..0x20].copy_from_slice(&last_vcn.to_le_bytes());
        if !r.replace(&at, &b) {
            return Err(self.vol.ctx.unsupported(
                0,
                format!(
                    "{path}: the file's attributes span several MFT records, and the runs of \
                     its last data extent no longer fit MFT record {n}; rehost does not add \
                     extension records (delete the file and create a new one)"
                ),
            ));
        }
        Ok(())
    }

    /// Writes `sizes` into the header of the extent at VCN 0, in record `n`.
    fn put_sizes(&mut self, n: u64, sizes: &Sizes, path: &str) -> Result<()> {
        let at = self.data_extent(n, 0, path)?;
        let r = self.mft.get(&self.vol, n)?;
        let mut b = r.bytes(&at).to_vec();
        if b.len() < 0x40 {
            return Err(self
                .vol
                .ctx
                .corrupt_at_path(path, "short non-resident $DATA header"));
        }
        b[0x28..0x30].copy_from_slice(&sizes.allocated.to_le_bytes());
        b[0x30..0x38].copy_from_slice(&sizes.data.to_le_bytes());
        b[0x38..0x40].copy_from_slice(&sizes.initialized.to_le_bytes());
        if !r.replace(&at, &b) {
            return Err(self
                .vol
                .ctx
                .corrupt_at_path(path, "the $DATA header could not be rewritten"));
        }
        Ok(())
    }

    /// The new sizes and times in every `$FILE_NAME` of `f`, in whichever record holds it,
    /// and in its index entry; the base record's `$STANDARD_INFORMATION` times.
    fn sync_listed_names(&mut self, op: &mut Op, f: &File, d: &Data, time: u64) -> Result<()> {
        let mut records: Vec<u64> = f
            .attributes
            .iter()
            .filter(|a| a.ty == crate::record::AT_FILE_NAME)
            .map(|a| a.record)
            .collect();
        records.sort_unstable();
        records.dedup();
        self.sync_names_in(op, f.record, &records, d, time)
    }
}
