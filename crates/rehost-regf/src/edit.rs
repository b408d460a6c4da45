//! Editing a hive in memory: keys created and deleted (this file) and values set and
//! deleted (`values.rs`), through one cell allocator; saving writes a clean base block.
//!
//! The hive must be clean: a dirty one is replayed first (`replay.rs`), as Windows would,
//! since editing its primary file alone would drop the changes waiting in its logs.

use super::alloc::Bins;
use super::base::{checksum, put_u32, u32_at, BaseBlock, BASE};
use super::cells::{Cells, Nk, KEY_COMP_NAME, NONE};
use super::lists::{self, Kind};
use super::names;
use crate::Error;
use std::collections::HashSet;

pub(super) type R<T> = Result<T, Error>;

/// Key node fields, as offsets in the cell's data.
pub(super) mod nk {
    pub const TIMESTAMP: usize = 4;
    pub const PARENT: usize = 16;
    pub const SUBKEY_COUNT: usize = 20;
    pub const SUBKEY_LIST: usize = 28;
    pub const VOLATILE_LIST: usize = 32;
    pub const VALUE_COUNT: usize = 36;
    pub const VALUE_LIST: usize = 40;
    pub const SECURITY: usize = 44;
    pub const CLASS: usize = 48;
    pub const MAX_SUBKEY_NAME: usize = 52;
    pub const MAX_VALUE_NAME: usize = 60;
    pub const MAX_VALUE_DATA: usize = 64;
    pub const NAME_LEN: usize = 72;
    pub const NAME: usize = 76;
}

/// Security cell (`sk`) fields.
mod sk {
    pub const FLINK: usize = 4;
    pub const BLINK: usize = 8;
    pub const REFERENCES: usize = 12;
}

/// Deepest key tree a recursive delete walks.
const MAX_DEPTH: usize = 512;

pub(super) fn err<T>(offset: u32, what: impl Into<String>) -> R<T> {
    Err(Error::Cell {
        offset,
        what: what.into(),
    })
}

/// A hive open for editing.
pub struct Editor {
    pub(super) bins: Bins,
    pub(super) minor: u32,
}

pub use rehost_core::time::filetime_now;

impl Editor {
    /// Opens a whole hive file for editing. A dirty hive is refused: replay its logs first.
    pub fn open(bytes: Vec<u8>) -> R<Editor> {
        Self::open_at(bytes, filetime_now())
    }

    /// [`Editor::open`], the keys written and the base block stamped with `now` (a
    /// FILETIME) rather than the clock: for a caller that must make the same bytes each
    /// time (a store built for a dry run and again for the write).
    pub fn open_at(bytes: Vec<u8>, now: u64) -> R<Editor> {
        let Some(base) = BaseBlock::read(&bytes) else {
            return err(0, "not a hive: no regf base block");
        };
        if base.dirty() {
            return err(
                0,
                "the hive is dirty: its transaction logs must be replayed before it is edited",
            );
        }
        let minor = u32_at(&bytes, 24);
        if u32_at(&bytes, 20) != 1 || minor > 6 {
            return err(
                0,
                format!("hive version 1.{minor} is not one rehost writes"),
            );
        }
        let bins = Bins::load(bytes, now)?;
        let editor = Editor { bins, minor };
        editor.root()?;
        Ok(editor)
    }

