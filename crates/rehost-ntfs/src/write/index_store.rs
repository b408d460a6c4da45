//! Where a directory index lives: `$INDEX_ROOT` in the directory's record, INDX blocks in
//! `$INDEX_ALLOCATION`, one bit per block in the index's `$BITMAP`. Loading the root and
//! the blocks, taking and growing blocks, and writing all of it back for [`Tree`].

use super::bitmap::{pick_clusters, Bits};
use super::index::{Alloc, Tree};
use super::io::Vol;
use super::mft::{plausible, single_extent, Mft, Place};
use super::node::{block_capacity, parse_block, serialize_block, serialize_root, Node};
use super::record::{self, Sizes};
use super::runs;
use crate::file::File;
use crate::record::{Body, AT_BITMAP, AT_INDEX_ALLOCATION, AT_INDEX_ROOT};
use rehost_core::error::Result;
use std::collections::{BTreeMap, BTreeSet};

pub(super) const I30: [u16; 4] = [b'$' as u16, b'I' as u16, b'3' as u16, b'0' as u16];

impl Tree {
    /// Loads the root of the index of directory `dir` (nodes are read as needed). `what`
    /// names the directory in errors.
    pub fn load(vol: &Vol, mft: &Mft, dir: &File, what: &str) -> Result<Tree> {
        let ctx = &vol.ctx;
        let pick = |ty: u32| {
            dir.attributes
                .iter()
                .filter(|a| a.ty == ty && a.name == "$I30")
                .collect::<Vec<_>>()
        };
        let roots = pick(AT_INDEX_ROOT);
        let [root_attr] = roots[..] else {
            return Err(ctx.corrupt_at_path(what, "directory has no single $INDEX_ROOT"));
        };
        let Body::Resident(value) = &root_attr.body else {
            return Err(ctx.corrupt_at_path(what, "non-resident $INDEX_ROOT"));
        };
        if value.len() < 0x20 || crate::le::u32_at(value, 0) != 0x30 {
            return Err(ctx.corrupt_at_path(what, "$INDEX_ROOT does not index file names"));
        }
        let block_size = crate::le::u32_at(value, 8) as usize;
        if block_size != vol.index_block {
            return Err(ctx.unsupported(
                root_attr.pos,
                format!(
                    "{what}: index blocks of {block_size} bytes, the volume says {}",
                    vol.index_block
                ),
            ));
        }
        let mut head = [0u8; 16];
        head.copy_from_slice(&value[..16]);
        let root = Node::parse(value, 0x10, ctx, what)?;
        let vcn_shift = if block_size as u64 >= vol.cluster {
            vol.cluster.trailing_zeros()
        } else {
            9
        };
        let allocs = pick(AT_INDEX_ALLOCATION);
        let alloc = match allocs.len() {
            0 => None,
            _ => {
                let desc = dir
                    .stream_desc(AT_INDEX_ALLOCATION, "$I30", ctx, what)?
                    .ok_or_else(|| ctx.corrupt_at_path(what, "no $INDEX_ALLOCATION"))?;
                Some(Alloc {
                    runs: desc.runs,
                    sizes: Sizes {
                        allocated: desc.allocated_size,
                        data: desc.data_size,
                        initialized: desc.initialized_size,
                    },
                    record: allocs[0].record,
                    split: allocs.len() > 1,
                })
            }
        };
        let bitmaps = pick(AT_BITMAP);
        let (bits, place, bitmap_rec) = match (&alloc, &bitmaps[..]) {
            (None, []) => (Vec::new(), Place::Resident, root_attr.record),
            (Some(_), [b]) => match &b.body {
                Body::Resident(v) => (v.clone(), Place::Resident, b.record),
                body => {
                    let (r, sizes) = single_extent(body)
                        .filter(|(r, s)| s.data <= 1 << 24 && plausible(r, s, vol.cluster))
                        .ok_or_else(|| {
                            ctx.unsupported(
                                b.pos,
                                format!("{what}: index $BITMAP is split or huge"),
                            )
                        })?;
                    let mut v = vec![0u8; sizes.data as usize];
                    vol.read_runs(&r, 0, &mut v[..sizes.initialized as usize], what)?;
                    (v, Place::NonResident { runs: r, sizes }, b.record)
                }
            },
            _ => {
                return Err(
                    ctx.corrupt_at_path(what, "index $BITMAP does not match $INDEX_ALLOCATION")
                )
            }
        };
        let blocks_held = alloc
            .as_ref()
            .map_or(0, |a| a.sizes.data / block_size as u64);
        let rec = mft.peek(vol, root_attr.record)?;
        let root_len = rec
            .find(AT_INDEX_ROOT, &I30, ctx)?
            .map(|a| a.len)
            .ok_or_else(|| ctx.corrupt_at_path(what, "no $INDEX_ROOT in the record"))?;
        // Room for the attributes a first INDX block adds, or for their runs to grow.
        let reserve = if alloc.is_none() { 0x88 } else { 0x20 };
        let root_cap = (rec.free() + root_len).saturating_sub(0x40 + reserve);
        Ok(Tree {
            what: what.to_string(),
            head,
            root,
            root_rec: root_attr.record,
            root_cap,
            root_dirty: false,
            blocks: BTreeMap::new(),
            dirty: BTreeSet::new(),
            block_size,
            vcn_shift,
            alloc,
            alloc_changed: false,
            bitmap: Bits::new(bits, blocks_held),
            bitmap_dirty: false,
            bitmap_place: place,
            bitmap_rec,
        })
    }

