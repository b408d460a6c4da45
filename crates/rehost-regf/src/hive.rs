//! Registry hives, read through `nt-hive`.
//!
//! A hive whose base block says it is dirty (the two sequence numbers differ, or the
//! checksum is wrong) has changes waiting in its transaction logs. [`Hive::parse_with_logs`]
//! replays them in memory first (rehost's own code, `formats::regf`), as Windows would; when
//! there are none or they cannot be replayed, the hive is read as its primary file stands,
//! without validation, and says so ([`Hive::dirty`]).

use crate::cells::Cells;
use crate::{names, Log, Recovery};
use nt_hive::{KeyNode, KeyValueDataType};
use rehost_core::error::{Ctx, Location, Result};
use serde::Serialize;

/// Size of the base block.
pub const BASE_BLOCK: usize = 4096;

/// A hive held in memory.
pub struct Hive {
    bytes: Vec<u8>,
    ctx: Ctx,
    dirty: Option<String>,
    replayed: Option<String>,
}

/// A value's data, decoded by its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Value {
    /// REG_SZ or REG_EXPAND_SZ.
    String(String),
    /// REG_MULTI_SZ.
    MultiString(Vec<String>),
    /// REG_DWORD (or REG_DWORD_BIG_ENDIAN, converted).
    Dword(u32),
    /// REG_QWORD.
    Qword(u64),
    /// REG_BINARY and every other type: the raw bytes with the type number.
    Binary {
        /// Registry type number.
        kind: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl Value {
    /// The value as a string, when it is one (the first string of a REG_MULTI_SZ).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::MultiString(v) => v.first().map(String::as_str),
            _ => None,
        }
    }

    /// The value as a number, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Dword(d) => Some(*d as u64),
            Value::Qword(q) => Some(*q),
            _ => None,
        }
    }

    /// The raw bytes of a binary value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Binary { bytes, .. } => Some(bytes),
            _ => None,
        }
    }
}

use rehost_core::le::u32_at;

impl Hive {
    /// Parses a hive, replaying its transaction logs in memory when it is dirty. A dirty
    /// hive whose logs cannot be replayed is read as its primary file stands, and says why
    /// ([`Hive::dirty`]).
    pub fn parse_with_logs(bytes: Vec<u8>, logs: &[Log], ctx: Ctx) -> Result<Hive> {
        match crate::recover(&bytes, logs) {
            Recovery::Replayed { bytes, note } => {
                let mut h = Hive::parse(bytes, ctx)?;
                h.replayed = Some(note);
                Ok(h)
            }
            Recovery::Clean => Hive::parse(bytes, ctx),
            Recovery::Unreplayable(why) => {
                let mut h = Hive::parse(bytes, ctx)?;
                if let Some(d) = &h.dirty {
                    h.dirty = Some(format!("{d}; not replayed: {why}"));
                }
                Ok(h)
            }
        }
    }

    /// What log replay did, when the hive was dirty and its logs were replayed.
    pub fn replayed(&self) -> Option<&str> {
        self.replayed.as_deref()
    }

    /// Parses a hive as it stands; `ctx` names it in errors (the image, with the hive's
    /// path added by the caller).
    pub fn parse(bytes: Vec<u8>, ctx: Ctx) -> Result<Hive> {
        if bytes.len() < BASE_BLOCK || &bytes[..4] != b"regf" {
            return Err(ctx.corrupt(0, "not a registry hive (no \"regf\" base block)"));
        }
        let seq1 = u32_at(&bytes, 4);
        let seq2 = u32_at(&bytes, 8);
        let sum = (0..127).fold(0u32, |x, i| x ^ u32_at(&bytes, i * 4));
        let sum = match sum {
            0xFFFF_FFFF => 0xFFFF_FFFE,
            0 => 1,
            s => s,
        };
        let stored = u32_at(&bytes, 508);
        let dirty = if seq1 != seq2 {
            Some(format!(
                "sequence numbers differ ({seq1} and {seq2}): changes wait in the transaction logs"
            ))
        } else if stored != sum {
            Some(format!(
                "base block checksum {stored:#010x} does not match ({sum:#010x})"
            ))
        } else {
            None
        };
        let hive = Hive {
            bytes,
            ctx,
            dirty,
            replayed: None,
        };
        if hive.dirty.is_none() {
            nt_hive::Hive::new(&hive.bytes[..]).map_err(|e| hive.error(&e))?;
        }
        hive.root()?;
        Ok(hive)
    }

