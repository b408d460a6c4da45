//! `$UpCase`: the volume's own table for case-insensitive name comparison.

use std::cmp::Ordering;

/// The 65,536-entry upper-case table of a volume.
#[derive(Clone)]
pub struct UpCase {
    table: Vec<u16>,
}

impl UpCase {
    /// The table read from `$UpCase` (131,072 bytes of UTF-16LE code units).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 65536 * 2 {
            return None;
        }
        let table = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(UpCase { table })
    }

    /// A table that maps every code unit to itself (a placeholder while `$UpCase` is read).
    pub fn empty() -> Self {
        UpCase {
            table: (0..=u16::MAX).collect(),
        }
    }

    /// A table built from Unicode's simple upper-case mappings, for volumes whose
    /// `$UpCase` is unreadable.
    pub fn fallback() -> Self {
        let table = (0..=u16::MAX)
            .map(|u| {
                char::from_u32(u as u32)
                    .and_then(|c| {
                        let mut up = c.to_uppercase();
                        match (up.next(), up.next()) {
                            (Some(x), None) if (x as u32) <= 0xFFFF => Some(x as u16),
                            _ => None,
                        }
                    })
                    .unwrap_or(u)
            })
            .collect();
        UpCase { table }
    }

    /// The upper case of one code unit.
    pub fn up(&self, u: u16) -> u16 {
        self.table[u as usize]
    }

    /// Compares two names as NTFS collates `$I30` entries: code unit by code unit, upper-cased.
    pub fn cmp(&self, a: &[u16], b: &[u16]) -> Ordering {
        for (x, y) in a.iter().zip(b) {
            match self.up(*x).cmp(&self.up(*y)) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        a.len().cmp(&b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_folds_case_beyond_ascii() {
        let up = UpCase::fallback();
        let a: Vec<u16> = "système32".encode_utf16().collect();
        let b: Vec<u16> = "SYSTÈME32".encode_utf16().collect();
        assert_eq!(up.cmp(&a, &b), Ordering::Equal);
        let c: Vec<u16> = "SYSTEMA".encode_utf16().collect();
        assert_eq!(up.cmp(&c, &b), Ordering::Less);
    }
}
