//! Subkey lists, for writing: a leaf (`li` offsets, `lf` offsets with name hints, `lh`
//! offsets with name hashes) kept sorted by upper-cased name, split into an index root
//! (`ri`) of leaves when it outgrows one 4 KiB hive bin, as Windows does.

use super::alloc::Bins;
use super::base::{put_u32, u32_at};
use super::cells::{Cells, NONE};
use super::names;
use crate::Error;
use std::cmp::Ordering;

type R<T> = Result<T, Error>;

/// The kind of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `li`: offsets only.
    Li,
    /// `lf`: offsets and the first four characters of each name.
    Lf,
    /// `lh`: offsets and a hash of each name.
    Lh,
}

impl Kind {
    fn signature(self) -> &'static [u8; 2] {
        match self {
            Kind::Li => b"li",
            Kind::Lf => b"lf",
            Kind::Lh => b"lh",
        }
    }

    fn stride(self) -> usize {
        if self == Kind::Li {
            4
        } else {
            8
        }
    }

    /// Most entries a leaf of this kind holds before it is split: what fits in a cell in
    /// one 4 KiB hive bin (Windows' own limits).
    fn max(self) -> usize {
        (4096 - 32 - 4 - 4) / self.stride()
    }

    /// The leaf kind Windows writes for a hive of this minor version.
    pub fn for_minor(minor: u32) -> Kind {
        match minor {
            0..=2 => Kind::Li,
            3 | 4 => Kind::Lf,
            _ => Kind::Lh,
        }
    }

    fn hash(self, name: &str) -> u32 {
        match self {
            Kind::Li => 0,
            Kind::Lf => names::lf_hint(name),
            Kind::Lh => names::lh_hash(name),
        }
    }
}

fn err<T>(offset: u32, what: impl Into<String>) -> R<T> {
    Err(Error::Cell {
        offset,
        what: what.into(),
    })
}

/// A leaf read into memory: (key node, hash or hint) pairs.
struct Leaf {
    offset: u32,
    kind: Kind,
    entries: Vec<(u32, u32)>,
}

enum List {
    Leaf(Leaf),
    Root(Vec<u32>),
}

fn read(bins: &Bins, offset: u32) -> R<List> {
    let c = Cells::new(&bins.bytes).cell(offset)?;
    if c.len() < 4 {
        return err(offset, "subkey list too short");
    }
    let count = u16::from_le_bytes([c[2], c[3]]) as usize;
    let kind = match &c[..2] {
        b"li" => Kind::Li,
        b"lf" => Kind::Lf,
        b"lh" => Kind::Lh,
        b"ri" => {
            if 4 + count * 4 > c.len() {
                return err(offset, "index root runs past its cell");
            }
            return Ok(List::Root(
                (0..count).map(|i| u32_at(c, 4 + i * 4)).collect(),
            ));
        }
        _ => return err(offset, "not a subkey list"),
    };
    let stride = kind.stride();
    if 4 + count * stride > c.len() {
        return err(offset, "subkey list runs past its cell");
    }
    let entries = (0..count)
        .map(|i| {
            let e = 4 + i * stride;
            let hash = if stride == 8 { u32_at(c, e + 4) } else { 0 };
            (u32_at(c, e), hash)
        })
        .collect();
    Ok(List::Leaf(Leaf {
        offset,
        kind,
        entries,
    }))
}

fn read_leaf(bins: &Bins, offset: u32) -> R<Leaf> {
    match read(bins, offset)? {
        List::Leaf(l) => Ok(l),
        List::Root(_) => err(offset, "an index root inside an index root"),
    }
}

/// Writes a list cell: in place when the cell is large enough, else into a new cell (the
/// old one freed). Returns where it now is.
fn write(bins: &mut Bins, old: u32, sig: &[u8; 2], items: &[(u32, u32)], stride: usize) -> R<u32> {
    let len = 4 + items.len() * stride;
    let fits = old != NONE && Cells::new(&bins.bytes).cell(old)?.len() >= len;
    let at = if fits {
        old
    } else {
        let new = bins.alloc(len)?;
        if old != NONE {
            bins.free(old)?;
        }
        new
    };
    let c = bins.cell_mut(at)?;
    c[..2].copy_from_slice(sig);
    c[2..4].copy_from_slice(&(items.len() as u16).to_le_bytes());
    for (i, (off, hash)) in items.iter().enumerate() {
        put_u32(c, 4 + i * stride, *off);
        if stride == 8 {
            put_u32(c, 8 + i * stride, *hash);
        }
    }
    Ok(at)
}

fn write_leaf(bins: &mut Bins, leaf: &Leaf) -> R<u32> {
    let k = leaf.kind;
    write(bins, leaf.offset, k.signature(), &leaf.entries, k.stride())
}

fn write_root(bins: &mut Bins, old: u32, leaves: &[u32]) -> R<u32> {
    let items: Vec<(u32, u32)> = leaves.iter().map(|l| (*l, 0)).collect();
    write(bins, old, b"ri", &items, 4)
}

