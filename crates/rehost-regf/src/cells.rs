//! Cells of the hive bins data: key nodes (`nk`), values (`vk`), subkey lists (`li`, `lf`,
//! `lh`, `ri`), value lists and big data (`db`). rehost's own reader, used where nt-hive
//! cannot go (raw value types above 0x0B, the offsets an editor needs); every access is
//! bounds-checked.

use super::base::{u32_at, BASE};
use crate::Error;

/// A cell offset that points nowhere.
pub const NONE: u32 = 0xFFFF_FFFF;
/// Key node flag: the name is ASCII (Latin-1), not UTF-16.
pub const KEY_COMP_NAME: u16 = 0x0020;
/// Value flag: the name is ASCII (Latin-1).
pub const VALUE_COMP_NAME: u16 = 0x0001;
/// Largest data a single cell holds before big data (`db`) is used.
pub const BIG_DATA_THRESHOLD: usize = 16344;

type R<T> = Result<T, Error>;

fn err<T>(offset: u32, what: impl Into<String>) -> R<T> {
    Err(Error::Cell {
        offset,
        what: what.into(),
    })
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .unwrap_or(0)
}

/// A key node.
#[derive(Debug, Clone)]
pub struct Nk {
    /// Its cell offset.
    pub offset: u32,
    /// Flags (0x20 ASCII name, 0x04 root, ...).
    pub flags: u16,
    /// Parent key node.
    pub parent: u32,
    /// Number of (stable) subkeys.
    pub subkey_count: u32,
    /// Subkey list cell.
    pub subkey_list: u32,
    /// Number of values.
    pub value_count: u32,
    /// Value list cell.
    pub value_list: u32,
    /// Security cell.
    pub security: u32,
    /// Class name cell.
    pub class: u32,
    /// The name.
    pub name: String,
}

/// A value.
#[derive(Debug, Clone)]
pub struct Vk {
    /// Its cell offset.
    pub offset: u32,
    /// The name ("" for the default value).
    pub name: String,
    /// Registry type number, as stored.
    pub kind: u32,
    /// Data size field (high bit set: data inline in `data_offset`).
    pub data_size: u32,
    /// Data cell, or the data itself when inline.
    pub data_offset: u32,
}

/// Latin-1 or UTF-16LE bytes of a name.
pub fn decode_name(b: &[u8], ascii: bool) -> String {
    if ascii {
        b.iter().map(|c| *c as char).collect()
    } else {
        let u: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&u)
    }
}

/// The hive bins data of a hive, read cell by cell.
pub struct Cells<'a> {
    data: &'a [u8],
    big_data: bool,
}

impl<'a> Cells<'a> {
    /// The cells of a whole hive file (base block included). Its minor version says whether
    /// data above 16344 bytes is in big data records (1.4 and later) or in one cell.
    pub fn new(hive: &'a [u8]) -> Self {
        Cells {
            data: hive.get(BASE..).unwrap_or(&[]),
            big_data: u32_at(hive, 24) > 3,
        }
    }

