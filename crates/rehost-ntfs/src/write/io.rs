//! The volume as the writer sees it: the writable device, its geometry, and reads and writes
//! of attribute values through their data runs.

use crate::runlist::Run;
use rehost_core::error::{Ctx, Result};
use rehost_core::io::WriteAt;
use std::sync::Arc;

/// The writable volume and its geometry.
pub struct Vol {
    /// The device: reads see every write staged so far.
    pub dev: Arc<dyn WriteAt>,
    /// Names the image in errors (ntfs layer).
    pub ctx: Ctx,
    /// Bytes per cluster.
    pub cluster: u64,
    /// Bytes per FILE record.
    pub record_size: usize,
    /// Bytes per INDX block.
    pub index_block: usize,
    /// Clusters in the volume.
    pub total_clusters: u64,
    /// First cluster of `$MFT` (the MFT zone starts there).
    pub mft_lcn: u64,
}

impl Vol {
    /// Calls `f(volume offset or None for a hole, offset in the piece, length)` for each
    /// piece of `off..off + len` of a value mapped by `runs`.
    fn pieces(
        &self,
        runs: &[Run],
        off: u64,
        len: usize,
        what: &str,
        mut f: impl FnMut(Option<u64>, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let mut done = 0usize;
        let mut i = 0usize;
        while done < len {
            let pos = off + done as u64;
            let vcn = pos / self.cluster;
            while i < runs.len() && runs[i].vcn + runs[i].len <= vcn {
                i += 1;
            }
            let Some(r) = runs.get(i).filter(|r| r.vcn <= vcn) else {
                return Err(self
                    .ctx
                    .corrupt_at_path(what, format!("no data run maps cluster {vcn}")));
            };
            let run_end = (r.vcn + r.len) * self.cluster;
            let n = ((run_end - pos) as usize).min(len - done);
            let at = r
                .lcn
                .map(|l| l * self.cluster + (pos - r.vcn * self.cluster));
            f(at, done, n)?;
            done += n;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `off` of a value mapped by `runs` (holes read as zeros).
    pub fn read_runs(&self, runs: &[Run], off: u64, buf: &mut [u8], what: &str) -> Result<()> {
        let len = buf.len();
        self.pieces(runs, off, len, what, |at, from, n| {
            match at {
                Some(a) => self.dev.read_at(a, &mut buf[from..from + n])?,
                None => buf[from..from + n].fill(0),
            }
            Ok(())
        })
    }

    /// Writes `data` at `off` of a value mapped by `runs`; a hole in the way is an error.
    pub fn write_runs(&self, runs: &[Run], off: u64, data: &[u8], what: &str) -> Result<()> {
        self.pieces(runs, off, data.len(), what, |at, from, n| match at {
            Some(a) => self.dev.write_at(a, &data[from..from + n]),
            None => Err(self.ctx.unsupported(
                off + from as u64,
                format!("{what}: writing into a sparse hole"),
            )),
        })
    }

    /// Writes `data` at `off` of a value mapped by `runs`, but only the 4 KiB pieces whose
    /// bytes differ from what the volume holds: rewriting a hive whose few pages changed
    /// stages those pages, not the whole file.
    pub fn write_runs_changed(
        &self,
        runs: &[Run],
        off: u64,
        data: &[u8],
        what: &str,
    ) -> Result<()> {
        const PAGE: usize = 4096;
        const CHUNK: usize = 1 << 20;
        let mut old = vec![0u8; CHUNK.min(data.len())];
        let mut done = 0usize;
        while done < data.len() {
            let n = CHUNK.min(data.len() - done);
            let new = &data[done..done + n];
            let cur = &mut old[..n];
            self.read_runs(runs, off + done as u64, cur, what)?;
            let mut p = 0usize;
            while p < n {
                // Runs of differing pages become one write.
                let q = (p + PAGE).min(n);
                if cur[p..q] == new[p..q] {
                    p = q;
                    continue;
                }
                let mut e = q;
                while e < n {
                    let f = (e + PAGE).min(n);
                    if cur[e..f] == new[e..f] {
                        break;
                    }
                    e = f;
                }
                self.write_runs(runs, off + (done + p) as u64, &new[p..e], what)?;
                p = e;
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `len` zero bytes at `off` of a value mapped by `runs`; holes, which read as
    /// zeros already, are skipped.
    pub fn zero_runs(&self, runs: &[Run], off: u64, len: u64, what: &str) -> Result<()> {
        const CHUNK: usize = 1 << 20;
        let zeros = vec![0u8; CHUNK.min(len as usize)];
        let len = usize::try_from(len).map_err(|_| self.ctx.invalid("zero fill too large"))?;
        self.pieces(runs, off, len, what, |at, _, n| {
            if let Some(a) = at {
                let mut done = 0;
                while done < n {
                    let k = CHUNK.min(n - done);
                    self.dev.write_at(a + done as u64, &zeros[..k])?;
                    done += k;
                }
            }
            Ok(())
        })
    }
}
