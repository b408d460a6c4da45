//! The master file table as the writer changes it: FILE records read, changed in a cache
//! and written back with their fixups (and into `$MFTMirr` for the first records), record
//! allocation in `$MFT`'s `$BITMAP`, and growth of `$MFT` when every record is taken.

use super::bitmap::{pick_clusters, Bits};
use super::io::Vol;
use super::record::{non_resident, resident, RecordBuf, Sizes};
use super::runs;
use crate::le::u16_at;
use crate::record::{Body, Record, AT_ATTRIBUTE_LIST, AT_BITMAP, AT_DATA};
use crate::runlist::Run;
use crate::Ntfs;
use rehost_core::error::Result;
use std::collections::BTreeMap;

/// Records below this number are left to the system (ntfs-3g starts user files here too:
/// 0-15 are the metafiles, 16-23 reserved for `$MFT`'s extensions, the rest of the first 64
/// for `$Extend` and its children).
pub const FIRST_USER_RECORD: u64 = 64;
/// Records `$MFT` grows by when it is full (a multiple of 64 keeps its bitmap in 8-byte words).
const GROW_RECORDS: u64 = 64;

/// Where a bitmap attribute's bytes are kept.
#[derive(Debug, Clone)]
pub enum Place {
    /// In the attribute (of the record it belongs to).
    Resident,
    /// In clusters.
    NonResident {
        /// The runs of the value.
        runs: Vec<Run>,
        /// Its sizes.
        sizes: Sizes,
    },
}

/// `$MFT` and the records changed by the current operation.
pub struct Mft {
    runs: Vec<Run>,
    sizes: Sizes,
    records: u64,
    bitmap: Bits,
    bitmap_place: Place,
    mirror_runs: Vec<Run>,
    mirror_records: u64,
    cache: BTreeMap<u64, RecordBuf>,
}

/// The runs and sizes of a single-extent non-resident attribute body.
pub fn single_extent(body: &Body) -> Option<(Vec<Run>, Sizes)> {
    match body {
        Body::NonResident(n) if n.start_vcn == 0 => Some((
            n.runs.clone(),
            Sizes {
                allocated: n.allocated_size,
                data: n.data_size,
                initialized: n.initialized_size,
            },
        )),
        _ => None,
    }
}

/// Whether sizes fit their runs: initialized within data, data and allocation within the
/// clusters mapped.
pub fn plausible(runs: &[Run], sizes: &Sizes, cluster: u64) -> bool {
    let mapped = runs::clusters(runs).saturating_mul(cluster);
    sizes.initialized <= sizes.data && sizes.data <= mapped && sizes.allocated <= mapped
}

impl Mft {
    /// Reads `$MFT`'s runs, its bitmap and `$MFTMirr`'s place.
    pub fn load(vol: &Vol, ntfs: &Ntfs) -> Result<Mft> {
        let ctx = &vol.ctx;
        let f = ntfs.file(0)?;
        let desc = f
            .stream_desc(AT_DATA, "", ctx, "$MFT")?
            .ok_or_else(|| ctx.corrupt_at_path("$MFT", "no $DATA"))?;
        let records = desc.data_size / vol.record_size as u64;
        let bm = f
            .attributes
            .iter()
            .filter(|a| a.ty == AT_BITMAP && a.name.is_empty())
            .collect::<Vec<_>>();
        let [bm] = bm[..] else {
            return Err(ctx.unsupported(0, "$MFT's $BITMAP is missing or split into extents"));
        };
        let (bytes, place) = match &bm.body {
            Body::Resident(v) => (v.clone(), Place::Resident),
            body => {
                let (r, sizes) = single_extent(body)
                    .ok_or_else(|| ctx.unsupported(bm.pos, "$MFT's $BITMAP is split"))?;
                if sizes.data > 1 << 26 || !plausible(&r, &sizes, vol.cluster) {
                    return Err(
                        ctx.corrupt(bm.pos, "$MFT's $BITMAP has sizes that do not fit its runs")
                    );
                }
                let mut b = vec![0u8; sizes.data as usize];
                vol.read_runs(&r, 0, &mut b[..sizes.initialized as usize], "$MFT:$BITMAP")?;
                (b, Place::NonResident { runs: r, sizes })
            }
        };
        let mirror = ntfs.file(1)?;
        let md = mirror
            .stream_desc(AT_DATA, "", ctx, "$MFTMirr")?
            .ok_or_else(|| ctx.corrupt_at_path("$MFTMirr", "no $DATA"))?;
        if md.resident.is_some() {
            return Err(ctx.corrupt_at_path("$MFTMirr", "resident $DATA"));
        }
        Ok(Mft {
            sizes: Sizes {
                allocated: desc.allocated_size,
                data: desc.data_size,
                initialized: desc.initialized_size,
            },
            runs: desc.runs,
            records,
            bitmap: Bits::new(bytes, records),
            bitmap_place: place,
            mirror_records: (md.data_size / vol.record_size as u64).min(records),
            mirror_runs: md.runs,
            cache: BTreeMap::new(),
        })
    }