    /// The cells, for reading.
    pub fn cells(&self) -> Cells<'_> {
        Cells::new(&self.bins.bytes)
    }

    /// The root key node.
    pub fn root(&self) -> R<Nk> {
        self.cells().root(&self.bins.bytes)
    }

    /// The key node at `path` (below the root, `\`-separated, case-insensitive).
    pub fn find(&self, path: &str) -> R<Option<Nk>> {
        self.cells().find(&self.root()?, path)
    }

    /// Walks the whole key tree the way Windows checks a hive it loads: every key node,
    /// subkey list, value list, value and data cell must read, and no key may be reached
    /// twice. Returns the number of keys. An editor should refuse a hive that fails: an edit
    /// would carry its damage into a hive that otherwise looks sound.
    pub fn check(&self) -> R<usize> {
        let cells = self.cells();
        let starts = self.bins.cell_starts();
        // A cell the tree uses must be a cell of its bin, allocated: one that starts inside
        // another, or inside free space, would be overwritten by the next edit (of it, or
        // of what the allocator hands out there). And it must have one owner: a list, value
        // or data cell that two keys or values name would be freed by an edit of one while
        // the other still points at it. Only security cells are shared (they count their
        // references).
        let mut owned = HashSet::new();
        let mut use_cell = |c: u32, shared: bool| {
            if self.bins.in_free(c) {
                err(c, "a cell in use lies inside a free cell")
            } else if !starts.contains(c) {
                err(
                    c,
                    "a cell in use does not start where a cell of its hive bin does",
                )
            } else if !shared && !owned.insert(c) {
                err(
                    c,
                    "a cell is named by two owners (a key node, list, value or data cell reached twice)",
                )
            } else {
                Ok(())
            }
        };
        let mut seen = HashSet::new();
        let mut stack = vec![(self.root()?, 0usize)];
        while let Some((k, depth)) = stack.pop() {
            if !seen.insert(k.offset) || depth > MAX_DEPTH {
                return err(k.offset, "key tree loops back on itself or is too deep");
            }
            let lists = [
                (k.subkey_count > 0).then_some((k.subkey_list, false)),
                (k.value_count > 0).then_some((k.value_list, false)),
                (k.security != NONE).then_some((k.security, true)),
            ];
            for (c, shared) in lists.into_iter().flatten().chain([(k.offset, false)]) {
                use_cell(c, shared)?;
            }
            for v in cells.values(&k)? {
                use_cell(v, false)?;
                let vk = cells.vk(v)?;
                if vk.data_size & 0x8000_0000 == 0 && vk.data_size & 0x7FFF_FFFF > 0 {
                    use_cell(vk.data_offset, false)?;
                }
                cells.data(&vk)?;
            }
            for c in cells.subkeys(&k)? {
                let child = cells.nk(c)?;
                if child.parent != k.offset {
                    return err(
                        c,
                        format!(
                            "key node's parent is {:#x}, not {:#x}",
                            child.parent, k.offset
                        ),
                    );
                }
                stack.push((child, depth + 1));
            }
            if cells.subkeys(&k)?.len() != k.subkey_count as usize {
                return err(k.offset, "subkey count does not match its list");
            }
        }
        Ok(seen.len())
    }

    /// The hive's minor version (3 to 6).
    pub fn minor(&self) -> u32 {
        self.minor
    }

    /// Bytes in free cells.
    pub fn free_bytes(&self) -> u64 {
        self.bins.free_bytes()
    }

    pub(super) fn field(&self, cell: u32, at: usize) -> R<u32> {
        let c = self.cells().cell(cell)?;
        match c.get(at..at + 4) {
            Some(_) => Ok(u32_at(c, at)),
            None => err(cell, "cell too short for its fields"),
        }
    }

    pub(super) fn set_field(&mut self, cell: u32, at: usize, v: u32) -> R<()> {
        let c = self.bins.cell_mut(cell)?;
        if c.len() < at + 4 {
            return err(cell, "cell too short for its fields");
        }
        put_u32(c, at, v);
        Ok(())
    }

    /// Marks a key node as written now.
    pub(super) fn touch(&mut self, key: u32) -> R<()> {
        let now = self.bins.now;
        let c = self.bins.cell_mut(key)?;
        c[nk::TIMESTAMP..nk::TIMESTAMP + 8].copy_from_slice(&now.to_le_bytes());
        Ok(())
    }

    /// Raises a maximum field of a key node to `v` (the low 16 bits only for the subkey
    /// name, whose high bits hold flags).
    pub(super) fn raise(&mut self, key: u32, at: usize, v: u32) -> R<()> {
        let cur = self.field(key, at)?;
        let new = if at == nk::MAX_SUBKEY_NAME {
            let len = (cur & 0xFFFF).max(v.min(0xFFFF));
            (cur & !0xFFFF) | len
        } else {
            cur.max(v)
        };
        self.set_field(key, at, new)
    }

    /// Resolves a path, creating every missing key on the way. Returns the key node and
    /// whether it was created.
    pub fn create_key(&mut self, path: &str) -> R<(u32, bool)> {
        let mut cur = self.root()?;
        let mut created = false;
        for comp in path.split('\\').filter(|c| !c.is_empty()) {
            let found = self.cells().find(&cur, comp)?;
            cur = match found {
                Some(k) => k,
                None => {
                    created = true;
                    let off = self.create_subkey(&cur, comp)?;
                    self.cells().nk(off)?
                }
            };
        }
        Ok((cur.offset, created))
    }

    /// Creates the key `name` below `parent`: a key node with the parent's security
    /// descriptor (its reference count raised), inserted in sorted order.
    fn create_subkey(&mut self, parent: &Nk, name: &str) -> R<u32> {
        if !names::valid_key_name(name) {
            return err(parent.offset, format!("{name:?} is not a valid key name"));
        }
        let (stored, ascii) = names::encode(name);
        let key = self.bins.alloc(nk::NAME + stored.len())?;
        let now = self.bins.now;
        {
            let c = self.bins.cell_mut(key)?;
            c[..2].copy_from_slice(b"nk");
            let flags = if ascii { KEY_COMP_NAME } else { 0 };
            c[2..4].copy_from_slice(&flags.to_le_bytes());
            c[nk::TIMESTAMP..nk::TIMESTAMP + 8].copy_from_slice(&now.to_le_bytes());
            put_u32(c, nk::PARENT, parent.offset);
            for at in [
                nk::SUBKEY_LIST,
                nk::VOLATILE_LIST,
                nk::VALUE_LIST,
                nk::CLASS,
            ] {
                put_u32(c, at, NONE);
            }
            put_u32(c, nk::SECURITY, parent.security);
            c[nk::NAME_LEN..nk::NAME_LEN + 2].copy_from_slice(&(stored.len() as u16).to_le_bytes());
            c[nk::NAME..nk::NAME + stored.len()].copy_from_slice(&stored);
        }
        if parent.security != NONE {
            let sig = self.cells().cell(parent.security)?;
            if sig.len() < 20 || &sig[..2] != b"sk" {
                return err(parent.security, "not a security cell");
            }
            let refs = self.field(parent.security, sk::REFERENCES)?;
            self.set_field(parent.security, sk::REFERENCES, refs.saturating_add(1))?;
        }
        let kind = Kind::for_minor(self.minor);
        // A key that counts no subkeys may still name a list (left behind, or another
        // key's): Windows reads no list then, and the editor starts a new one.
        let current = if parent.subkey_count == 0 {
            NONE
        } else {
            parent.subkey_list
        };
        let list = lists::insert(&mut self.bins, current, kind, key, name)?;
        self.set_field(parent.offset, nk::SUBKEY_LIST, list)?;
        self.set_field(parent.offset, nk::SUBKEY_COUNT, parent.subkey_count + 1)?;
        self.raise(parent.offset, nk::MAX_SUBKEY_NAME, names::utf16_bytes(name))?;
        self.touch(parent.offset)?;
        Ok(key)
    }

    /// Deletes the key at `path` and everything below it. Returns false when there was no
    /// such key. The root cannot be deleted.
    pub fn delete_key(&mut self, path: &str) -> R<bool> {
        let Some(key) = self.find(path)? else {
            return Ok(false);
        };
        let root = self.root()?;
        if key.offset == root.offset {
            return err(key.offset, "the root key cannot be deleted");
        }
        let parent = self.cells().nk(key.parent)?;
        // Every key of the subtree, parents before children; checked before anything is
        // freed, so a damaged subtree is refused whole.
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(key.offset, 0usize)];
        while let Some((k, depth)) = stack.pop() {
            if !seen.insert(k) || depth > MAX_DEPTH {
                return err(k, "key tree loops back on itself or is too deep");
            }
            let n = self.cells().nk(k)?;
            for c in self.cells().subkeys(&n)? {
                stack.push((c, depth + 1));
            }
            self.cells().values(&n)?;
            order.push(n);
        }
        let list = lists::remove(&mut self.bins, parent.subkey_list, key.offset)?;
        self.set_field(parent.offset, nk::SUBKEY_LIST, list)?;
        self.set_field(
            parent.offset,
            nk::SUBKEY_COUNT,
            parent.subkey_count.saturating_sub(1),
        )?;
        self.touch(parent.offset)?;
        for n in order.iter().rev() {
            self.free_key(n)?;
        }
        Ok(true)
    }

    /// Frees a key node with its values, lists, class name and its share of its security
    /// descriptor.
    fn free_key(&mut self, n: &Nk) -> R<()> {
        for v in self.cells().values(n)? {
            self.free_value(v)?;
        }
        if n.value_list != NONE && n.value_count > 0 {
            self.bins.free(n.value_list)?;
        }
        if n.subkey_count > 0 {
            for l in lists::cells_of(&self.bins, n.subkey_list)? {
                self.bins.free(l)?;
            }
        }
        if n.class != NONE {
            self.bins.free(n.class)?;
        }
        if n.security != NONE {
            self.release_security(n.security)?;
        }
        self.bins.free(n.offset)
    }

    /// Drops one reference to a security cell; the last one unlinks and frees it.
    fn release_security(&mut self, cell: u32) -> R<()> {
        let refs = self.field(cell, sk::REFERENCES)?;
        if refs > 1 {
            return self.set_field(cell, sk::REFERENCES, refs - 1);
        }
        let flink = self.field(cell, sk::FLINK)?;
        let blink = self.field(cell, sk::BLINK)?;
        if flink == cell || blink == cell {
            return err(
                cell,
                "the last security descriptor of the hive would be freed",
            );
        }
        self.set_field(blink, sk::FLINK, flink)?;
        self.set_field(flink, sk::BLINK, blink)?;
        self.bins.free(cell)
    }

    /// The hive file, clean: both sequence numbers one past the higher of the two, the
    /// timestamp now, the hive bins size and the checksum recomputed.
    pub fn save(self) -> Vec<u8> {
        self.save_beyond(0)
    }

    /// [`Editor::save`], with sequence numbers also past `floor`: the highest sequence
    /// number the hive's transaction logs hold ([`super::replay::highest_sequence`]). A
    /// clean primary makes Windows ignore its logs; being past every logged entry as well,
    /// none of them can ever be taken for one that follows the saved hive.
    pub fn save_beyond(self, floor: u32) -> Vec<u8> {
        let mut b = self.bins.bytes;
        let seq = u32_at(&b, 4).max(u32_at(&b, 8)).max(floor).wrapping_add(1);
        put_u32(&mut b, 4, seq);
        put_u32(&mut b, 8, seq);
        b[12..20].copy_from_slice(&self.bins.now.to_le_bytes());
        put_u32(&mut b, 40, self.bins.bins_size);
        let sum = checksum(&b);
        put_u32(&mut b, 508, sum);
        debug_assert_eq!(b.len(), BASE + self.bins.bins_size as usize);
        b
    }
}
