//! Marvin32, the keyed hash that guards each log entry of a new-format (Windows 8.1+)
//! transaction log.

/// The seed the registry uses, 0x82EF4D887A4E55C5: its low half starts the state's low word.
pub const REGISTRY_SEED: u64 = 0x82EF_4D88_7A4E_55C5;

fn mix(lo: &mut u32, hi: &mut u32) {
    *hi ^= *lo;
    *lo = lo.rotate_left(20);
    *lo = lo.wrapping_add(*hi);
    *hi = hi.rotate_left(9);
    *hi ^= *lo;
    *lo = lo.rotate_left(27);
    *lo = lo.wrapping_add(*hi);
    *hi = hi.rotate_left(19);
}

/// Marvin32 of `data` with `seed`.
pub fn marvin32(data: &[u8], seed: u64) -> u64 {
    let mut lo = seed as u32;
    let mut hi = (seed >> 32) as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        lo = lo.wrapping_add(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        mix(&mut lo, &mut hi);
    }
    // The tail (0 to 3 bytes) with a 0x80 marker after it.
    let tail = chunks.remainder();
    let mut last: u32 = 0x80 << (8 * tail.len());
    for (i, b) in tail.iter().enumerate() {
        last |= (*b as u32) << (8 * i);
    }
    lo = lo.wrapping_add(last);
    mix(&mut lo, &mut hi);
    mix(&mut lo, &mut hi);
    (hi as u64) << 32 | lo as u64
}
