//! Random edits for the property tests: keys created (names in Latin-1 and beyond) and
//! deleted, values of every type and of sizes from nothing to 1 MiB set and deleted.

use super::common::Rng;
use super::model::{upper, Tree};

/// One edit.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Create a key.
    Create(String),
    /// Delete a key and its subtree.
    Delete(String),
    /// Set a value.
    Set(String, String, u32, Vec<u8>),
    /// Delete a value.
    Unset(String, String),
}

const LETTERS: &[char] = &[
    'a', 'B', 'c', 'Z', '0', '9', '_', '-', ' ', '.', '{', '}', 'é', 'Ä', 'ß', 'ÿ', 'Ж', 'я', '中',
    'ǅ', 'Ω', 'µ',
];

fn name(rng: &mut Rng, max: u64) -> String {
    let n = 1 + rng.below(max);
    (0..n)
        .map(|_| LETTERS[rng.below(LETTERS.len() as u64) as usize])
        .collect()
}

fn data(rng: &mut Rng, kind: u32) -> Vec<u8> {
    let len = match rng.below(20) {
        0..=7 => rng.below(5),
        8..=13 => 5 + rng.below(250),
        14..=16 => 255 + rng.below(16_400),
        17..=18 => 16_340 + rng.below(90_000),
        _ => 100_000 + rng.below(948_577),
    } as usize;
    if (kind == 1 || kind == 2) && len < 2000 && rng.below(2) == 0 {
        // A proper string, which exports quoted.
        let s = name(rng, 1 + len as u64 / 2);
        let mut d: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        d.extend([0, 0]);
        return d;
    }
    rng.bytes(len)
}

/// A random edit of `tree` below `sub`, applied to the tree too.
pub fn edit(rng: &mut Rng, tree: &mut Tree, sub: &str) -> Edit {
    let paths: Vec<String> = tree.keys.values().map(|k| k.path.clone()).collect();
    let pick = |rng: &mut Rng| paths[rng.below(paths.len() as u64) as usize].clone();
    loop {
        match rng.below(20) {
            0..=5 => {
                let parent = pick(rng);
                let path = format!("{parent}\\{}", name(rng, 30));
                if tree.keys.contains_key(&upper(&path)) {
                    continue;
                }
                tree.create(&path);
                return Edit::Create(path);
            }
            6..=7 => {
                let path = pick(rng);
                let below = tree.count_below(&path);
                if upper(&path) == upper(sub) || below > 40 {
                    continue;
                }
                tree.delete(&path);
                return Edit::Delete(path);
            }
            8..=16 => {
                let path = pick(rng);
                let existing: Vec<String> = tree.keys[&upper(&path)]
                    .values
                    .values()
                    .map(|v| v.0.clone())
                    .collect();
                let vname = if !existing.is_empty() && rng.below(2) == 0 {
                    // Another case of an existing name: the stored name stays.
                    let n = &existing[rng.below(existing.len() as u64) as usize];
                    if rng.below(2) == 0 {
                        n.to_uppercase()
                    } else {
                        n.clone()
                    }
                } else if rng.below(10) == 0 {
                    String::new()
                } else {
                    name(rng, 40)
                };
                let kind = match rng.below(30) {
                    0 => 0x0002_0000,
                    1 => 0xFFFF_0012,
                    k => (k % 12) as u32,
                };
                let d = data(rng, kind);
                tree.set(&path, &vname, kind, d.clone());
                return Edit::Set(path, vname, kind, d);
            }
            _ => {
                let path = pick(rng);
                let names: Vec<String> = tree.keys[&upper(&path)]
                    .values
                    .values()
                    .map(|v| v.0.clone())
                    .collect();
                if names.is_empty() {
                    continue;
                }
                let n = names[rng.below(names.len() as u64) as usize].clone();
                tree.keys
                    .get_mut(&upper(&path))
                    .unwrap()
                    .values
                    .remove(&upper(&n));
                return Edit::Unset(path, n);
            }
        }
    }
}