    /// Reads the block at `vcn` unless it is loaded.
    pub(super) fn load_block(&mut self, vol: &Vol, vcn: u64) -> Result<()> {
        if self.blocks.contains_key(&vcn) {
            return Ok(());
        }
        let ctx = &vol.ctx;
        let alloc = self.alloc.as_ref().ok_or_else(|| {
            ctx.corrupt_at_path(
                &self.what,
                "index entry points at a block but there is no $INDEX_ALLOCATION",
            )
        })?;
        let off = vcn
            .checked_mul(1 << self.vcn_shift)
            .filter(|o| {
                o.checked_add(self.block_size as u64)
                    .is_some_and(|e| e <= alloc.sizes.data)
            })
            .ok_or_else(|| {
                ctx.corrupt_at_path(
                    &self.what,
                    format!("index block VCN {vcn} is outside $INDEX_ALLOCATION"),
                )
            })?;
        if vcn % self.vcns_per_block() != 0 || !self.bitmap.get(vcn / self.vcns_per_block()) {
            return Err(ctx.corrupt_at_path(
                &self.what,
                format!("index block VCN {vcn} is not an allocated block"),
            ));
        }
        let mut buf = vec![0u8; self.block_size];
        vol.read_runs(&alloc.runs, off, &mut buf, &self.what)?;
        let node = parse_block(buf, vcn, ctx, 0, &self.what)?;
        if node.size() > block_capacity(self.block_size) + 0x18 {
            return Err(ctx.corrupt_at_path(&self.what, format!("index block VCN {vcn} overflows")));
        }
        self.blocks.insert(vcn, node);
        Ok(())
    }

    /// Takes a free INDX block (growing `$INDEX_ALLOCATION` and its `$BITMAP` when every
    /// block is taken) and returns its VCN; the node starts empty.
    pub(super) fn new_block(&mut self, vol: &Vol, clusters: &mut Bits) -> Result<u64> {
        let per = self.vcns_per_block();
        let i = match self.bitmap.first_clear(0) {
            Some(i) => i,
            None => {
                self.grow(vol, clusters)?;
                self.bitmap.first_clear(0).expect("grown")
            }
        };
        self.bitmap.set_range(i, 1, true);
        let vcn = i * per;
        // A block used before keeps counting its update sequence numbers.
        let usn = match self.alloc.as_ref() {
            Some(a) if (i + 1) * self.block_size as u64 <= a.sizes.initialized => {
                let mut b = [0u8; 0x30];
                vol.read_runs(&a.runs, vcn << self.vcn_shift, &mut b, &self.what)?;
                let ofs = crate::le::u16_at(&b, 4) as usize;
                if &b[..4] == b"INDX" && ofs + 2 <= b.len() {
                    crate::le::u16_at(&b, ofs)
                } else {
                    0
                }
            }
            _ => 0,
        };
        self.blocks.insert(
            vcn,
            Node {
                usn,
                ..Node::default()
            },
        );
        self.dirty.insert(vcn);
        Ok(vcn)
    }

    /// Adds one block (or a cluster's worth when clusters are larger) to the allocation.
    fn grow(&mut self, vol: &Vol, clusters: &mut Bits) -> Result<()> {
        let ctx = &vol.ctx;
        let alloc = self.alloc.get_or_insert_with(|| Alloc {
            runs: Vec::new(),
            sizes: Sizes {
                allocated: 0,
                data: 0,
                initialized: 0,
            },
            record: self.root_rec,
            split: false,
        });
        if alloc.split {
            return Err(ctx.unsupported(0, format!("{}: the index allocation is split over several records; rehost does not grow it", self.what)));
        }
        let bs = self.block_size as u64;
        let add = bs.div_ceil(vol.cluster);
        let pieces =
            pick_clusters(clusters, add, runs::next_lcn(&alloc.runs), 0).ok_or_else(|| {
                ctx.unsupported(0, "the volume has no free clusters for an index block")
            })?;
        for &(l, n) in &pieces {
            clusters.set_range(l, n, true);
        }
        runs::append(&mut alloc.runs, &pieces);
        let allocated = runs::clusters(&alloc.runs) * vol.cluster;
        let blocks = allocated / bs;
        alloc.sizes = Sizes {
            allocated,
            data: blocks * bs,
            initialized: blocks * bs,
        };
        self.alloc_changed = true;
        self.bitmap.grow(blocks, (blocks.div_ceil(64) * 8) as usize);
        Ok(())
    }

