//! Applying .reg operations to a hive: key names as regedit writes them
//! (`HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\x`) mapped to paths in the hive,
//! `CurrentControlSet` resolved through `Select`, then keys created and deleted and values
//! set and deleted, as regedit would import the file.

use super::edit::Editor;
use super::regtext::Op;
use crate::Error;

/// How the key names of a .reg file map to paths in one hive.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Names of the hive's root (`HKEY_LOCAL_MACHINE\SYSTEM`, `HKLM\SYSTEM`), compared
    /// case-insensitively; a key named below none of them is an error.
    pub roots: Vec<String>,
    /// The control sets `CurrentControlSet` stands for, as `ControlSet00N` numbers: the
    /// first is the current one; more than one applies each edit to every one.
    pub control_sets: Vec<u32>,
}

impl Mapping {
    /// The path (below the root) or paths (one per control set) in the hive of the key
    /// named `key`; the root itself maps to "".
    pub fn map(&self, key: &str) -> Result<Vec<String>, Error> {
        let key = key.trim_matches('\\');
        let rest = self
            .roots
            .iter()
            .find_map(|r| strip_prefix_ci(key, r.trim_matches('\\')))
            .ok_or_else(|| {
                Error::Key(format!(
                    "{key} is not in this hive (its keys are named below {})",
                    self.roots.first().map(String::as_str).unwrap_or("?")
                ))
            })?;
        let rest = rest.trim_start_matches('\\');
        let (first, tail) = match rest.split_once('\\') {
            Some((f, t)) => (f, Some(t)),
            None => (rest, None),
        };
        if !first.eq_ignore_ascii_case("CurrentControlSet") {
            return Ok(vec![rest.to_string()]);
        }
        if self.control_sets.is_empty() {
            return Err(Error::Key(format!(
                "{key} names CurrentControlSet but this hive has no Select key"
            )));
        }
        Ok(self
            .control_sets
            .iter()
            .map(|n| match tail {
                Some(t) => format!("ControlSet{n:03}\\{t}"),
                None => format!("ControlSet{n:03}"),
            })
            .collect())
    }
}

/// `s` without the prefix `p` (case-insensitive) when `p` is a whole leading part of it.
fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    let head = s.get(..p.len())?;
    let rest = &s[p.len()..];
    (head.eq_ignore_ascii_case(p) && (rest.is_empty() || rest.starts_with('\\'))).then_some(rest)
}

/// The control sets `Select` names in the SYSTEM hive file `hive`, current first, each once
/// (empty when the hive has no `Select` key).
pub fn control_sets(hive: &[u8], all: bool) -> Result<Vec<u32>, Error> {
    let mut out = Vec::new();
    let Some(select) = super::query::key(hive, "Select")? else {
        return Ok(out);
    };
    let names: &[&str] = if all {
        &["Current", "Default", "LastKnownGood"]
    } else {
        &["Current"]
    };
    for name in names {
        let found = select
            .values
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name) && v.kind == 4 && v.data.len() == 4);
        if let Some(v) = found {
            let n = u32::from_le_bytes([v.data[0], v.data[1], v.data[2], v.data[3]]);
            if n != 0 && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// A key an edit touched, for the diff: its path and whether its whole subtree changed.
pub type Touched = (String, bool);

/// Applies `ops` in order, as regedit imports a file: `[KEY]` creates the key and its
/// parents, values set and deleted belong to the last key named, `[-KEY]` deletes a key
/// and its subtree, a deletion of something absent does nothing. Returns what was touched.
/// A key that does not map into the hive is an [`Error::Key`]; a cell that refuses an edit,
/// an [`Error::Edit`] naming the key.
pub fn apply(ed: &mut Editor, ops: &[Op], map: &Mapping) -> Result<Vec<Touched>, Error> {
    let mut touched: Vec<Touched> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for op in ops {
        match op {
            Op::Key(k) => {
                current = map.map(k)?;
                for p in &current {
                    let (_, created) = ed.create_key(p).map_err(|e| e.at_key(p))?;
                    touched.push((p.clone(), created));
                }
            }
            Op::DeleteKey(k) => {
                for p in map.map(k)? {
                    if p.is_empty() {
                        return Err(Error::Key(format!(
                            "{k} is the root of the hive, which cannot be deleted"
                        )));
                    }
                    touched.push((p.clone(), true));
                    ed.delete_key(&p).map_err(|e| e.at_key(&p))?;
                }
                current.clear();
            }
            Op::Set { name, kind, data } => {
                for p in &current {
                    ed.set_value(p, name, *kind, data)
                        .map_err(|e| e.at_key(p))?;
                }
            }
            Op::DeleteValue(name) => {
                for p in &current {
                    ed.delete_value(p, name).map_err(|e| e.at_key(p))?;
                }
            }
        }
    }
    Ok(touched)
}
