//! A registry tree in memory, the model of the property tests, and three independent ways
//! of reading one out of a hive: rehost's .reg export, nt-hive, hivexregedit.

use rehost::formats::regf::cells::Cells;
use rehost::formats::regf::export;
use rehost::formats::regf::names::upcase_unit;
use rehost::formats::regf::regtext::{self, Op};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Type numbers nt-hive cannot name are compared as this.
pub const UNNAMED_TYPE: u32 = u32::MAX;

/// A name upper-cased as the hive compares names.
pub fn upper(s: &str) -> String {
    let u: Vec<u16> = s.encode_utf16().map(upcase_unit).collect();
    String::from_utf16_lossy(&u)
}

/// A value: its name as stored, type and data.
pub type Value = (String, u32, Vec<u8>);

/// A key: its path as stored, and its values by upper-cased name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    /// Path below the hive root, `\`-separated, "" for the root.
    pub path: String,
    /// Values by upper-cased name.
    pub values: BTreeMap<String, Value>,
}

/// Keys by upper-cased path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Every key.
    pub keys: BTreeMap<String, Key>,
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}\\{name}")
    }
}

impl Tree {
    /// The tree a .reg text describes; keys are named below `prefix`.
    pub fn from_reg(text: &str, prefix: &str) -> Tree {
        let mut t = Tree::default();
        let mut cur = String::new();
        for op in regtext::parse(text).expect("a .reg text that parses") {
            match op {
                Op::Key(k) => {
                    let rel = k
                        .get(prefix.len()..)
                        .filter(|_| upper(&k[..prefix.len()]) == upper(prefix))
                        .unwrap_or_else(|| panic!("{k} is not below {prefix}"));
                    cur = rel.trim_start_matches('\\').to_string();
                    t.keys.insert(
                        upper(&cur),
                        Key {
                            path: cur.clone(),
                            values: BTreeMap::new(),
                        },
                    );
                }
                Op::Set { name, kind, data } => {
                    let k = t.keys.get_mut(&upper(&cur)).unwrap();
                    k.values.insert(upper(&name), (name, kind, data));
                }
                other => panic!("an export holds {other:?}"),
            }
        }
        t
    }

    /// The subtree at `sub`, exported by rehost.
    pub fn from_rehost(hive: &[u8], sub: &str) -> Tree {
        let c = Cells::new(hive);
        let root = c.root(hive).unwrap();
        let k = c.find(&root, sub).unwrap().expect("the subtree exists");
        let text = export::export(&c, &k, &join("ROOT", sub)).unwrap();
        Tree::from_reg(&text, "ROOT")
    }

    /// The subtree at `sub`, read by nt-hive (which validates the hive first). Types nt-hive
    /// cannot name become [`UNNAMED_TYPE`].
    pub fn from_nt_hive(hive: &[u8], sub: &str) -> Tree {
        let h = nt_hive::Hive::new(hive).expect("nt-hive opens the hive");
        let root = h.root_key_node().unwrap();
        let start = if sub.is_empty() {
            root
        } else {
            root.subpath(sub).expect("subtree").unwrap()
        };
        let mut t = Tree::default();
        let mut stack = vec![(start, sub.to_string())];
        while let Some((k, path)) = stack.pop() {
            let mut key = Key {
                path: path.clone(),
                values: BTreeMap::new(),
            };
            if let Some(vals) = k.values() {
                for v in vals.unwrap() {
                    let v = v.unwrap();
                    let name = v.name().unwrap().to_string_lossy();
                    let kind = v.data_type().map(|t| t as u32).unwrap_or(UNNAMED_TYPE);
                    let data = v.data().unwrap().into_vec().unwrap();
                    key.values.insert(upper(&name), (name, kind, data));
                }
            }
            if let Some(subs) = k.subkeys() {
                for s in subs.unwrap() {
                    let s = s.unwrap();
                    let name = s.name().unwrap().to_string_lossy();
                    stack.push((s, join(&path, &name)));
                }
            }
            t.keys.insert(upper(&path), key);
        }
        t
    }

