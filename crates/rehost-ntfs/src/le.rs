//! Little-endian field reads that never panic: a field past the end of the slice reads as 0.
//! Parsers check structure lengths first; these only guarantee that a mistake cannot panic.

fn field<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = off.checked_add(N).and_then(|end| b.get(off..end)) {
        out.copy_from_slice(s);
    }
    out
}

/// `u16` at `off`.
pub fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(field(b, off))
}

/// `u32` at `off`.
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(field(b, off))
}

/// `u64` at `off`.
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(field(b, off))
}

/// UTF-16LE code units of `count` characters at `off`, or `None` if they do not fit.
pub fn utf16_at(b: &[u8], off: usize, count: usize) -> Option<Vec<u16>> {
    let end = off.checked_add(count.checked_mul(2)?)?;
    let bytes = b.get(off..end)?;
    Some(
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}
