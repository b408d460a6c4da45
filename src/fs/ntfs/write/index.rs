//! Editing a directory's `$I30` B+ tree: entries inserted (nodes split at their median,
//! the root moved into a new INDX block when it outgrows its record), removed (an internal
//! entry replaced by its successor, an emptied block freed and its parent's entry put back
//! into the tree, as ntfs-3g does), and updated in place (sizes and times of a name).
//!
//! Keys collate by their names upper-cased through `$UpCase`, code unit by code unit, the
//! shorter first; names equal but for case then collate by their code units.
//!
//! Nodes are loaded on demand and kept until [`Tree::flush`], which writes the changed
//! blocks and puts the new `$INDEX_ROOT` (and `$INDEX_ALLOCATION` and `$BITMAP` when they
//! changed) into the directory's record in the MFT cache.

use super::bitmap::{pick_clusters, Bits};
use super::io::Vol;
use super::mft::{plausible, single_extent, Mft, Place};
use super::node::{block_capacity, parse_block, serialize_block, serialize_root, Entry, Node};
use super::record::{self, Sizes};
use super::runs;
use crate::error::Result;
use crate::fs::ntfs::file::File;
use crate::fs::ntfs::index::MAX_DEPTH;
use crate::fs::ntfs::record::{Body, AT_BITMAP, AT_INDEX_ALLOCATION, AT_INDEX_ROOT};
use crate::fs::ntfs::runlist::Run;
use crate::fs::ntfs::upcase::UpCase;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

const I30: [u16; 4] = [b'$' as u16, b'I' as u16, b'3' as u16, b'0' as u16];

/// A node of the tree: the root or the INDX block at a VCN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Root,
    Block(u64),
}

/// A path from the root: each node and the position taken in it.
type Path = Vec<(Id, usize)>;

/// `$INDEX_ALLOCATION`: the INDX blocks' runs.
struct Alloc {
    runs: Vec<Run>,
    sizes: Sizes,
    record: u64,
    /// Split over several records (readable, not growable).
    split: bool,
}

/// A directory index being edited.
pub struct Tree {
    what: String,
    head: [u8; 16],
    root: Node,
    root_rec: u64,
    root_cap: usize,
    root_dirty: bool,
    blocks: BTreeMap<u64, Node>,
    dirty: BTreeSet<u64>,
    block_size: usize,
    vcn_shift: u32,
    alloc: Option<Alloc>,
    alloc_changed: bool,
    bitmap: Bits,
    bitmap_dirty: bool,
    bitmap_place: Place,
    bitmap_rec: u64,
}

