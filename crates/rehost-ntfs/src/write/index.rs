//! Editing a directory's `$I30` B+ tree: entries inserted (nodes split at their median,
//! the root moved into a new INDX block when it outgrows its record), removed (an internal
//! entry replaced by its successor, an emptied block freed and its parent's entry put back
//! into the tree, as ntfs-3g does), and updated in place (sizes and times of a name).
//!
//! Keys collate by their names upper-cased through `$UpCase`, code unit by code unit, the
//! shorter first; names equal but for case then collate by their code units.
//!
//! Nodes are loaded on demand and kept until the operation commits: then
//! [`Tree::stage_records`] puts the new `$INDEX_ROOT` (and `$INDEX_ALLOCATION` and
//! `$BITMAP` when they changed) into the directory's record in the MFT cache and
//! [`Tree::write_blocks`] writes the changed blocks ([`super::index_store`]).

use super::bitmap::Bits;
use super::io::Vol;
use super::mft::Place;
use super::node::{block_capacity, Entry, Node};
use super::record::Sizes;
use crate::index::MAX_DEPTH;
use crate::runlist::Run;
use crate::upcase::UpCase;
use rehost_core::error::Result;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// A node of the tree: the root or the INDX block at a VCN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Id {
    Root,
    Block(u64),
}

/// A path from the root: each node and the position taken in it.
pub(super) type Path = Vec<(Id, usize)>;

/// A directory index being edited.
pub struct Tree {
    pub(super) what: String,
    pub(super) head: [u8; 16],
    pub(super) root: Node,
    pub(super) root_rec: u64,
    pub(super) root_cap: usize,
    pub(super) root_dirty: bool,
    pub(super) blocks: BTreeMap<u64, Node>,
    pub(super) dirty: BTreeSet<u64>,
    pub(super) block_size: usize,
    pub(super) vcn_shift: u32,
    pub(super) alloc: Option<Alloc>,
    pub(super) alloc_changed: bool,
    pub(super) bitmap: Bits,
    pub(super) bitmap_dirty: bool,
    pub(super) bitmap_place: Place,
    pub(super) bitmap_rec: u64,
}

/// `$INDEX_ALLOCATION`: the INDX blocks' runs.
pub(super) struct Alloc {
    pub(super) runs: Vec<Run>,
    pub(super) sizes: Sizes,
    pub(super) record: u64,
    /// Split over several records (readable, not growable).
    pub(super) split: bool,
}

/// Collation of `$I30` keys: by upper case, then by code unit.
pub fn collate(up: &UpCase, a: &[u16], b: &[u16]) -> Ordering {
    up.cmp(a, b).then_with(|| a.cmp(b))
}

impl Tree {
    pub(super) fn vcns_per_block(&self) -> u64 {
        (self.block_size as u64) >> self.vcn_shift
    }

    pub(super) fn node(&self, id: Id) -> &Node {
        match id {
            Id::Root => &self.root,
            Id::Block(v) => &self.blocks[&v],
        }
    }

    pub(super) fn node_mut(&mut self, id: Id) -> &mut Node {
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
}
