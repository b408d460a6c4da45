//! Little-endian fields that never panic: the one reader every parser uses. A field that
//! reaches past the end of its slice reads as 0 (a slice as `None`), whatever the offset,
//! so a parser's mistake in checking a length cannot become a panic. Parsers still check
//! their structures' lengths first and say what is wrong; these only make sure a missed
//! check stays harmless.

/// `N` bytes at `off`, or zeros if they do not all lie inside `b`.
pub fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = slice(b, off, N) {
        out.copy_from_slice(s);
    }
    out
}

/// The GUID at `off` as Windows prints it (lower case, no braces), from the mixed-endian
/// form Windows stores (its first three fields little-endian, the last eight bytes as they
/// stand); zeros if it does not lie inside `b`.
pub fn guid(b: &[u8], off: usize) -> String {
    let g: [u8; 16] = array(b, off);
    let mut s = format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
        u32_at(&g, 0),
        u16_at(&g, 4),
        u16_at(&g, 6),
        g[8],
        g[9]
    );
    for x in &g[10..] {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// `len` bytes at `off`, if they all lie inside `b`.
pub fn slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

/// `u16` at `off` (0 past the end).
pub fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(array(b, off))
}

/// `u32` at `off` (0 past the end).
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(array(b, off))
}

/// `u64` at `off` (0 past the end).
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(array(b, off))
}

/// UTF-16LE code units of `count` characters at `off`, or `None` if they do not fit.
pub fn utf16_at(b: &[u8], off: usize, count: usize) -> Option<Vec<u16>> {
    let bytes = slice(b, off, count.checked_mul(2)?)?;
    Some(
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_inside_read_and_fields_outside_are_zero_whatever_the_offset() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u16_at(&b, 0), 0x0201);
        assert_eq!(u32_at(&b, 1), 0x0504_0302);
        assert_eq!(u64_at(&b, 1), 0x0908_0706_0504_0302);
        for off in [8, 9, 10, usize::MAX - 1, usize::MAX] {
            assert_eq!(u32_at(&b, off), 0, "offset {off}");
            assert_eq!(u64_at(&b, off), 0, "offset {off}");
        }
        assert_eq!(u16_at(&b, 8), 0);
        assert_eq!(slice(&b, usize::MAX, 2), None);
        assert_eq!(utf16_at(&b, 0, 2), Some(vec![0x0201, 0x0403]));
        assert_eq!(utf16_at(&b, 0, usize::MAX), None);
        assert_eq!(utf16_at(&b, 8, 1), None);
    }
}
