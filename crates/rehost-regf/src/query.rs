//! One key read for showing: its values (name, type, data) and the names of its subkeys,
//! as stored and in list order.

use super::cells::Cells;
use crate::Error;
use serde::Serialize;

/// A key, read.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// Its path below the hive root, each component as the hive stores it.
    pub path: String,
    /// Last written, as a FILETIME (100 ns since 1601).
    pub last_written: u64,
    /// Its values in list order.
    pub values: Vec<ValueView>,
    /// Its subkeys' names in list (sorted) order.
    pub subkeys: Vec<String>,
}

/// A value, read.
#[derive(Debug, Clone, Serialize)]
pub struct ValueView {
    /// Name ("" for the default value).
    pub name: String,
    /// Registry type number.
    pub kind: u32,
    /// The data as stored.
    pub data: Vec<u8>,
}

/// The key at `path` of the hive file `hive` (case-insensitive, `\`-separated; "" is the
/// root), if it exists.
pub fn key(hive: &[u8], path: &str) -> Result<Option<KeyView>, Error> {
    let cells = Cells::new(hive);
    let mut cur = cells.root(hive)?;
    let mut stored = Vec::new();
    for comp in path.split('\\').filter(|c| !c.is_empty()) {
        match cells.find(&cur, comp)? {
            Some(k) => {
                stored.push(k.name.clone());
                cur = k;
            }
            None => return Ok(None),
        }
    }
    let raw = cells.cell(cur.offset)?;
    let last_written = raw
        .get(4..12)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .unwrap_or(0);
    let mut values = Vec::new();
    for v in cells.values(&cur)? {
        let vk = cells.vk(v)?;
        let data = cells.data(&vk)?;
        values.push(ValueView {
            name: vk.name,
            kind: vk.kind,
            data,
        });
    }
    let mut subkeys = Vec::new();
    for s in cells.subkeys(&cur)? {
        subkeys.push(cells.nk(s)?.name);
    }
    Ok(Some(KeyView {
        path: stored.join("\\"),
        last_written,
        values,
        subkeys,
    }))
}