    /// Why the hive is dirty, when it is: it was read as its primary file stands.
    pub fn dirty(&self) -> Option<&str> {
        self.dirty.as_deref()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the hive holds no bytes (never true for a parsed hive).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn error(&self, e: &nt_hive::NtHiveError) -> rehost_core::Error {
        self.ctx.error(
            Location::None,
            rehost_core::ErrorKind::Corrupt(e.to_string()),
        )
    }

    fn at(&self, path: &str, e: &nt_hive::NtHiveError) -> rehost_core::Error {
        self.ctx.error(
            Location::Path(path.to_string()),
            rehost_core::ErrorKind::Corrupt(e.to_string()),
        )
    }

    fn nt(&self) -> Result<nt_hive::Hive<&[u8]>> {
        nt_hive::Hive::without_validation(&self.bytes[..]).map_err(|e| self.error(&e))
    }

    fn root(&self) -> Result<()> {
        self.guarded(Location::None, || {
            let h = self.nt()?;
            h.root_key_node().map(|_| ()).map_err(|e| self.error(&e))
        })
    }

    /// Runs a read through nt-hive, turning a panic into an error at `at`. nt-hive 0.3
    /// subtracts the cell header from a cell's size unchecked: a cell whose size field is
    /// 0 panics in a build with overflow checks (a release build wraps, and nt-hive's next
    /// bounds check refuses the cell). A damaged hive must not take the process down.
    fn guarded<T>(&self, at: Location, f: impl FnOnce() -> Result<T>) -> Result<T> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
            Err(self.ctx.error(
                at,
                rehost_core::ErrorKind::Corrupt(
                    "a cell nt-hive cannot read (a size of 0 or past the hive's end)".into(),
                ),
            ))
        })
    }

    /// Runs `f` on the key at `path` (`\`-separated, case-insensitive; "" is the root).
    /// `Ok(None)` when the key does not exist.
    pub fn with_key<T>(
        &self,
        path: &str,
        f: impl FnOnce(&KeyNode<&[u8]>) -> Result<T>,
    ) -> Result<Option<T>> {
        self.guarded(Location::Path(path.to_string()), || {
            let h = self.nt()?;
            let root = h.root_key_node().map_err(|e| self.error(&e))?;
            let trimmed = path.trim_matches('\\');
            let key = if trimmed.is_empty() {
                root
            } else {
                match root.subpath(trimmed) {
                    None => return Ok(None),
                    Some(k) => k.map_err(|e| self.at(path, &e))?,
                }
            };
            f(&key).map(Some)
        })
    }

    /// Whether the key at `path` exists.
    pub fn has_key(&self, path: &str) -> Result<bool> {
        Ok(self.with_key(path, |_| Ok(()))?.is_some())
    }

    /// The names of the subkeys of `path` (empty when the key does not exist).
    pub fn subkeys(&self, path: &str) -> Result<Vec<String>> {
        Ok(self
            .with_key(path, |k| {
                let mut out = Vec::new();
                if let Some(list) = k.subkeys() {
                    for sk in list.map_err(|e| self.at(path, &e))? {
                        let sk = sk.map_err(|e| self.at(path, &e))?;
                        out.push(sk.name().map_err(|e| self.at(path, &e))?.to_string_lossy());
                    }
                }
                Ok(out)
            })?
            .unwrap_or_default())
    }

    /// The value `name` ("" for the default value) of the key at `path`.
    pub fn value(&self, path: &str, name: &str) -> Result<Option<Value>> {
        Ok(self
            .with_key(path, |k| match k.value(name) {
                None => Ok(None),
                Some(v) => decode(&v.map_err(|e| self.at(path, &e))?, path, self).map(Some),
            })?
            .flatten())
    }

    /// Every value of the key at `path`, by name.
    pub fn values(&self, path: &str) -> Result<Vec<(String, Value)>> {
        Ok(self.key_values(path)?.unwrap_or_default())
    }

    /// Every value of the key at `path`, by name; `None` when the key does not exist.
    pub fn key_values(&self, path: &str) -> Result<Option<Vec<(String, Value)>>> {
        self.with_key(path, |k| {
            let mut out = Vec::new();
            if let Some(list) = k.values() {
                for v in list.map_err(|e| self.at(path, &e))? {
                    let v = v.map_err(|e| self.at(path, &e))?;
                    let name = v.name().map_err(|e| self.at(path, &e))?.to_string_lossy();
                    out.push((name, decode(&v, path, self)?));
                }
            }
            Ok(out)
        })
    }

    /// A string value, when present and a string.
    pub fn string(&self, path: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .value(path, name)?
            .and_then(|v| v.as_str().map(str::to_string)))
    }

    /// A number value, when present and a number.
    pub fn number(&self, path: &str, name: &str) -> Result<Option<u64>> {
        Ok(self.value(path, name)?.and_then(|v| v.as_u64()))
    }
}

