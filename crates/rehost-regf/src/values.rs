//! Values, for writing: data of four bytes or less inside the value cell itself, larger
//! data in one cell, and above 16344 bytes in a big data record (`db`, a list of 16344-byte
//! segments) where the hive's version has them (1.4 and later; older hives keep one cell,
//! as Windows does).

use super::base::put_u32;
use super::cells::{Vk, BIG_DATA_THRESHOLD, NONE, VALUE_COMP_NAME};
use super::edit::{err, nk, Editor, R};
use super::names;

/// Value cell fields, as offsets in the cell's data.
mod vk {
    pub const DATA_SIZE: usize = 4;
    pub const DATA: usize = 8;
    pub const TYPE: usize = 12;
    pub const FLAGS: usize = 16;
    pub const NAME: usize = 20;
}

/// Largest value data rehost writes.
pub const MAX_DATA: usize = 64 << 20;
/// Longest value name, in UTF-16 code units.
pub const MAX_VALUE_NAME: usize = 16383;
const INLINE: u32 = 0x8000_0000;

impl Editor {
    /// Sets the value `name` ("" for the default value) of the key at `path` (which must
    /// exist) to `data` of registry type `kind`; replaces any value of that name.
    pub fn set_value(&mut self, path: &str, name: &str, kind: u32, data: &[u8]) -> R<()> {
        let key = self.key(path)?;
        if name.encode_utf16().count() > MAX_VALUE_NAME {
            return err(key.offset, "value name longer than 16383 characters");
        }
        if data.len() > MAX_DATA {
            return err(
                key.offset,
                format!("{} bytes of data is too much", data.len()),
            );
        }
        let existing = self.value_cell(&key, name)?;
        let (size, at) = self.store(data)?;
        let cell = match existing {
            Some(old) => {
                let vk = self.cells().vk(old)?;
                self.free_data(&vk)?;
                old
            }
            None => self.new_value(&key, name)?,
        };
        self.set_field(cell, vk::DATA_SIZE, size)?;
        self.set_field(cell, vk::DATA, at)?;
        self.set_field(cell, vk::TYPE, kind)?;
        self.raise(key.offset, nk::MAX_VALUE_NAME, names::utf16_bytes(name))?;
        self.raise(key.offset, nk::MAX_VALUE_DATA, data.len() as u32)?;
        self.touch(key.offset)
    }

    /// Deletes the value `name` of the key at `path`. Returns false when there was none.
    pub fn delete_value(&mut self, path: &str, name: &str) -> R<bool> {
        let key = self.key(path)?;
        let Some(cell) = self.value_cell(&key, name)? else {
            return Ok(false);
        };
        let mut list = self.cells().values(&key)?;
        list.retain(|v| *v != cell);
        if list.is_empty() {
            self.bins.free(key.value_list)?;
            self.set_field(key.offset, nk::VALUE_LIST, NONE)?;
        } else {
            let c = self.bins.cell_mut(key.value_list)?;
            for (i, v) in list.iter().enumerate() {
                put_u32(c, i * 4, *v);
            }
        }
        self.set_field(key.offset, nk::VALUE_COUNT, list.len() as u32)?;
        self.free_value(cell)?;
        self.touch(key.offset)?;
        Ok(true)
    }

    /// The type and data of the value `name` of the key at `path`, if both exist.
    pub fn value(&self, path: &str, name: &str) -> R<Option<(u32, Vec<u8>)>> {
        let Some(key) = self.find(path)? else {
            return Ok(None);
        };
        match self.value_cell(&key, name)? {
            Some(cell) => {
                let vk = self.cells().vk(cell)?;
                Ok(Some((vk.kind, self.cells().data(&vk)?)))
            }
            None => Ok(None),
        }
    }

    fn key(&self, path: &str) -> R<super::cells::Nk> {
        match self.find(path)? {
            Some(k) => Ok(k),
            None => err(NONE, format!("no key {path}")),
        }
    }