    /// Records in the MFT.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Records `$MFTMirr` mirrors.
    pub fn mirror_records(&self) -> u64 {
        self.mirror_records
    }

    /// Whether record `n` is marked in use in the MFT bitmap.
    pub fn allocated(&self, n: u64) -> bool {
        self.bitmap.get(n)
    }

    /// The raw bytes of record `n` as stored (fixups applied).
    pub fn raw(&self, vol: &Vol, n: u64) -> Result<Vec<u8>> {
        let rs = vol.record_size;
        let mut b = vec![0u8; rs];
        vol.read_runs(&self.runs, n * rs as u64, &mut b, "$MFT")?;
        Ok(b)
    }

    /// The raw bytes of the mirror's record `n`.
    pub fn mirror_raw(&self, vol: &Vol, n: u64) -> Result<Vec<u8>> {
        let rs = vol.record_size;
        let mut b = vec![0u8; rs];
        vol.read_runs(&self.mirror_runs, n * rs as u64, &mut b, "$MFTMirr")?;
        Ok(b)
    }

    fn read(&self, vol: &Vol, n: u64) -> Result<RecordBuf> {
        if n >= self.records {
            return Err(vol
                .ctx
                .corrupt_at_path("$MFT", format!("record {n} is past the end of the MFT")));
        }
        let rec = Record::parse(n, self.raw(vol, n)?, 0, &vol.ctx)?;
        Ok(RecordBuf::from_plain(n, rec.data))
    }

    /// Record `n` for changing: from the cache, or read and put there.
    pub fn get(&mut self, vol: &Vol, n: u64) -> Result<&mut RecordBuf> {
        if !self.cache.contains_key(&n) {
            let r = self.read(vol, n)?;
            self.cache.insert(n, r);
        }
        Ok(self.cache.get_mut(&n).expect("inserted above"))
    }

    /// A clean copy of record `n` (the cached one if it was changed).
    pub fn peek(&self, vol: &Vol, n: u64) -> Result<RecordBuf> {
        match self.cache.get(&n) {
            Some(r) => Ok(r.clone()),
            None => self.read(vol, n),
        }
    }