    /// Puts the new `$INDEX_ROOT` (and `$INDEX_ALLOCATION` and `$BITMAP` when they
    /// changed) into the directory's records in the MFT cache; refuses, before anything is
    /// written, when they do not fit.
    pub fn stage_records(&mut self, vol: &Vol, mft: &mut Mft) -> Result<()> {
        let ctx = vol.ctx.clone();
        let what = self.what.clone();
        let no_room = |e: rehost_core::Error| {
            if matches!(e.kind, rehost_core::ErrorKind::Unsupported(_)) {
                ctx.unsupported(0, format!("{what}: the directory's record has no room for its index; rehost does not move attributes to extension records"))
            } else {
                e
            }
        };
        if self.alloc_changed {
            let alloc = self.alloc.as_ref().expect("changed");
            let clusters = runs::clusters(&alloc.runs);
            let ia = record::non_resident(
                AT_INDEX_ALLOCATION,
                &I30,
                0,
                clusters,
                &runs::encode(&alloc.runs),
                alloc.sizes,
            );
            put_attr(mft, vol, alloc.record, AT_INDEX_ALLOCATION, ia).map_err(no_room)?;
        }
        self.bitmap_dirty = self.bitmap_dirty || self.bitmap.take_dirty().is_some();
        if self.bitmap_dirty {
            let value = self.bitmap.bytes().to_vec();
            match &mut self.bitmap_place {
                Place::Resident => {
                    let a = record::resident(AT_BITMAP, &I30, &value, 0);
                    put_attr(mft, vol, self.bitmap_rec, AT_BITMAP, a).map_err(no_room)?;
                }
                Place::NonResident { runs: r, sizes } => {
                    if value.len() as u64 > runs::clusters(r) * vol.cluster {
                        return Err(ctx.unsupported(
                            0,
                            format!("{}: the index bitmap would outgrow its clusters", self.what),
                        ));
                    }
                    let bytes = value.len() as u64;
                    if bytes != sizes.data {
                        *sizes = Sizes {
                            allocated: sizes.allocated,
                            data: bytes,
                            initialized: bytes,
                        };
                        let a = record::non_resident(
                            AT_BITMAP,
                            &I30,
                            0,
                            runs::clusters(r),
                            &runs::encode(r),
                            *sizes,
                        );
                        put_attr(mft, vol, self.bitmap_rec, AT_BITMAP, a).map_err(no_room)?;
                    }
                }
            }
        }
        if self.root_dirty {
            let a = record::resident(
                AT_INDEX_ROOT,
                &I30,
                &serialize_root(&self.root, &self.head),
                0,
            );
            put_attr(mft, vol, self.root_rec, AT_INDEX_ROOT, a).map_err(no_room)?;
        }
        for vcn in &self.dirty {
            if self.blocks[vcn].size() > block_capacity(self.block_size) {
                return Err(ctx.corrupt_at_path(&self.what, "an index block still overflows"));
            }
        }
        Ok(())
    }

    /// Writes the changed INDX blocks (and a non-resident bitmap), after
    /// [`Tree::stage_records`].
    pub fn write_blocks(&mut self, vol: &Vol) -> Result<()> {
        if let Place::NonResident { runs: r, .. } = &self.bitmap_place {
            if self.bitmap_dirty {
                vol.write_runs(r, 0, self.bitmap.bytes(), &self.what)?;
            }
        }
        for vcn in std::mem::take(&mut self.dirty) {
            let node = &self.blocks[&vcn];
            let bytes = serialize_block(node, vcn, self.block_size);
            let alloc = self.alloc.as_ref().expect("blocks need an allocation");
            vol.write_runs(&alloc.runs, vcn << self.vcn_shift, &bytes, &self.what)?;
            let n = self.blocks.get_mut(&vcn).expect("present");
            n.usn = crate::le::u16_at(&bytes, 0x28);
        }
        self.root_dirty = false;
        self.alloc_changed = false;
        self.bitmap_dirty = false;
        Ok(())
    }
}

/// Replaces (keeping its instance) or inserts the `$I30` attribute `ty` in record `rec`.
fn put_attr(mft: &mut Mft, vol: &Vol, rec: u64, ty: u32, mut attr: Vec<u8>) -> Result<()> {
    let ctx = vol.ctx.clone();
    let r = mft.get(vol, rec)?;
    match r.find(ty, &I30, &ctx)? {
        Some(old) => {
            record::keep_instance(r.bytes(&old), &mut attr);
            if !r.replace(&old, &attr) {
                return Err(ctx.unsupported(0, "no room"));
            }
        }
        None => {
            if r.insert(attr, &ctx)?.is_none() {
                return Err(ctx.unsupported(0, "no room"));
            }
        }
    }
    Ok(())
}