    /// The bytes of the cell at `offset`, without its size field. Allocated cells have a
    /// negative size; a free cell is an error here.
    pub fn cell(&self, offset: u32) -> R<&'a [u8]> {
        let o = offset as usize;
        if offset == NONE || o % 8 != 0 || o + 4 > self.data.len() {
            return err(offset, "offset outside the hive bins");
        }
        let size = u32_at(self.data, o) as i32;
        if size >= 0 {
            return err(offset, "cell is free");
        }
        let len = size.unsigned_abs() as usize;
        if len < 8 || o + len > self.data.len() {
            return err(
                offset,
                format!("cell of {len} bytes runs past the hive bins"),
            );
        }
        Ok(&self.data[o + 4..o + len])
    }

    /// The key node at `offset`.
    pub fn nk(&self, offset: u32) -> R<Nk> {
        let c = self.cell(offset)?;
        if c.len() < 76 || &c[..2] != b"nk" {
            return err(offset, "not a key node");
        }
        let flags = u16_at(c, 2);
        let name_len = u16_at(c, 72) as usize;
        let Some(name) = c.get(76..76 + name_len) else {
            return err(offset, "key name runs past its cell");
        };
        Ok(Nk {
            offset,
            flags,
            parent: u32_at(c, 16),
            subkey_count: u32_at(c, 20),
            subkey_list: u32_at(c, 28),
            value_count: u32_at(c, 36),
            value_list: u32_at(c, 40),
            security: u32_at(c, 44),
            class: u32_at(c, 48),
            name: decode_name(name, flags & KEY_COMP_NAME != 0),
        })
    }

    /// The stored name of the key node at `offset` and whether it is Latin-1 (else
    /// UTF-16LE), without decoding it.
    pub fn nk_name(&self, offset: u32) -> R<(&'a [u8], bool)> {
        let c = self.cell(offset)?;
        if c.len() < 76 || &c[..2] != b"nk" {
            return err(offset, "not a key node");
        }
        let name_len = u16_at(c, 72) as usize;
        match c.get(76..76 + name_len) {
            Some(n) => Ok((n, u16_at(c, 2) & KEY_COMP_NAME != 0)),
            None => err(offset, "key name runs past its cell"),
        }
    }

    /// The value at `offset`.
    pub fn vk(&self, offset: u32) -> R<Vk> {
        let c = self.cell(offset)?;
        if c.len() < 20 || &c[..2] != b"vk" {
            return err(offset, "not a value");
        }
        let name_len = u16_at(c, 2) as usize;
        let flags = u16_at(c, 16);
        let Some(name) = c.get(20..20 + name_len) else {
            return err(offset, "value name runs past its cell");
        };
        Ok(Vk {
            offset,
            name: decode_name(name, flags & VALUE_COMP_NAME != 0),
            kind: u32_at(c, 12),
            data_size: u32_at(c, 4),
            data_offset: u32_at(c, 8),
        })
    }

    /// The subkey cells of a key node, in list order. Index roots are followed one level
    /// (the format allows no more).
    pub fn subkeys(&self, nk: &Nk) -> R<Vec<u32>> {
        if nk.subkey_count == 0 || nk.subkey_list == NONE {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.list(nk.subkey_list, true, &mut out)?;
        Ok(out)
    }

    fn list(&self, offset: u32, root_allowed: bool, out: &mut Vec<u32>) -> R<()> {
        let c = self.cell(offset)?;
        if c.len() < 4 {
            return err(offset, "subkey list too short");
        }
        let count = u16_at(c, 2) as usize;
        let (stride, sig) = match &c[..2] {
            b"li" => (4, "li"),
            b"ri" if root_allowed => (4, "ri"),
            b"lf" | b"lh" => (8, "lf"),
            _ => return err(offset, "not a subkey list"),
        };
        if 4 + count * stride > c.len() {
            return err(offset, format!("{count} list entries run past their cell"));
        }
        for i in 0..count {
            let item = u32_at(c, 4 + i * stride);
            if sig == "ri" {
                self.list(item, false, out)?;
            } else {
                out.push(item);
            }
        }
        Ok(())
    }

    /// The subkey cells of a key node with the `lh` hash of each one's name (as the list
    /// stores it), when every leaf of its list is an `lh` list; `None` otherwise (`li` and
    /// `lf` lists carry no hash).
    pub fn hashed_subkeys(&self, nk: &Nk) -> R<Option<Vec<(u32, u32)>>> {
        if nk.subkey_count == 0 || nk.subkey_list == NONE {
            return Ok(Some(Vec::new()));
        }
        let mut out = Vec::new();
        let c = self.cell(nk.subkey_list)?;
        let leaves: Vec<u32> = if c.get(..2) == Some(b"ri") {
            let count = u16_at(c, 2) as usize;
            if 4 + count * 4 > c.len() {
                return err(
                    nk.subkey_list,
                    format!("{count} list entries run past their cell"),
                );
            }
            (0..count).map(|i| u32_at(c, 4 + i * 4)).collect()
        } else {
            vec![nk.subkey_list]
        };
        for leaf in leaves {
            let l = self.cell(leaf)?;
            if l.get(..2) != Some(b"lh") {
                return Ok(None);
            }
            let count = u16_at(l, 2) as usize;
            if 4 + count * 8 > l.len() {
                return err(leaf, format!("{count} list entries run past their cell"));
            }
            out.extend((0..count).map(|i| (u32_at(l, 4 + i * 8), u32_at(l, 8 + i * 8))));
        }
        Ok(Some(out))
    }

    /// The value cells of a key node.
    pub fn values(&self, nk: &Nk) -> R<Vec<u32>> {
        if nk.value_count == 0 || nk.value_list == NONE {
            return Ok(Vec::new());
        }
        let c = self.cell(nk.value_list)?;
        let n = nk.value_count as usize;
        if n * 4 > c.len() {
            return err(
                nk.value_list,
                format!("{n} values run past the value list cell"),
            );
        }
        Ok((0..n).map(|i| u32_at(c, i * 4)).collect())
    }

    /// The data of a value: inline, in one cell, or in big data segments.
    pub fn data(&self, vk: &Vk) -> R<Vec<u8>> {
        let inline = vk.data_size & 0x8000_0000 != 0;
        let size = (vk.data_size & 0x7FFF_FFFF) as usize;
        if inline {
            let bytes = vk.data_offset.to_le_bytes();
            return Ok(bytes[..size.min(4)].to_vec());
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let c = self.cell(vk.data_offset)?;
        if self.big_data && size > BIG_DATA_THRESHOLD {
            if c.len() < 8 || &c[..2] != b"db" {
                return err(vk.data_offset, "big data record expected");
            }
            let segments = u16_at(c, 2) as usize;
            let list = self.cell(u32_at(c, 4))?;
            if segments * 4 > list.len() {
                return err(vk.data_offset, "big data segment list runs past its cell");
            }
            let mut out = Vec::with_capacity(size.min(segments * BIG_DATA_THRESHOLD));
            for i in 0..segments {
                let seg = self.cell(u32_at(list, i * 4))?;
                let take = (size - out.len()).min(seg.len()).min(BIG_DATA_THRESHOLD);
                out.extend_from_slice(&seg[..take]);
            }
            if out.len() != size {
                return err(
                    vk.data_offset,
                    format!("big data holds {} of {size} bytes", out.len()),
                );
            }
            return Ok(out);
        }
        match c.get(..size) {
            Some(d) => Ok(d.to_vec()),
            None => err(
                vk.data_offset,
                format!("{size} bytes of data run past their cell"),
            ),
        }
    }

    /// The root key node of the hive (from the base block's root cell offset).
    pub fn root(&self, hive: &[u8]) -> R<Nk> {
        self.nk(u32_at(hive, 36))
    }

    /// The key node at a `\`-separated path below `from` (case-insensitive), if it exists.
    pub fn find(&self, from: &Nk, path: &str) -> R<Option<Nk>> {
        let mut cur = from.clone();
        for comp in path.split('\\').filter(|c| !c.is_empty()) {
            match self.child(&cur, comp)? {
                Some(k) => cur = k,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The subkey of `nk` named `name` (case-insensitive). As Windows does, `lh` hashes and
    /// `lf` hints pass over the entries that cannot match without reading their key nodes;
    /// a name beyond ASCII, whose upper case tables may differ, is looked for in every entry
    /// when the hashes find nothing.
    pub fn child(&self, nk: &Nk, name: &str) -> R<Option<Nk>> {
        if nk.subkey_count == 0 || nk.subkey_list == NONE {
            return Ok(None);
        }
        let mut leaves = Vec::new();
        let top = self.cell(nk.subkey_list)?;
        if top.len() >= 4 && &top[..2] == b"ri" {
            let n = u16_at(top, 2) as usize;
            if 4 + n * 4 > top.len() {
                return err(nk.subkey_list, "index root runs past its cell");
            }
            leaves.extend((0..n).map(|i| u32_at(top, 4 + i * 4)));
        } else {
            leaves.push(nk.subkey_list);
        }
        let hash = super::names::lh_hash(name);
        let hint: Option<[u8; 4]> = name.is_ascii().then(|| {
            let mut h = [0u8; 4];
            for (i, b) in name.bytes().take(4).enumerate() {
                h[i] = b.to_ascii_uppercase();
            }
            h
        });
        for pass in 0..2 {
            if pass == 1 && name.is_ascii() {
                break;
            }
            for &leaf in &leaves {
                let c = self.cell(leaf)?;
                if c.len() < 4 {
                    return err(leaf, "subkey list too short");
                }
                let n = u16_at(c, 2) as usize;
                let stride = match &c[..2] {
                    b"li" => 4,
                    b"lf" | b"lh" => 8,
                    _ => return err(leaf, "not a subkey list"),
                };
                if 4 + n * stride > c.len() {
                    return err(leaf, format!("{n} list entries run past their cell"));
                }
                for i in 0..n {
                    let e = 4 + i * stride;
                    if pass == 0 && stride == 8 {
                        let stored = u32_at(c, e + 4);
                        let skip = match (&c[..2], hint) {
                            (b"lh", _) => stored != hash,
                            (b"lf", Some(h)) => {
                                let s = stored.to_le_bytes().map(|b| b.to_ascii_uppercase());
                                s != h
                            }
                            _ => false,
                        };
                        if skip {
                            continue;
                        }
                    }
                    let k = self.nk(u32_at(c, e))?;
                    if super::names::compare(&k.name, name).is_eq() {
                        return Ok(Some(k));
                    }
                }
            }
        }
        Ok(None)
    }
}
