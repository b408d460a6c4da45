//! Allocation bitmaps: `$Bitmap` (one bit per cluster of the volume) and the `$BITMAP`
//! attributes of `$MFT` (one bit per record) and of directory indexes (one bit per INDX
//! block). A bitmap is held in memory with the byte range changed since it was written, so
//! that only the bytes that changed are written. A failed operation reads it again.

/// A bitmap in memory with the byte range changed since it was last written.
#[derive(Debug, Clone)]
pub struct Bits {
    bytes: Vec<u8>,
    /// Number of meaningful bits (bits past it count as set).
    len: u64,
    dirty: Option<(usize, usize)>,
}

impl Bits {
    /// A bitmap over `bytes` of which the first `len` bits are meaningful.
    pub fn new(bytes: Vec<u8>, len: u64) -> Self {
        let len = len.min(bytes.len() as u64 * 8);
        Bits {
            bytes,
            len,
            dirty: None,
        }
    }

    /// Meaningful bits.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the bitmap has no meaningful bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether bit `i` is set (bits past the end count as set).
    pub fn get(&self, i: u64) -> bool {
        i >= self.len || self.bytes[(i / 8) as usize] & (1 << (i % 8)) != 0
    }

    /// Grows the bitmap to `len` bits, the new ones clear; the bytes grow to `byte_len`.
    pub fn grow(&mut self, len: u64, byte_len: usize) {
        let byte_len = byte_len.max(len.div_ceil(8) as usize);
        if byte_len > self.bytes.len() {
            let old = self.bytes.len();
            self.bytes.resize(byte_len, 0);
            self.touch(old, byte_len);
        }
        self.len = self.len.max(len);
    }

    fn touch(&mut self, from: usize, to: usize) {
        self.dirty = Some(match self.dirty {
            None => (from, to),
            Some((a, b)) => (a.min(from), b.max(to)),
        });
    }

    /// Sets or clears `count` bits from `start`.
    pub fn set_range(&mut self, start: u64, count: u64, value: bool) {
        if count == 0 {
            return;
        }
        for i in start..start + count {
            let (byte, bit) = ((i / 8) as usize, i % 8);
            if value {
                self.bytes[byte] |= 1 << bit;
            } else {
                self.bytes[byte] &= !(1 << bit);
            }
        }
        self.touch((start / 8) as usize, ((start + count - 1) / 8 + 1) as usize);
    }

    /// Whether all `count` bits from `start` are clear.
    pub fn all_clear(&self, start: u64, count: u64) -> bool {
        (start..start + count).all(|i| !self.get(i))
    }

    /// Whether all `count` bits from `start` are set.
    pub fn all_set(&self, start: u64, count: u64) -> bool {
        (start..start + count).all(|i| self.get(i))
    }

    /// The first clear bit at or after `from`.
    pub fn first_clear(&self, from: u64) -> Option<u64> {
        let mut i = from;
        while i < self.len {
            let byte = self.bytes[(i / 8) as usize];
            if i % 8 == 0 && byte == 0xFF {
                i += 8;
                continue;
            }
            if !self.get(i) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// The clear runs `(start, len)` in `from..to`, in order.
    pub fn clear_runs(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let to = to.min(self.len);
        let mut i = from;
        while i < to {
            // Skip whole set bytes quickly.
            if i % 8 == 0 && i + 8 <= to && self.bytes[(i / 8) as usize] == 0xFF {
                i += 8;
                continue;
            }
            if self.get(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < to {
                if i % 8 == 0 && i + 8 <= to && self.bytes[(i / 8) as usize] == 0 {
                    i += 8;
                } else if !self.get(i) {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push((start, i - start));
        }
        out
    }

    /// Takes the byte range changed since the last call.
    pub fn take_dirty(&mut self) -> Option<(usize, usize)> {
        self.dirty.take()
    }
}

/// Picks clusters for `count` new ones: one free run of at least `count` clusters if there
/// is one (searched from `hint`, then from `zone_end` on, then from the start), else the
/// largest free runs, largest first, until `count` is reached. Returns `(lcn, len)` pieces
/// in the order they should be mapped, or `None` if the volume has too few free clusters.
pub fn pick_clusters(
    bits: &Bits,
    count: u64,
    hint: Option<u64>,
    zone_end: u64,
) -> Option<Vec<(u64, u64)>> {
    if count == 0 {
        return Some(Vec::new());
    }
    let total = bits.len();
    // A run that continues the file exactly is best.
    if let Some(h) = hint.filter(|h| *h < total) {
        if h + count <= total && bits.all_clear(h, count) {
            return Some(vec![(h, count)]);
        }
    }
    let starts = [hint.unwrap_or(zone_end), zone_end, 0];
    for &from in &starts {
        let from = from.min(total);
        if let Some(&(s, _)) = bits
            .clear_runs(from, total)
            .iter()
            .find(|(_, l)| *l >= count)
        {
            return Some(vec![(s, count)]);
        }
    }
    let mut runs = bits.clear_runs(0, total);
    let free: u64 = runs.iter().map(|r| r.1).sum();
    if free < count {
        return None;
    }
    runs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out = Vec::new();
    let mut left = count;
    for (s, l) in runs {
        let take = l.min(left);
        out.push((s, take));
        left -= take;
        if left == 0 {
            break;
        }
    }
    out.sort_unstable();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_picking_and_growth() {
        // Bits 0..4 set, 4..10 clear, 10 set, 11..20 clear, 20..24 past the end.
        let mut b = Bits::new(vec![0x0F, 0x04, 0x00], 20);
        assert_eq!(b.clear_runs(0, 100), vec![(4, 6), (11, 9)]);
        assert_eq!(b.first_clear(0), Some(4));
        assert!(b.get(22), "past the end counts as set");
        assert_eq!(pick_clusters(&b, 7, None, 0), Some(vec![(11, 7)]));
        assert_eq!(pick_clusters(&b, 3, Some(5), 0), Some(vec![(5, 3)]));
        assert_eq!(pick_clusters(&b, 12, None, 0), Some(vec![(4, 3), (11, 9)]));
        assert_eq!(pick_clusters(&b, 16, None, 0), None);
        b.set_range(4, 6, true);
        assert_eq!(b.take_dirty(), Some((0, 2)));
        b.set_range(4, 6, false);
        assert_eq!(b.bytes(), &[0x0F, 0x04, 0]);
        b.grow(30, 8);
        assert_eq!(b.bytes().len(), 8);
        assert!(!b.get(25));
    }
}