/// The names of one key's subkeys, indexed for many lookups (a CriticalDeviceDatabase of
/// thousands of entries asked for dozens of IDs): by the `lh` hashes the hive stores, or,
/// for lists without them, by the names themselves.
pub struct SubkeyIndex {
    /// The key's path.
    path: String,
    /// (hash, key node cell), sorted.
    by_hash: Vec<(u32, u32)>,
    /// Upper-cased names, for lists without hashes.
    by_name: Option<std::collections::HashSet<String>>,
}

impl SubkeyIndex {
    /// Whether a subkey of this name exists (case-insensitive, as Windows compares names).
    pub fn contains(&self, hive: &Hive, name: &str) -> bool {
        if let Some(names) = &self.by_name {
            return names.contains(&name.to_uppercase());
        }
        let cells = Cells::new(&hive.bytes);
        let hash = names::lh_hash(name);
        let from = self.by_hash.partition_point(|(h, _)| *h < hash);
        self.by_hash[from..]
            .iter()
            .take_while(|(h, _)| *h == hash)
            .any(|(_, o)| match cells.nk_name(*o) {
                Ok((stored, true)) if name.is_ascii() => {
                    stored.eq_ignore_ascii_case(name.as_bytes())
                }
                Ok(_) => cells
                    .nk(*o)
                    .is_ok_and(|k| names::compare(&k.name, name).is_eq()),
                Err(_) => false,
            })
    }

    /// The key node of subkey `name`, found by its hash.
    fn node(&self, hive: &Hive, name: &str) -> Option<crate::cells::Nk> {
        let cells = Cells::new(&hive.bytes);
        let hash = names::lh_hash(name);
        let from = self.by_hash.partition_point(|(h, _)| *h < hash);
        let same = |o: u32| match cells.nk_name(o) {
            // The common case, an ASCII name stored as Latin-1, compared without decoding.
            Ok((stored, true)) if name.is_ascii() => stored.eq_ignore_ascii_case(name.as_bytes()),
            Ok(_) => cells
                .nk(o)
                .is_ok_and(|k| names::compare(&k.name, name).is_eq()),
            Err(_) => false,
        };
        self.by_hash[from..]
            .iter()
            .take_while(|(h, _)| *h == hash)
            .find(|(_, o)| same(*o))
            .and_then(|(_, o)| cells.nk(*o).ok())
    }