fn name_of(bins: &Bins, nk: u32) -> R<String> {
    Ok(Cells::new(&bins.bytes).nk(nk)?.name)
}

/// Where `name` goes in a sorted leaf; an error if a key of that name is already there.
fn position(bins: &Bins, leaf: &Leaf, name: &str) -> R<usize> {
    let (mut lo, mut hi) = (0, leaf.entries.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        match names::compare(&name_of(bins, leaf.entries[mid].0)?, name) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return err(leaf.offset, format!("a subkey {name} exists")),
        }
    }
    Ok(lo)
}

/// Inserts the key node `child` named `name` into the subkey list at `list` (`NONE` for a
/// key with no subkeys yet, then a `kind` leaf is made). Returns the list's offset, which
/// moves when the list outgrows its cell.
pub fn insert(bins: &mut Bins, list: u32, kind: Kind, child: u32, name: &str) -> R<u32> {
    if list == NONE {
        let leaf = Leaf {
            offset: NONE,
            kind,
            entries: vec![(child, kind.hash(name))],
        };
        return write_leaf(bins, &leaf);
    }
    match read(bins, list)? {
        List::Leaf(mut leaf) => {
            let at = position(bins, &leaf, name)?;
            leaf.entries.insert(at, (child, leaf.kind.hash(name)));
            if leaf.entries.len() <= leaf.kind.max() {
                return write_leaf(bins, &leaf);
            }
            let (a, b) = split(bins, leaf)?;
            write_root(bins, NONE, &[a, b])
        }
        List::Root(mut leaves) => {
            if leaves.is_empty() {
                return err(list, "empty index root");
            }
            let mut i = leaves.len() - 1;
            for (n, l) in leaves.iter().enumerate() {
                let leaf = read_leaf(bins, *l)?;
                let Some(last) = leaf.entries.last() else {
                    return err(*l, "empty leaf in an index root");
                };
                if names::compare(&name_of(bins, last.0)?, name) != Ordering::Less {
                    i = n;
                    break;
                }
            }
            let mut leaf = read_leaf(bins, leaves[i])?;
            let at = position(bins, &leaf, name)?;
            leaf.entries.insert(at, (child, leaf.kind.hash(name)));
            if leaf.entries.len() <= leaf.kind.max() {
                leaves[i] = write_leaf(bins, &leaf)?;
            } else {
                let (a, b) = split(bins, leaf)?;
                leaves[i] = a;
                leaves.insert(i + 1, b);
            }
            if leaves.len() > u16::MAX as usize {
                return err(list, "index root full");
            }
            write_root(bins, list, &leaves)
        }
    }
}

/// Splits an overfull leaf in two halves: the first stays where it was, the second is new.
/// Below an index root, Windows keeps `lh` leaves but turns `lf` leaves into `li`.
fn split(bins: &mut Bins, mut leaf: Leaf) -> R<(u32, u32)> {
    if leaf.kind == Kind::Lf {
        leaf.kind = Kind::Li;
    }
    let half = leaf.entries.len() / 2;
    let second = Leaf {
        offset: NONE,
        kind: leaf.kind,
        entries: leaf.entries.split_off(half),
    };
    let a = write_leaf(bins, &leaf)?;
    let b = write_leaf(bins, &second)?;
    Ok((a, b))
}

/// Removes the key node `child` from the subkey list at `list`. Returns the list's offset,
/// or `NONE` when it became empty and was freed.
pub fn remove(bins: &mut Bins, list: u32, child: u32) -> R<u32> {
    match read(bins, list)? {
        List::Leaf(mut leaf) => {
            let Some(at) = leaf.entries.iter().position(|e| e.0 == child) else {
                return err(
                    list,
                    format!("key node {child:#x} is not in its parent's list"),
                );
            };
            leaf.entries.remove(at);
            if leaf.entries.is_empty() {
                bins.free(list)?;
                return Ok(NONE);
            }
            write_leaf(bins, &leaf)
        }
        List::Root(mut leaves) => {
            for i in 0..leaves.len() {
                let mut leaf = read_leaf(bins, leaves[i])?;
                let Some(at) = leaf.entries.iter().position(|e| e.0 == child) else {
                    continue;
                };
                leaf.entries.remove(at);
                if leaf.entries.is_empty() {
                    bins.free(leaves[i])?;
                    leaves.remove(i);
                } else {
                    write_leaf(bins, &leaf)?;
                }
                if leaves.is_empty() {
                    bins.free(list)?;
                    return Ok(NONE);
                }
                return write_root(bins, list, &leaves);
            }
            err(
                list,
                format!("key node {child:#x} is not in its parent's list"),
            )
        }
    }
}

/// Every list cell of a subkey list (the index root and its leaves), for freeing.
pub fn cells_of(bins: &Bins, list: u32) -> R<Vec<u32>> {
    if list == NONE {
        return Ok(Vec::new());
    }
    let mut out = vec![list];
    if let List::Root(leaves) = read(bins, list)? {
        for l in &leaves {
            read_leaf(bins, *l)?;
        }
        out.extend(leaves);
    }
    Ok(out)
}