    /// The value cell of the value `name` of a key (names compare case-insensitively).
    fn value_cell(&self, key: &super::cells::Nk, name: &str) -> R<Option<u32>> {
        for v in self.cells().values(key)? {
            if names::compare(&self.cells().vk(v)?.name, name).is_eq() {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// A new value cell named `name`, appended to the key's value list.
    fn new_value(&mut self, key: &super::cells::Nk, name: &str) -> R<u32> {
        let (stored, ascii) = names::encode(name);
        let cell = self.bins.alloc(vk::NAME + stored.len())?;
        {
            let c = self.bins.cell_mut(cell)?;
            c[..2].copy_from_slice(b"vk");
            c[2..4].copy_from_slice(&(stored.len() as u16).to_le_bytes());
            let flags = if ascii { VALUE_COMP_NAME } else { 0 };
            c[vk::FLAGS..vk::FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
            c[vk::NAME..vk::NAME + stored.len()].copy_from_slice(&stored);
        }
        let mut list = self.cells().values(key)?;
        list.push(cell);
        // A key that counts no values may still name a list (left behind, or another
        // key's): it is not written into.
        let fits = key.value_count > 0
            && key.value_list != NONE
            && self.cells().cell(key.value_list)?.len() >= list.len() * 4;
        let at = if fits {
            key.value_list
        } else {
            let new = self.bins.alloc(list.len() * 4)?;
            if key.value_list != NONE && key.value_count > 0 {
                self.bins.free(key.value_list)?;
            }
            new
        };
        let c = self.bins.cell_mut(at)?;
        for (i, v) in list.iter().enumerate() {
            put_u32(c, i * 4, *v);
        }
        self.set_field(key.offset, nk::VALUE_LIST, at)?;
        self.set_field(key.offset, nk::VALUE_COUNT, list.len() as u32)?;
        Ok(cell)
    }

    /// Stores data; returns the value cell's data size and data offset fields.
    fn store(&mut self, data: &[u8]) -> R<(u32, u32)> {
        let len = data.len() as u32;
        if data.len() <= 4 {
            let mut b = [0u8; 4];
            b[..data.len()].copy_from_slice(data);
            return Ok((len | INLINE, u32::from_le_bytes(b)));
        }
        if data.len() <= BIG_DATA_THRESHOLD || self.minor < 4 {
            let cell = self.bins.alloc(data.len())?;
            self.bins.cell_mut(cell)?[..data.len()].copy_from_slice(data);
            return Ok((len, cell));
        }
        let mut segments = Vec::new();
        for chunk in data.chunks(BIG_DATA_THRESHOLD) {
            let s = self.bins.alloc(chunk.len())?;
            self.bins.cell_mut(s)?[..chunk.len()].copy_from_slice(chunk);
            segments.push(s);
        }
        let list = self.bins.alloc(segments.len() * 4)?;
        let c = self.bins.cell_mut(list)?;
        for (i, s) in segments.iter().enumerate() {
            put_u32(c, i * 4, *s);
        }
        let db = self.bins.alloc(8)?;
        let c = self.bins.cell_mut(db)?;
        c[..2].copy_from_slice(b"db");
        c[2..4].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        put_u32(c, 4, list);
        Ok((len, db))
    }

    /// Frees a value cell and its data.
    pub(super) fn free_value(&mut self, cell: u32) -> R<()> {
        let vk = self.cells().vk(cell)?;
        self.free_data(&vk)?;
        self.bins.free(cell)
    }

    /// Frees the data cells of a value (nothing for inline data).
    fn free_data(&mut self, v: &Vk) -> R<()> {
        let size = v.data_size & !INLINE;
        if v.data_size & INLINE != 0 || size == 0 || v.data_offset == NONE {
            return Ok(());
        }
        let c = self.cells().cell(v.data_offset)?;
        let big = self.minor >= 4 && size as usize > BIG_DATA_THRESHOLD;
        if big && c.len() >= 8 && &c[..2] == b"db" {
            let count = u16::from_le_bytes([c[2], c[3]]) as usize;
            let list = super::base::u32_at(c, 4);
            let l = self.cells().cell(list)?;
            if count * 4 > l.len() {
                return err(v.data_offset, "big data segment list runs past its cell");
            }
            let segs: Vec<u32> = (0..count).map(|i| super::base::u32_at(l, i * 4)).collect();
            for s in segs {
                self.bins.free(s)?;
            }
            self.bins.free(list)?;
        }
        self.bins.free(v.data_offset)
    }
}