    /// Takes a free record, marks it in the bitmap and returns it formatted (not yet in use:
    /// the caller sets the flags). Grows `$MFT` when every record is taken.
    pub fn allocate(&mut self, vol: &Vol, clusters: &mut Bits) -> Result<u64> {
        loop {
            let mut from = FIRST_USER_RECORD;
            while let Some(n) = self.bitmap.first_clear(from) {
                from = n + 1;
                if self.cache.contains_key(&n) {
                    continue;
                }
                // The slot's old header gives the sequence number to carry on with; a slot
                // that holds a record in use despite its clear bit is left alone.
                let fresh = match Record::parse(n, self.raw(vol, n)?, 0, &vol.ctx) {
                    Ok(r) if r.in_use() => continue,
                    Ok(r) => {
                        let usn = u16_at(&r.data, u16_at(&r.data, 4) as usize);
                        let mut f = RecordBuf::format(n, vol.record_size, r.sequence, usn);
                        // Keep the slot's $LogFile sequence number.
                        f.data[8..16].copy_from_slice(&r.data[8..16]);
                        f
                    }
                    Err(_) => RecordBuf::format(n, vol.record_size, 1, 0),
                };
                self.bitmap.set_range(n, 1, true);
                self.cache.insert(n, fresh);
                return Ok(n);
            }
            self.grow(vol, clusters)?;
        }
    }

    /// Frees record `n`: clears its bit, its in-use flag, and bumps its sequence number.
    pub fn free(&mut self, vol: &Vol, n: u64) -> Result<()> {
        let r = self.get(vol, n)?;
        r.set_flags(0);
        let seq = r.sequence().wrapping_add(1);
        r.set_sequence(if seq == 0 { 1 } else { seq });
        self.bitmap.set_range(n, 1, false);
        Ok(())
    }

    /// Grows `$MFT` by [`GROW_RECORDS`] records: clusters after its end if free, its `$DATA`
    /// and `$BITMAP` in record 0 resized, the new records formatted.
    fn grow(&mut self, vol: &Vol, clusters: &mut Bits) -> Result<()> {
        let ctx = &vol.ctx;
        let rec0 = self.peek(vol, 0)?;
        let attrs = rec0.attrs(ctx)?;
        if attrs.iter().any(|a| a.ty == AT_ATTRIBUTE_LIST) {
            return Err(ctx.unsupported(
                0,
                "the MFT is full and its record has an attribute list: rehost does not grow such an MFT (let Windows or chkdsk do it)",
            ));
        }
        let rs = vol.record_size as u64;
        let new_records = self.records + GROW_RECORDS;
        let need_bytes = new_records * rs;
        let have = runs::clusters(&self.runs);
        let need = need_bytes.div_ceil(vol.cluster);
        let mut new_runs = self.runs.clone();
        if need > have {
            let hint = runs::next_lcn(&self.runs);
            let pieces = pick_clusters(clusters, need - have, hint, 0).ok_or_else(|| {
                ctx.unsupported(0, "the volume has no free clusters to grow the MFT")
            })?;
            for &(l, n) in &pieces {
                clusters.set_range(l, n, true);
            }
            runs::append(&mut new_runs, &pieces);
        }
        let sizes = Sizes {
            allocated: runs::clusters(&new_runs) * vol.cluster,
            data: need_bytes,
            initialized: need_bytes,
        };
        let data_at = rec0
            .find(AT_DATA, &[], ctx)?
            .ok_or_else(|| ctx.corrupt_at_path("$MFT", "no $DATA in record 0"))?;
        let old = rec0.bytes(&data_at).to_vec();
        let mut new = non_resident(
            AT_DATA,
            &[],
            u16_at(&old, 12),
            runs::clusters(&new_runs),
            &runs::encode(&new_runs),
            sizes,
        );
        super::record::keep_instance(&old, &mut new);
        // The bitmap grows to cover the new records, in 8-byte words.
        let bm_bytes = new_records.div_ceil(64) * 8;
        let mut bitmap = self.bitmap.clone();
        bitmap.grow(new_records, bm_bytes as usize);
        let bm_at = rec0
            .find(AT_BITMAP, &[], ctx)?
            .ok_or_else(|| ctx.corrupt_at_path("$MFT", "no $BITMAP in record 0"))?;
        let bm_old = rec0.bytes(&bm_at).to_vec();
        let (mut bm_new, place) = match &self.bitmap_place {
            Place::Resident => (resident(AT_BITMAP, &[], bitmap.bytes(), 0), Place::Resident),
            Place::NonResident { runs: r, sizes: s } => {
                let mut r = r.clone();
                let have = runs::clusters(&r) * vol.cluster;
                if bm_bytes > have {
                    let add = (bm_bytes - have).div_ceil(vol.cluster);
                    let pieces =
                        pick_clusters(clusters, add, runs::next_lcn(&r), 0).ok_or_else(|| {
                            ctx.unsupported(
                                0,
                                "the volume has no free clusters to grow the MFT bitmap",
                            )
                        })?;
                    for &(l, n) in &pieces {
                        clusters.set_range(l, n, true);
                    }
                    runs::append(&mut r, &pieces);
                }
                let sz = Sizes {
                    allocated: runs::clusters(&r) * vol.cluster,
                    data: bm_bytes.max(s.data),
                    initialized: bm_bytes.max(s.data),
                };
                let a = non_resident(AT_BITMAP, &[], 0, runs::clusters(&r), &runs::encode(&r), sz);
                (a, Place::NonResident { runs: r, sizes: sz })
            }
        };
        super::record::keep_instance(&bm_old, &mut bm_new);
        let rec0 = self.get(vol, 0)?;
        // Replace $BITMAP (later in the record) first so the $DATA offset stays valid.
        let fits = rec0.fits(data_at.len + bm_at.len, new.len() + bm_new.len());
        if !fits || !rec0.replace(&bm_at, &bm_new) {
            return Err(ctx.unsupported(
                0,
                "the MFT is full and record 0 has no room for more data runs",
            ));
        }
        let data_at = rec0.find(AT_DATA, &[], ctx)?.expect("found above");
        if !rec0.replace(&data_at, &new) {
            return Err(ctx.unsupported(0, "record 0 has no room for more data runs"));
        }
        // Format the new records in the clusters now mapped.
        for n in self.records..new_records {
            let mut r = RecordBuf::format(n, vol.record_size, 1, 0);
            let bytes = r.protect();
            vol.write_runs(&new_runs, n * rs, &bytes, "$MFT")?;
        }
        self.runs = new_runs;
        self.sizes = sizes;
        self.records = new_records;
        self.bitmap = bitmap;
        self.bitmap_place = place;
        Ok(())
    }

