//! Data runs, the other way round: a run vector encoded as a mapping pairs array, and the
//! edits the writer makes to run vectors (cut at a cluster count, append, merge).
//!
//! A mapping pair is a header byte (low nibble: bytes of the length, high nibble: bytes of
//! the LCN delta, 0 for a hole), the length as a little-endian integer, then the LCN as a
//! signed delta from the previous stored run. Both fields take the fewest bytes that hold
//! their value as a two's complement number; an array ends with a zero byte.

use crate::runlist::Run;

/// Bytes of the shortest two's complement little-endian form of `v`.
fn signed_len(v: i64) -> usize {
    let mut n = 1;
    while n < 8 {
        let bits = 8 * n as u32;
        let lo = -(1i64 << (bits - 1));
        let hi = (1i64 << (bits - 1)) - 1;
        if (lo..=hi).contains(&v) {
            break;
        }
        n += 1;
    }
    n
}

/// Encodes `runs` (VCN order, contiguous VCNs) as a mapping pairs array with its
/// terminating zero.
pub fn encode(runs: &[Run]) -> Vec<u8> {
    let mut out = Vec::with_capacity(runs.len() * 4 + 1);
    let mut prev_lcn: i64 = 0;
    for r in runs {
        let len = r.len as i64;
        let len_size = signed_len(len);
        let (delta, off_size) = match r.lcn {
            Some(l) => {
                let d = l as i64 - prev_lcn;
                prev_lcn = l as i64;
                (d, signed_len(d))
            }
            None => (0, 0),
        };
        out.push(((off_size as u8) << 4) | len_size as u8);
        out.extend_from_slice(&len.to_le_bytes()[..len_size]);
        out.extend_from_slice(&delta.to_le_bytes()[..off_size]);
    }
    out.push(0);
    out
}

/// Clusters the runs map.
pub fn clusters(runs: &[Run]) -> u64 {
    runs.iter().map(|r| r.len).sum()
}

/// Keeps the first `keep` clusters of `runs`; returns the stored pieces cut off, as
/// `(lcn, len)`, for the caller to free.
pub fn truncate(runs: &mut Vec<Run>, keep: u64) -> Vec<(u64, u64)> {
    let mut freed = Vec::new();
    let mut out = Vec::new();
    for r in runs.drain(..) {
        if r.vcn + r.len <= keep {
            out.push(r);
        } else if r.vcn >= keep {
            if let Some(l) = r.lcn {
                freed.push((l, r.len));
            }
        } else {
            let head = keep - r.vcn;
            out.push(Run {
                vcn: r.vcn,
                lcn: r.lcn,
                len: head,
            });
            if let Some(l) = r.lcn {
                freed.push((l + head, r.len - head));
            }
        }
    }
    *runs = out;
    freed
}

/// Appends stored pieces `(lcn, len)` after the last VCN of `runs`, merging a piece into
/// the run before it when the clusters follow on.
pub fn append(runs: &mut Vec<Run>, pieces: &[(u64, u64)]) {
    for &(lcn, len) in pieces {
        let vcn = runs.last().map(|r| r.vcn + r.len).unwrap_or(0);
        if let Some(last) = runs.last_mut() {
            if last.lcn.is_some_and(|l| l + last.len == lcn) {
                last.len += len;
                continue;
            }
        }
        runs.push(Run {
            vcn,
            lcn: Some(lcn),
            len,
        });
    }
}

/// The holes of `runs` within VCNs `from..to`, as `(vcn, len)`.
pub fn holes(runs: &[Run], from: u64, to: u64) -> Vec<(u64, u64)> {
    runs.iter()
        .filter(|r| r.lcn.is_none())
        .filter_map(|r| {
            let a = r.vcn.max(from);
            let b = (r.vcn + r.len).min(to);
            (a < b).then_some((a, b - a))
        })
        .collect()
}

