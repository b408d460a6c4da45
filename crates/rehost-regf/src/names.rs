//! Key and value names as the hive stores and orders them: Latin-1 ("compressed") when every
//! code unit fits in a byte, else UTF-16LE; compared upper-cased, code unit by code unit;
//! hashed for `lh` lists and hinted for `lf` lists.

use std::cmp::Ordering;

/// Longest key or value name, in UTF-16 code units.
pub const MAX_NAME: usize = 255;

/// A name's stored bytes and whether they are Latin-1.
pub fn encode(name: &str) -> (Vec<u8>, bool) {
    let units: Vec<u16> = name.encode_utf16().collect();
    if units.iter().all(|u| *u <= 0xFF) {
        (units.iter().map(|u| *u as u8).collect(), true)
    } else {
        (units.iter().flat_map(|u| u.to_le_bytes()).collect(), false)
    }
}

/// Length of a name in the units the key node's maximum fields count: bytes of UTF-16.
pub fn utf16_bytes(name: &str) -> u32 {
    name.encode_utf16().count() as u32 * 2
}

/// One code unit upper-cased, as Windows does for names: a character whose upper case is a
/// single code unit maps to it, any other stays as it is.
pub fn upcase_unit(u: u16) -> u16 {
    if u < 0x80 {
        return (u as u8).to_ascii_uppercase() as u16;
    }
    let Some(c) = char::from_u32(u as u32) else {
        return u;
    };
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(x), None) if (x as u32) <= 0xFFFF => x as u32 as u16,
        _ => u,
    }
}

/// The order of names in subkey lists: upper-cased code units, compared by value.
pub fn compare(a: &str, b: &str) -> Ordering {
    let ua = a.encode_utf16().map(upcase_unit);
    let ub = b.encode_utf16().map(upcase_unit);
    ua.cmp(ub)
}

/// The `lh` hash of a name: H = 37 * H + upcased code unit, from 0, wrapping.
pub fn lh_hash(name: &str) -> u32 {
    name.encode_utf16().fold(0u32, |h, u| {
        h.wrapping_mul(37).wrapping_add(upcase_unit(u) as u32)
    })
}

/// The `lf` hint of a name: its first four code units as bytes (zero-padded), or zero when
/// one of them does not fit in a byte.
pub fn lf_hint(name: &str) -> u32 {
    let mut hint = [0u8; 4];
    for (i, u) in name.encode_utf16().take(4).enumerate() {
        if u > 0xFF {
            return 0;
        }
        hint[i] = u as u8;
    }
    u32::from_le_bytes(hint)
}

/// Whether a name may be given to a key: not empty, no backslash, at most 255 code units.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('\\') && name.encode_utf16().count() <= MAX_NAME
}
