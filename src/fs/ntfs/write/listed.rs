//! Files whose attributes span several MFT records (an `$ATTRIBUTE_LIST`): their bytes are
//! overwritten in the clusters they already have, their size and runs left as they are.
//! That is what a hive rewritten in place needs (a large, long-lived SOFTWARE or SYSTEM
//! hive is often fragmented past what one record maps). Changing such a file's size would
//! mean rewriting its runs across extension records and the list itself, which the writer
//! does not do; it says so.
//!
//! The runs come from the reader's assembly of every extent ([`crate::fs::ntfs::Ntfs::data`]);
//! every stored cluster must be allocated in `$Bitmap` and outside the metafiles before a
//! byte is written, and the range outside holes. In the MFT only the base record's
//! `$STANDARD_INFORMATION` times change, and the first extent's initialized size when a
//! write reaches past it (the clusters between zeroed first).

use super::guard;
use super::Writer;
use crate::error::Result;
use crate::fs::ntfs::file::File;
use crate::fs::ntfs::le::u64_at;
use crate::fs::ntfs::record::{Body, AT_DATA};

impl Writer {
    /// Whether `f` keeps its attributes in several records.
    pub(crate) fn is_listed(f: &File) -> bool {
        f.attribute_list().is_some()
    }

    /// Overwrites `bytes` at `offset` of the attribute-list file `f` (at `path`), which
    /// must already reach past them; `changed_only` stages only the pages that differ.
    pub(crate) fn overwrite_listed(
        &mut self,
        f: &File,
        path: &str,
        offset: u64,
        bytes: &[u8],
        changed_only: bool,
    ) -> Result<()> {
        let ctx = self.vol.ctx.clone();
        let desc = self.ntfs.data(f, "")?.desc().clone();
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or_else(|| ctx.invalid("write past 2^64"))?;
        let refuse = |why: String| {
            ctx.unsupported(
                0,
                format!(
                    "{path}: the file's attributes span several MFT records, and {why}; \
                     rehost writes such a file only within its size (delete it and create \
                     a new one)"
                ),
            )
        };
        if desc.resident.is_some() {
            return Err(refuse("its data is resident".into()));
        }
        if end > desc.data_size {
            return Err(refuse(format!(
                "the write would take it from {} to {end} bytes",
                desc.data_size
            )));
        }
        guard::check_owned(&desc.runs, &self.clusters, &self.meta, path, &ctx)?;
        // The first extent's header holds the sizes; it may live in an extension record.
        let first = f
            .attributes
            .iter()
            .find(|a| {
                a.ty == AT_DATA
                    && a.name.is_empty()
                    && matches!(&a.body, Body::NonResident(nr) if nr.start_vcn == 0)
            })
            .map(|a| a.record)
            .ok_or_else(|| refuse("its first data extent cannot be found".into()))?;
        let init = desc.initialized_size;
        self.run(|w, _op| {
            // Bytes past the initialized size read as zeros: the clusters must hold them
            // before the initialized size moves past them.
            if offset > init {
                w.vol.zero_runs(&desc.runs, init, offset - init, path)?;
            }
            if changed_only && end <= init {
                w.vol.write_runs_changed(&desc.runs, offset, bytes, path)?;
            } else {
                w.vol.write_runs(&desc.runs, offset, bytes, path)?;
            }
            if end > init {
                w.set_initialized(first, end, path)?;
            }
            let time = w.now();
            w.touch(f.record, time)
        })
    }

    /// Sets the initialized size in the header of the unnamed `$DATA` extent that starts
    /// at VCN 0, in record `n`.
    fn set_initialized(&mut self, n: u64, size: u64, path: &str) -> Result<()> {
        let ctx = self.vol.ctx.clone();
        let r = self.mft.get(&self.vol, n)?;
        let at = r
            .attrs(&ctx)?
            .into_iter()
            .find(|a| {
                a.ty == AT_DATA
                    && a.name.is_empty()
                    && a.non_resident
                    && u64_at(r.bytes(a), 0x10) == 0
            })
            .ok_or_else(|| {
                ctx.corrupt_at_path(path, format!("MFT record {n} lost its first data extent"))
            })?;
        let mut b = r.bytes(&at).to_vec();
        if b.len() < 0x40 {
            return Err(ctx.corrupt_at_path(path, "short non-resident $DATA header"));
        }
        b[0x38..0x40].copy_from_slice(&size.to_le_bytes());
        if !r.replace(&at, &b) {
            return Err(ctx.corrupt_at_path(path, "the $DATA header could not be rewritten"));
        }
        Ok(())
    }
}