    /// The string value `value` of subkey `name`: `None` when the subkey does not exist,
    /// `Some(None)` when it has no such string.
    pub fn string(&self, hive: &Hive, name: &str, value: &str) -> Result<Option<Option<String>>> {
        if self.by_name.is_some() {
            if !self.contains(hive, name) {
                return Ok(None);
            }
            return Ok(Some(hive.string(&format!("{}\\{name}", self.path), value)?));
        }
        let Some(nk) = self.node(hive, name) else {
            return Ok(None);
        };
        let cells = Cells::new(&hive.bytes);
        let corrupt = |e: crate::Error| {
            hive.ctx
                .corrupt_at_path(&format!("{}\\{name}", self.path), e.to_string())
        };
        for off in cells.values(&nk).map_err(corrupt)? {
            let vk = cells.vk(off).map_err(corrupt)?;
            if !vk.name.eq_ignore_ascii_case(value) {
                continue;
            }
            if vk.kind != 1 && vk.kind != 2 {
                return Ok(Some(None));
            }
            let data = cells.data(&vk).map_err(corrupt)?;
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            return Ok(Some(Some(String::from_utf16_lossy(&units))));
        }
        Ok(Some(None))
    }
}

impl Hive {
    /// An index of the names of the subkeys of `path` (`None` when it does not exist).
    pub fn subkey_index(&self, path: &str) -> Result<Option<SubkeyIndex>> {
        let cells = Cells::new(&self.bytes);
        let corrupt = |e: crate::Error| self.ctx.corrupt_at_path(path, e.to_string());
        let root = cells.root(&self.bytes).map_err(corrupt)?;
        let Some(nk) = cells.find(&root, path).map_err(corrupt)? else {
            return Ok(None);
        };
        Ok(Some(match cells.hashed_subkeys(&nk).map_err(corrupt)? {
            Some(list) => {
                let mut by_hash: Vec<(u32, u32)> = list.into_iter().map(|(o, h)| (h, o)).collect();
                by_hash.sort_unstable();
                SubkeyIndex {
                    path: path.to_string(),
                    by_hash,
                    by_name: None,
                }
            }
            None => SubkeyIndex {
                path: path.to_string(),
                by_hash: Vec::new(),
                by_name: Some(
                    self.subkeys(path)?
                        .into_iter()
                        .map(|n| n.to_uppercase())
                        .collect(),
                ),
            },
        }))
    }
}

/// Largest value decoded (a registry value can be up to 1 MiB in a big-data record).
const MAX_VALUE: u32 = 4 << 20;

fn decode(v: &nt_hive::KeyValue<&[u8]>, path: &str, hive: &Hive) -> Result<Value> {
    let err = |e: nt_hive::NtHiveError| hive.at(path, &e);
    if v.data_size() > MAX_VALUE {
        return Err(hive
            .ctx
            .corrupt_at_path(path, format!("value of {} bytes", v.data_size())));
    }
    let kind = v.data_type().ok();
    Ok(match kind {
        Some(KeyValueDataType::RegSZ | KeyValueDataType::RegExpandSZ) => match v.string_data() {
            Ok(s) => Value::String(s),
            Err(_) => Value::Binary {
                kind: 1,
                bytes: v.data().map_err(err)?.into_vec().map_err(err)?,
            },
        },
        Some(KeyValueDataType::RegMultiSZ) => match v.multi_string_data() {
            Ok(it) => Value::MultiString(it.filter_map(|s| s.ok()).collect()),
            Err(_) => Value::Binary {
                kind: 7,
                bytes: v.data().map_err(err)?.into_vec().map_err(err)?,
            },
        },
        Some(KeyValueDataType::RegDWord | KeyValueDataType::RegDWordBigEndian) => {
            match v.dword_data() {
                Ok(d) => Value::Dword(d),
                Err(_) => Value::Binary {
                    kind: 4,
                    bytes: v.data().map_err(err)?.into_vec().map_err(err)?,
                },
            }
        }
        Some(KeyValueDataType::RegQWord) => match v.qword_data() {
            Ok(q) => Value::Qword(q),
            Err(_) => Value::Binary {
                kind: 11,
                bytes: v.data().map_err(err)?.into_vec().map_err(err)?,
            },
        },
        other => Value::Binary {
            kind: other.map(|t| t as u32).unwrap_or(u32::MAX),
            bytes: v.data().map_err(err)?.into_vec().map_err(err)?,
        },
    })
}