/// Maps the hole VCNs `vcn..vcn + len` (inside one hole of `runs`) to the stored pieces
/// `(lcn, len)`, splitting the hole.
pub fn fill_hole(runs: &mut Vec<Run>, vcn: u64, len: u64, pieces: &[(u64, u64)]) {
    let Some(i) = runs
        .iter()
        .position(|r| r.lcn.is_none() && r.vcn <= vcn && vcn + len <= r.vcn + r.len)
    else {
        return;
    };
    let h = runs[i];
    let mut new = Vec::new();
    if vcn > h.vcn {
        new.push(Run {
            vcn: h.vcn,
            lcn: None,
            len: vcn - h.vcn,
        });
    }
    let mut v = vcn;
    for &(l, n) in pieces {
        new.push(Run {
            vcn: v,
            lcn: Some(l),
            len: n,
        });
        v += n;
    }
    if h.vcn + h.len > vcn + len {
        new.push(Run {
            vcn: vcn + len,
            lcn: None,
            len: h.vcn + h.len - vcn - len,
        });
    }
    runs.splice(i..=i, new);
}

/// Clusters of `runs` that are stored (not holes).
pub fn stored(runs: &[Run]) -> u64 {
    runs.iter().filter(|r| r.lcn.is_some()).map(|r| r.len).sum()
}

/// The LCN just past the last stored cluster: where an extension would follow on.
pub fn next_lcn(runs: &[Run]) -> Option<u64> {
    runs.iter().rev().find_map(|r| r.lcn.map(|l| l + r.len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runlist::decode;
    use rehost_core::error::{Ctx, Layer};

    fn run(vcn: u64, lcn: Option<u64>, len: u64) -> Run {
        Run { vcn, lcn, len }
    }

    #[test]
    fn encodes_what_the_reader_decodes() {
        let ctx = Ctx::new("t", Layer::Ntfs);
        let cases = vec![
            vec![run(0, Some(0x5634), 0x18)],
            vec![
                run(0, Some(0x5634), 0x18),
                run(0x18, None, 0x10),
                run(0x28, Some(0x5534), 0x08),
            ],
            // A length whose top bit is set needs a second byte; deltas back and forth.
            vec![
                run(0, Some(100), 0x80),
                run(0x80, Some(3), 0x7F),
                run(0xFF, Some(0x12_3456_789A), 1),
                run(0x100, Some(0x7F), 0x10000),
            ],
        ];
        for runs in cases {
            let bytes = encode(&runs);
            let back = decode(&bytes, 0, 1 << 48, &ctx, 0).unwrap();
            assert_eq!(back, runs, "{bytes:02x?}");
        }
        assert_eq!(
            encode(&[run(0, Some(0x5634), 0x18)]),
            [0x21, 0x18, 0x34, 0x56, 0]
        );
        assert_eq!(encode(&[]), [0]);
    }

    #[test]
    fn truncate_and_append_keep_vcns_contiguous() {
        let mut r = vec![run(0, Some(10), 4), run(4, None, 4), run(8, Some(50), 4)];
        let freed = truncate(&mut r, 10);
        assert_eq!(freed, vec![(52, 2)]);
        assert_eq!(r.last(), Some(&run(8, Some(50), 2)));
        append(&mut r, &[(52, 3), (90, 1)]);
        assert_eq!(r[2], run(8, Some(50), 5));
        assert_eq!(r[3], run(13, Some(90), 1));
        assert_eq!(clusters(&r), 14);
        assert_eq!(next_lcn(&r), Some(91));
        assert_eq!(holes(&r, 0, 100), vec![(4, 4)]);
        fill_hole(&mut r, 5, 2, &[(200, 2)]);
        assert_eq!(
            r[1..4],
            [run(4, None, 1), run(5, Some(200), 2), run(7, None, 1)]
        );
        assert_eq!(stored(&r), 12);
        assert_eq!(
            truncate(&mut r, 0),
            vec![(10, 4), (200, 2), (50, 5), (90, 1)]
        );
        assert!(r.is_empty());
    }
}
