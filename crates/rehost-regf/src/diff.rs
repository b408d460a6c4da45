//! What an edit changed, as a .reg-style diff: the keys and values of chosen subtrees read
//! before and after, compared by upper-cased name (as the hive compares them).
//!
//! ```text
//! +[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\viostor]
//! +"Start"=dword:00000000
//! [HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\storahci]
//! -"Start"=dword:00000003
//! +"Start"=dword:00000000
//! -[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\rhelscsi]
//! ```

use super::cells::{Cells, Nk};
use super::export::value_line;
use super::names::upcase_unit;
use crate::Error;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Deepest subtree read for a diff.
const MAX_DEPTH: usize = 512;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A key was created (its values follow as `ValueAdded`).
    KeyAdded {
        /// Path below the hive root, as stored.
        key: String,
    },
    /// A key was deleted, with its values.
    KeyDeleted {
        /// Path below the hive root, as stored.
        key: String,
    },
    /// A value was added.
    ValueAdded {
        /// Key path.
        key: String,
        /// The value as a .reg line.
        line: String,
    },
    /// A value was deleted.
    ValueDeleted {
        /// Key path.
        key: String,
        /// The old value as a .reg line.
        line: String,
    },
    /// A value's type or data changed.
    ValueChanged {
        /// Key path.
        key: String,
        /// The old value as a .reg line.
        old: String,
        /// The new value as a .reg line.
        new: String,
    },
}

/// A key's values by upper-cased name: (name, .reg line).
type Values = BTreeMap<String, (String, String)>;

/// A subtree read for comparing: keys by upper-cased path, each with its path as stored.
#[derive(Debug, Default)]
pub struct Snapshot {
    keys: BTreeMap<String, (String, Values)>,
}

fn upper(s: &str) -> String {
    let u: Vec<u16> = s.encode_utf16().map(upcase_unit).collect();
    String::from_utf16_lossy(&u)
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}\\{name}")
    }
}

impl Snapshot {
    /// Reads the key at each `(path, recursive)` of `hive` (a missing key reads as absent),
    /// with its whole subtree when `recursive`.
    pub fn read(hive: &[u8], paths: &[(String, bool)]) -> Result<Snapshot, Error> {
        let cells = Cells::new(hive);
        let root = cells.root(hive)?;
        let mut snap = Snapshot::default();
        for (path, recursive) in paths {
            let Some(k) = cells.find(&root, path)? else {
                continue;
            };
            let stored = stored_path(&cells, &root, path)?;
            snap.add(&cells, k, stored, *recursive)?;
        }
        Ok(snap)
    }

    fn add(&mut self, cells: &Cells, k: Nk, path: String, recursive: bool) -> Result<(), Error> {
        let mut stack = vec![(k, path, 0usize)];
        let mut seen = HashSet::new();
        while let Some((k, path, depth)) = stack.pop() {
            if !seen.insert(k.offset) || depth > MAX_DEPTH {
                return Err(Error::Cell {
                    offset: k.offset,
                    what: "key tree loops back on itself or is too deep".into(),
                });
            }
            let mut values = Values::new();
            for v in cells.values(&k)? {
                let vk = cells.vk(v)?;
                let data = cells.data(&vk)?;
                let line = value_line(&vk.name, vk.kind, &data);
                values.insert(upper(&vk.name), (vk.name, line));
            }
            self.keys.insert(upper(&path), (path.clone(), values));
            if recursive {
                for c in cells.subkeys(&k)? {
                    let child = cells.nk(c)?;
                    let p = join(&path, &child.name);
                    stack.push((child, p, depth + 1));
                }
            }
        }
        Ok(())
    }
}

/// The path of the key at `path` with each component as the hive stores it.
fn stored_path(cells: &Cells, root: &Nk, path: &str) -> Result<String, Error> {
    let mut cur = root.clone();
    let mut out = String::new();
    for comp in path.split('\\').filter(|c| !c.is_empty()) {
        match cells.find(&cur, comp)? {
            Some(k) => {
                out = join(&out, &k.name);
                cur = k;
            }
            None => break,
        }
    }
    Ok(out)
}

/// The changes from `before` to `after`, keys in path order.
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> =
        before.keys.keys().chain(after.keys.keys()).collect();
    for k in keys {
        match (before.keys.get(k), after.keys.get(k)) {
            (None, Some((path, values))) => {
                out.push(Change::KeyAdded { key: path.clone() });
                for (_, line) in values.values() {
                    out.push(Change::ValueAdded {
                        key: path.clone(),
                        line: line.clone(),
                    });
                }
            }
            (Some((path, _)), None) => out.push(Change::KeyDeleted { key: path.clone() }),
            (Some((path, old)), Some((_, new))) => {
                let names: std::collections::BTreeSet<&String> =
                    old.keys().chain(new.keys()).collect();
                for n in names {
                    match (old.get(n), new.get(n)) {
                        (None, Some((_, l))) => out.push(Change::ValueAdded {
                            key: path.clone(),
                            line: l.clone(),
                        }),
                        (Some((_, l)), None) => out.push(Change::ValueDeleted {
                            key: path.clone(),
                            line: l.clone(),
                        }),
                        (Some((_, a)), Some((_, b))) if a != b => out.push(Change::ValueChanged {
                            key: path.clone(),
                            old: a.clone(),
                            new: b.clone(),
                        }),
                        _ => {}
                    }
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// The changes as .reg-style text, keys named below `prefix` (`HKEY_LOCAL_MACHINE\SYSTEM`):
/// `+[KEY]` a new key, `-[KEY]` a deleted one, `[KEY]` a key whose values changed, then
/// `-` and `+` value lines.
pub fn render(changes: &[Change], prefix: &str) -> String {
    let full = |k: &str| {
        if k.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}\\{k}")
        }
    };
    let mut out = String::new();
    let mut header: Option<&str> = None;
    for c in changes {
        let (key, lines) = match c {
            Change::KeyAdded { key } => {
                out.push_str(&format!("+[{}]\n", full(key)));
                header = Some(key);
                continue;
            }
            Change::KeyDeleted { key } => {
                out.push_str(&format!("-[{}]\n", full(key)));
                header = None;
                continue;
            }
            Change::ValueAdded { key, line } => (key, marked('+', line)),
            Change::ValueDeleted { key, line } => (key, marked('-', line)),
            Change::ValueChanged { key, old, new } => (key, marked('-', old) + &marked('+', new)),
        };
        if header != Some(key.as_str()) {
            out.push_str(&format!("[{}]\n", full(key)));
            header = Some(key);
        }
        out.push_str(&lines);
    }
    out
}

/// A value line with `mark` before it and before each of its continuation lines.
fn marked(mark: char, line: &str) -> String {
    line.split("\r\n").map(|l| format!("{mark}{l}\n")).collect()
}