    /// Writes every changed record (and its mirror copy) and the changed bitmap bytes, then
    /// empties the cache.
    pub fn flush(&mut self, vol: &Vol) -> Result<()> {
        if let Some((from, to)) = self.bitmap.take_dirty() {
            match &self.bitmap_place {
                Place::NonResident { runs, .. } => vol.write_runs(
                    runs,
                    from as u64,
                    &self.bitmap.bytes()[from..to],
                    "$MFT:$BITMAP",
                )?,
                Place::Resident => {
                    let bytes = self.bitmap.bytes().to_vec();
                    let ctx = vol.ctx.clone();
                    let rec0 = self.get(vol, 0)?;
                    let at = rec0
                        .find(AT_BITMAP, &[], &ctx)?
                        .ok_or_else(|| ctx.corrupt_at_path("$MFT", "no $BITMAP"))?;
                    let mut a = resident(AT_BITMAP, &[], &bytes, 0);
                    super::record::keep_instance(rec0.bytes(&at), &mut a);
                    if !rec0.replace(&at, &a) {
                        return Err(
                            ctx.unsupported(0, "record 0 has no room for a larger $MFT bitmap")
                        );
                    }
                }
            }
        }
        let rs = vol.record_size as u64;
        for (n, mut r) in std::mem::take(&mut self.cache) {
            let bytes = r.protect();
            vol.write_runs(&self.runs, n * rs, &bytes, "$MFT")?;
            if n < self.mirror_records {
                vol.write_runs(&self.mirror_runs, n * rs, &bytes, "$MFTMirr")?;
            }
        }
        Ok(())
    }
}