/// Collation of `$I30` keys: by upper case, then by code unit.
pub fn collate(up: &UpCase, a: &[u16], b: &[u16]) -> Ordering {
    up.cmp(a, b).then_with(|| a.cmp(b))
}

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
        if value.len() < 0x20 || crate::fs::ntfs::le::u32_at(value, 0) != 0x30 {
            return Err(ctx.corrupt_at_path(what, "$INDEX_ROOT does not index file names"));
        }
        let block_size = crate::fs::ntfs::le::u32_at(value, 8) as usize;
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

    fn vcns_per_block(&self) -> u64 {
        (self.block_size as u64) >> self.vcn_shift
    }

    fn node(&self, id: Id) -> &Node {
        match id {
            Id::Root => &self.root,
            Id::Block(v) => &self.blocks[&v],
        }
    }

    fn node_mut(&mut self, id: Id) -> &mut Node {
        match id {
            Id::Root => {
                self.root_dirty = true;
                &mut self.root
            }
            Id::Block(v) => {
                self.dirty.insert(v);
                self.blocks.get_mut(&v).expect("loaded before changed")
            }
        }
    }

    /// Reads the block at `vcn` unless it is loaded.
    fn load_block(&mut self, vol: &Vol, vcn: u64) -> Result<()> {
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

    /// Walks down towards `name`: returns the path (its last step is the entry when found,
    /// else the leaf position where the name would go) and whether an entry was found.
    /// `cmp` decides the order: [`collate`] for an exact name, upper case alone to find a
    /// name whatever its case.
    fn descend(
        &mut self,
        vol: &Vol,
        name: &[u16],
        cmp: &dyn Fn(&[u16], &[u16]) -> Ordering,
    ) -> Result<(Path, bool)> {
        let mut path = Vec::new();
        let mut id = Id::Root;
        let mut seen = BTreeSet::new();
        loop {
            if path.len() >= MAX_DEPTH {
                return Err(vol.ctx.corrupt_at_path(&self.what, "index tree too deep"));
            }
            let node = self.node(id);
            let mut pos = node.entries.len();
            for (i, e) in node.entries.iter().enumerate() {
                match cmp(name, &e.name()) {
                    Ordering::Greater => continue,
                    Ordering::Equal => {
                        path.push((id, i));
                        return Ok((path, true));
                    }
                    Ordering::Less => {
                        pos = i;
                        break;
                    }
                }
            }
            let sub = node.sub_at(pos);
            path.push((id, pos));
            let Some(vcn) = sub else {
                return Ok((path, false));
            };
            if !seen.insert(vcn) {
                return Err(vol
                    .ctx
                    .corrupt_at_path(&self.what, format!("index loop at block VCN {vcn}")));
            }
            self.load_block(vol, vcn)?;
            id = Id::Block(vcn);
        }
    }

    /// The entry whose name equals `name` ignoring case, if any.
    pub fn find_any_case(&mut self, vol: &Vol, up: &UpCase, name: &[u16]) -> Result<Option<Entry>> {
        let (path, found) = self.descend(vol, name, &|a, b| up.cmp(a, b))?;
        Ok(found.then(|| {
            let (id, i) = *path.last().expect("a path has a step");
            self.node(id).entries[i].clone()
        }))
    }

    /// Inserts an entry for `key` (a `$FILE_NAME` value) naming `fref`. A name equal to an
    /// existing one ignoring case is refused.
    pub fn insert(
        &mut self,
        vol: &Vol,
        up: &UpCase,
        clusters: &mut Bits,
        fref: u64,
        key: Vec<u8>,
    ) -> Result<()> {
        let entry = Entry {
            fref,
            key,
            sub: None,
        };
        let name = entry.name();
        if self.find_any_case(vol, up, &name)?.is_some() {
            return Err(vol.ctx.invalid(format!(
                "{}\\{} already exists",
                self.what.trim_end_matches('\\'),
                String::from_utf16_lossy(&name)
            )));
        }
        if entry.size() + 24 > block_capacity(self.block_size) / 2 {
            return Err(vol
                .ctx
                .unsupported(0, "the name is too long for this volume's index blocks"));
        }
        let (path, _) = self.descend(vol, &name, &|a, b| collate(up, a, b))?;
        let (id, pos) = *path.last().expect("a path has a step");
        self.node_mut(id).entries.insert(pos, entry);
        self.fix_overflow(vol, clusters, path)
    }

    /// Splits, from the bottom of `path` up, every node that no longer fits.
    fn fix_overflow(&mut self, vol: &Vol, clusters: &mut Bits, mut path: Path) -> Result<()> {
        while let Some((id, _)) = path.pop() {
            match id {
                Id::Root => {
                    if self.root.size() <= self.root_cap {
                        return Ok(());
                    }
                    // The root moves into a new block and keeps only a pointer to it.
                    let vcn = self.new_block(vol, clusters)?;
                    let mut moved = std::mem::take(&mut self.root);
                    moved.lsn = 0;
                    moved.usn = self.blocks.get(&vcn).map_or(0, |n| n.usn);
                    self.blocks.insert(vcn, moved);
                    self.dirty.insert(vcn);
                    self.root = Node {
                        end_sub: Some(vcn),
                        ..Node::default()
                    };
                    self.root_dirty = true;
                    path.push((Id::Root, 0));
                    path.push((Id::Block(vcn), 0));
                }
                Id::Block(vcn) => {
                    if self.blocks[&vcn].size() <= block_capacity(self.block_size) {
                        return Ok(());
                    }
                    let &(parent, ppos) = path.last().ok_or_else(|| {
                        vol.ctx
                            .corrupt_at_path(&self.what, "index block without a parent")
                    })?;
                    let left_vcn = self.new_block(vol, clusters)?;
                    let node = self.blocks.get_mut(&vcn).expect("loaded");
                    let n = node.entries.len();
                    if n < 3 {
                        return Err(vol
                            .ctx
                            .unsupported(0, "index entries too large to split a block"));
                    }
                    let half = node.size() / 2;
                    let mut acc = 0;
                    let mut m = 0;
                    while m < n - 2 && acc + node.entries[m].size() < half {
                        acc += node.entries[m].size();
                        m += 1;
                    }
                    let m = m.max(1);
                    let lower: Vec<Entry> = node.entries.drain(..=m).collect();
                    let (mut median, lower) = {
                        let mut l = lower;
                        let med = l.pop().expect("m >= 1");
                        (med, l)
                    };
                    let left = self.blocks.get_mut(&left_vcn).expect("new block");
                    left.entries = lower;
                    left.end_sub = median.sub;
                    median.sub = Some(left_vcn);
                    self.dirty.insert(vcn);
                    self.dirty.insert(left_vcn);
                    self.node_mut(parent).entries.insert(ppos, median);
                }
            }
        }
        Ok(())
    }

    /// Takes a free INDX block (growing `$INDEX_ALLOCATION` and its `$BITMAP` when every
    /// block is taken) and returns its VCN; the node starts empty.
    fn new_block(&mut self, vol: &Vol, clusters: &mut Bits) -> Result<u64> {
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
                let ofs = crate::fs::ntfs::le::u16_at(&b, 4) as usize;
                if &b[..4] == b"INDX" && ofs + 2 <= b.len() {
                    crate::fs::ntfs::le::u16_at(&b, ofs)
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

    /// Removes the entry named exactly `name` that names record `record`.
    pub fn remove(
        &mut self,
        vol: &Vol,
        up: &UpCase,
        clusters: &mut Bits,
        name: &[u16],
        record: u64,
    ) -> Result<()> {
        let (path, found) = self.descend(vol, name, &|a, b| collate(up, a, b))?;
        let &(id, pos) = path.last().expect("a path has a step");
        if !found || self.node(id).entries[pos].record() != record {
            return Err(vol.ctx.corrupt_at_path(
                &self.what,
                format!(
                    "no index entry {} for record {record}",
                    String::from_utf16_lossy(name)
                ),
            ));
        }
        let node = self.node(id);
        if node.entries[pos].sub.is_none() {
            self.node_mut(id).entries.remove(pos);
            if id != Id::Root && self.node(id).entries.is_empty() {
                self.drop_empty(vol, up, clusters, path)?;
            }
            return Ok(());
        }
        // An internal entry: its successor (the first key of the leftmost leaf to its
        // right) takes its place.
        let mut spath = path.clone();
        spath.last_mut().expect("step").1 = pos + 1;
        let mut vcn = node.sub_at(pos + 1).expect("internal nodes have children");
        loop {
            if spath.len() >= MAX_DEPTH {
                return Err(vol.ctx.corrupt_at_path(&self.what, "index tree too deep"));
            }
            self.load_block(vol, vcn)?;
            spath.push((Id::Block(vcn), 0));
            match self.blocks[&vcn].sub_at(0) {
                Some(v) => vcn = v,
                None => break,
            }
        }
        let leaf = Id::Block(vcn);
        if self.node(leaf).entries.is_empty() {
            return Err(vol
                .ctx
                .corrupt_at_path(&self.what, format!("empty index block VCN {vcn}")));
        }
        let succ = self.node_mut(leaf).entries.remove(0);
        let succ_name = succ.name();
        let target = self.node_mut(id);
        let sub = target.entries[pos].sub;
        target.entries[pos] = Entry { sub, ..succ };
        if self.node(leaf).entries.is_empty() {
            self.drop_empty(vol, up, clusters, spath)?;
        }
        // The new key may be longer than the old one: the node holding it may overflow.
        let (path, _) = self.descend(vol, &succ_name, &|a, b| collate(up, a, b))?;
        self.fix_overflow(vol, clusters, path)
    }

    /// Frees the emptied block at the bottom of `path` and mends its parent: the parent's
    /// entry that pointed at it is taken out and put back into the tree; a parent left
    /// with nothing is freed in turn, and a root left so becomes a leaf.
    fn drop_empty(
        &mut self,
        vol: &Vol,
        up: &UpCase,
        clusters: &mut Bits,
        mut path: Path,
    ) -> Result<()> {
        loop {
            let (id, _) = path.pop().expect("the empty node");
            let Id::Block(vcn) = id else { return Ok(()) };
            // A freed block is written empty: readers that scan every block of the
            // allocation, not only those the bitmap marks, then find no stale names in it.
            let old = self.blocks.remove(&vcn).unwrap_or_default();
            self.blocks.insert(
                vcn,
                Node {
                    lsn: old.lsn,
                    usn: old.usn,
                    ..Node::default()
                },
            );
            self.dirty.insert(vcn);
            self.bitmap.set_range(vcn / self.vcns_per_block(), 1, false);
            let &(pid, ppos) = path.last().expect("a block has a parent");
            let parent = self.node_mut(pid);
            if ppos < parent.entries.len() {
                let e = parent.entries.remove(ppos);
                return self.insert_again(vol, up, clusters, e);
            }
            if parent.entries.is_empty() {
                parent.end_sub = None;
                if pid == Id::Root {
                    return Ok(());
                }
                continue;
            }
            let q = parent.entries.pop().expect("not empty");
            parent.end_sub = q.sub;
            return self.insert_again(vol, up, clusters, q);
        }
    }

    fn insert_again(
        &mut self,
        vol: &Vol,
        up: &UpCase,
        clusters: &mut Bits,
        e: Entry,
    ) -> Result<()> {
        let name = e.name();
        let (path, found) = self.descend(vol, &name, &|a, b| collate(up, a, b))?;
        if found {
            return Err(vol
                .ctx
                .corrupt_at_path(&self.what, "an index entry is in the tree twice"));
        }
        let &(id, pos) = path.last().expect("step");
        self.node_mut(id)
            .entries
            .insert(pos, Entry { sub: None, ..e });
        self.fix_overflow(vol, clusters, path)
    }

    /// Replaces the key of the entry named exactly `name` for record `record` (the name
    /// itself must stay: sizes, times, attributes).
    pub fn update(
        &mut self,
        vol: &Vol,
        up: &UpCase,
        name: &[u16],
        record: u64,
        key: Vec<u8>,
    ) -> Result<()> {
        let (path, found) = self.descend(vol, name, &|a, b| collate(up, a, b))?;
        let &(id, pos) = path.last().expect("step");
        if !found || self.node(id).entries[pos].record() != record {
            return Err(vol.ctx.corrupt_at_path(
                &self.what,
                format!(
                    "no index entry {} for record {record}",
                    String::from_utf16_lossy(name)
                ),
            ));
        }
        // Only the information a key duplicates from the file may change (times, sizes,
        // attributes); the parent and the name must be the file's.
        let e = &mut self.node_mut(id).entries[pos];
        let same_name =
            e.key.len() == key.len() && e.key[..8] == key[..8] && e.key[0x40..] == key[0x40..];
        if !same_name {
            return Err(vol.ctx.corrupt_at_path(
                &self.what,
                format!(
                    "the index entry {} and its file's $FILE_NAME disagree on parent or name",
                    String::from_utf16_lossy(name)
                ),
            ));
        }
        e.key = key;
        Ok(())
    }

    /// Every entry's name, name space and record, in collation order.
    pub fn names(&mut self, vol: &Vol) -> Result<Vec<(Vec<u16>, u8, u64)>> {
        let mut out = Vec::new();
        // (node, position, whether the child at the position was visited)
        let mut stack: Vec<(Id, usize, bool)> = vec![(Id::Root, 0, false)];
        let mut seen = BTreeSet::new();
        while let Some((id, i, child_done)) = stack.pop() {
            let node = self.node(id);
            if i > node.entries.len() {
                continue;
            }
            if !child_done {
                let sub = node.sub_at(i);
                stack.push((id, i, true));
                if let Some(v) = sub {
                    if !seen.insert(v) || stack.len() > MAX_DEPTH {
                        return Err(vol.ctx.corrupt_at_path(&self.what, "index loop"));
                    }
                    self.load_block(vol, v)?;
                    stack.push((Id::Block(v), 0, false));
                }
                continue;
            }
            if let Some(e) = node.entries.get(i) {
                out.push((e.name(), e.namespace(), e.record()));
            }
            stack.push((id, i + 1, false));
        }
        Ok(out)
    }

    /// Puts the new `$INDEX_ROOT` (and `$INDEX_ALLOCATION` and `$BITMAP` when they
    /// changed) into the directory's records in the MFT cache; refuses, before anything is
    /// written, when they do not fit.
    pub fn stage_records(&mut self, vol: &Vol, mft: &mut Mft) -> Result<()> {
        let ctx = vol.ctx.clone();
        let what = self.what.clone();
        let no_room = |e: crate::Error| {
            if matches!(e.kind, crate::ErrorKind::Unsupported(_)) {
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
            n.usn = crate::fs::ntfs::le::u16_at(&bytes, 0x28);
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
