//! Data runs: the mapping of a non-resident attribute's clusters (VCN) to the volume (LCN).

use rehost_core::error::{Ctx, Result};

/// One run: `len` clusters from virtual cluster `vcn`, stored at logical cluster `lcn`, or
/// not stored at all (`None`: a sparse hole, or the unused tail of a compression unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First virtual cluster of the run.
    pub vcn: u64,
    /// First logical cluster on the volume, or `None` for a hole.
    pub lcn: Option<u64>,
    /// Length in clusters.
    pub len: u64,
}

/// Decodes a mapping pairs array starting at `start_vcn`. Every run must lie inside a
/// volume of `total_clusters`; `pos` (volume offset of the array) names errors.
pub fn decode(
    bytes: &[u8],
    start_vcn: u64,
    total_clusters: u64,
    ctx: &Ctx,
    pos: u64,
) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    let mut i = 0usize;
    let mut vcn = start_vcn;
    let mut lcn: i64 = 0;
    while let Some(&header) = bytes.get(i) {
        if header == 0 {
            return Ok(runs);
        }
        let len_size = (header & 0x0F) as usize;
        let off_size = (header >> 4) as usize;
        let at = pos + i as u64;
        if len_size == 0 || len_size > 8 || off_size > 8 {
            return Err(ctx.corrupt(at, format!("data run header {header:#04x} is invalid")));
        }
        let field =
            |from: usize, n: usize| -> Option<&[u8]> { bytes.get(from..from.checked_add(n)?) };
        let len_bytes = field(i + 1, len_size)
            .ok_or_else(|| ctx.corrupt(at, "data run runs past the end of its attribute"))?;
        let len = le_signed(len_bytes);
        if len <= 0 {
            return Err(ctx.corrupt(at, format!("data run length {len} is not positive")));
        }
        let len = len as u64;
        let run_lcn = if off_size == 0 {
            None
        } else {
            let off_bytes = field(i + 1 + len_size, off_size)
                .ok_or_else(|| ctx.corrupt(at, "data run runs past the end of its attribute"))?;
            lcn = lcn
                .checked_add(le_signed(off_bytes))
                .filter(|l| *l >= 0)
                .ok_or_else(|| ctx.corrupt(at, "data run moves before cluster 0"))?;
            let end = (lcn as u64).checked_add(len);
            if end.is_none_or(|e| e > total_clusters) {
                return Err(ctx.corrupt(
                    at,
                    format!(
                        "data run of {len} clusters at cluster {lcn} lies outside the volume ({total_clusters} clusters)"
                    ),
                ));
            }
            Some(lcn as u64)
        };
        runs.push(Run {
            vcn,
            lcn: run_lcn,
            len,
        });
        vcn = vcn
            .checked_add(len)
            .ok_or_else(|| ctx.corrupt(at, "data runs overflow the cluster count"))?;
        i += 1 + len_size + off_size;
    }
    Err(ctx.corrupt(pos, "data runs have no terminating zero"))
}

/// A little-endian two's complement integer of 1 to 8 bytes.
fn le_signed(b: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for (k, byte) in b.iter().enumerate() {
        v |= (*byte as i64) << (8 * k);
    }
    let bits = 8 * b.len();
    if bits < 64 && b.last().is_some_and(|x| x & 0x80 != 0) {
        v -= 1i64 << bits;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::error::Layer;

    #[test]
    fn decodes_relative_offsets_and_holes() {
        let ctx = Ctx::new("t", Layer::Ntfs);
        // 0x18 clusters at 0x5634; 0x10 sparse; 0x08 at 0x5634 - 0x100.
        let bytes = [
            0x21, 0x18, 0x34, 0x56, 0x01, 0x10, 0x21, 0x08, 0x00, 0xFF, 0x00,
        ];
        let runs = decode(&bytes, 0, 1 << 20, &ctx, 0).unwrap();
        assert_eq!(
            runs,
            vec![
                Run {
                    vcn: 0,
                    lcn: Some(0x5634),
                    len: 0x18
                },
                Run {
                    vcn: 0x18,
                    lcn: None,
                    len: 0x10
                },
                Run {
                    vcn: 0x28,
                    lcn: Some(0x5534),
                    len: 0x08
                },
            ]
        );
    }

    #[test]
    fn rejects_runs_outside_the_volume_and_unterminated_lists() {
        let ctx = Ctx::new("t", Layer::Ntfs);
        assert!(decode(&[0x21, 0x18, 0x34, 0x56, 0x00], 0, 0x100, &ctx, 0).is_err());
        assert!(decode(&[0x21, 0x18, 0x34], 0, 1 << 20, &ctx, 0).is_err());
        assert!(decode(&[0x21, 0x18, 0x34, 0x56], 0, 1 << 20, &ctx, 0).is_err());
        assert!(decode(&[0x11, 0x05, 0x80, 0x00], 0, 1 << 20, &ctx, 0).is_err());
    }
}