    /// The subtree at `sub`, exported by `hivexregedit`.
    pub fn from_hivex(file: &Path, sub: &str) -> Tree {
        // PERL_UNICODE=S: every line in UTF-8 (else Perl prints a line without a character
        // above U+00FF in Latin-1).
        let out = Command::new("hivexregedit")
            .env("PERL_UNICODE", "S")
            .args(["--export", "--prefix", "ROOT"])
            .arg(file)
            .arg(if sub.is_empty() { "\\" } else { sub })
            .output()
            .expect("hivexregedit runs");
        assert!(
            out.status.success(),
            "hivexregedit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tree::from_reg(&String::from_utf8(out.stdout).unwrap(), "ROOT")
    }

    /// Whether the key with upper-cased path `key` is `sub` or below it.
    pub fn within(key: &str, sub: &str) -> bool {
        let u = upper(sub);
        u.is_empty()
            || key == u
            || (key.len() > u.len() && key.starts_with(&u) && key.as_bytes()[u.len()] == b'\\')
    }

    /// Keys whose path starts with `sub` (case-insensitive), sub included.
    pub fn subtree(&self, sub: &str) -> Tree {
        let keys = self
            .keys
            .iter()
            .filter(|(k, _)| Tree::within(k, sub))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Tree { keys }
    }

    /// Keys that are not `sub` nor below it.
    pub fn outside(&self, sub: &str) -> Tree {
        let keys = self
            .keys
            .iter()
            .filter(|(k, _)| !Tree::within(k, sub))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Tree { keys }
    }

    /// How many keys `sub` and its subtree hold, without copying them.
    pub fn count_below(&self, sub: &str) -> usize {
        let u = upper(sub);
        let from = format!("{u}\\");
        1 + self
            .keys
            .range(from.clone()..)
            .take_while(|(k, _)| k.starts_with(&from))
            .count()
    }

    /// The same tree with type numbers nt-hive cannot name replaced by [`UNNAMED_TYPE`].
    pub fn types_as_nt_hive_sees(&self) -> Tree {
        let mut t = self.clone();
        for k in t.keys.values_mut() {
            for v in k.values.values_mut() {
                if v.1 > 11 {
                    v.1 = UNNAMED_TYPE;
                }
            }
        }
        t
    }

    /// The same tree without values larger than `max` bytes.
    pub fn without_values_over(&self, max: usize) -> Tree {
        let mut t = self.clone();
        for k in t.keys.values_mut() {
            k.values.retain(|_, v| v.2.len() <= max);
        }
        t
    }

    /// Creates a key (its parent must exist).
    pub fn create(&mut self, path: &str) {
        self.keys.insert(
            upper(path),
            Key {
                path: path.to_string(),
                values: BTreeMap::new(),
            },
        );
    }

    /// Deletes a key and its subtree.
    pub fn delete(&mut self, path: &str) {
        self.keys.retain(|k, _| !Tree::within(k, path));
    }

    /// Sets a value, keeping the stored name of one that exists.
    pub fn set(&mut self, path: &str, name: &str, kind: u32, data: Vec<u8>) {
        let k = self.keys.get_mut(&upper(path)).unwrap();
        let stored = k
            .values
            .get(&upper(name))
            .map(|v| v.0.clone())
            .unwrap_or_else(|| name.to_string());
        k.values.insert(upper(name), (stored, kind, data));
    }

    /// The first difference from `other`, in words.
    pub fn difference(&self, other: &Tree) -> Option<String> {
        for (k, v) in &self.keys {
            match other.keys.get(k) {
                None => return Some(format!("key {} missing", v.path)),
                Some(o) if o.path != v.path => {
                    return Some(format!("key {} is named {}", v.path, o.path))
                }
                Some(o) => {
                    for (n, val) in &v.values {
                        match o.values.get(n) {
                            Some(ov) if ov == val => {}
                            Some(ov) => {
                                return Some(format!(
                                    "{}\\{}: {:?} {} bytes, against {:?} {} bytes",
                                    v.path,
                                    val.0,
                                    val.1,
                                    val.2.len(),
                                    ov.1,
                                    ov.2.len()
                                ))
                            }
                            None => return Some(format!("value {}\\{} missing", v.path, val.0)),
                        }
                    }
                    if let Some(extra) = o.values.keys().find(|n| !v.values.contains_key(*n)) {
                        return Some(format!("extra value {}\\{extra}", v.path));
                    }
                }
            }
        }
        other
            .keys
            .values()
            .find(|k| !self.keys.contains_key(&upper(&k.path)))
            .map(|k| format!("extra key {}", k.path))
    }
}
