//! `$UpCase`: the volume's own table for case-insensitive name comparison.

use std::cmp::Ordering;
use std::sync::Arc;

/// Bytes in `$UpCase`: 65,536 UTF-16LE code units.
const TABLE_BYTES: usize = 65536 * 2;

/// The 65,536-entry upper-case table of a volume, kept as the bytes `$UpCase` holds (shared
/// by the volume's copies), or the identity mapping.
#[derive(Clone)]
pub struct UpCase {
    /// `$UpCase`'s bytes, always [`TABLE_BYTES`] long; `None` maps every unit to itself.
    table: Option<Arc<Vec<u8>>>,
}

impl UpCase {
    /// The table read from `$UpCase` (131,072 bytes of UTF-16LE code units).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Self::from_vec(bytes.to_vec())
    }

    /// [`UpCase::from_bytes`], keeping the buffer it is given.
    pub fn from_vec(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() == TABLE_BYTES).then(|| UpCase {
            table: Some(Arc::new(bytes)),
        })
    }

    /// A table that maps every code unit to itself (a placeholder while `$UpCase` is read).
    pub fn empty() -> Self {
        UpCase { table: None }
    }

    /// A table built from Unicode's simple upper-case mappings, for volumes whose
    /// `$UpCase` is unreadable.
    pub fn fallback() -> Self {
        let table = (0..=u16::MAX)
            .flat_map(|u| {
                char::from_u32(u as u32)
                    .and_then(|c| {
                        let mut up = c.to_uppercase();
                        match (up.next(), up.next()) {
                            (Some(x), None) if (x as u32) <= 0xFFFF => Some(x as u16),
                            _ => None,
                        }
                    })
                    .unwrap_or(u)
                    .to_le_bytes()
            })
            .collect();
        UpCase {
            table: Some(Arc::new(table)),
        }
    }

    /// The upper case of one code unit.
    pub fn up(&self, u: u16) -> u16 {
        match &self.table {
            None => u,
            Some(t) => {
                // In bounds: every table is TABLE_BYTES long (see the constructors).
                let i = usize::from(u) * 2;
                u16::from_le_bytes([t[i], t[i + 1]])
            }
        }
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

    #[test]
    fn tables_map_units_as_their_bytes_say() {
        let mut bytes: Vec<u8> = (0..=u16::MAX).flat_map(|u| u.to_le_bytes()).collect();
        bytes[2 * 0x61..2 * 0x61 + 2].copy_from_slice(&0x41u16.to_le_bytes());
        bytes[2 * 0xffff..].copy_from_slice(&0x1234u16.to_le_bytes());
        let up = UpCase::from_vec(bytes.clone()).unwrap();
        assert_eq!(
            (up.up(0x61), up.up(0x62), up.up(0xffff)),
            (0x41, 0x62, 0x1234)
        );
        assert!(UpCase::from_bytes(&bytes[1..]).is_none());
        assert_eq!(UpCase::empty().up(0x61), 0x61);
    }
}
