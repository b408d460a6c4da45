//! Reading guest clusters: the L1 and L2 tables, standard, zero and compressed clusters, and
//! the subclusters of extended L2 entries (qcow2.txt, "Cluster mapping").

use super::header::{Header, EXTENDED_L2};
use super::Qcow2;
use crate::{HostFile, ReadAt};
use rehost_core::error::Result;

/// Bits 9-55 of an L1 entry or a standard L2 entry: the host offset.
pub(super) const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry: the cluster is compressed.
pub(super) const COMPRESSED: u64 = 1 << 62;
/// Standard L2 entry (version 3, no extended L2): the cluster reads as zeros.
pub(super) const ZERO: u64 = 1;
/// L2 entry: the cluster's refcount is one; with an external data file, the mark that a
/// host offset of 0 is the data file's first cluster, not unallocated.
pub(super) const COPIED: u64 = 1 << 63;
/// Subclusters in a cluster with extended L2 entries.
const SUBCLUSTERS: u64 = 32;

/// How the cluster mapping is laid out.
pub(super) struct Geometry {
    pub cluster_bits: u32,
    /// L2 entries in one L2 table.
    pub l2_entries: u64,
    /// 64-bit words per L2 entry (2 with extended L2).
    pub words: u64,
    /// Version 3: bit 0 of a standard entry means zeros.
    pub zero_flag: bool,
    /// Compressed clusters hold zstd frames, not deflate streams.
    pub zstd: bool,
}

impl Geometry {
    pub fn of(h: &Header) -> Geometry {
        let words = if h.has(EXTENDED_L2) { 2 } else { 1 };
        Geometry {
            cluster_bits: h.cluster_bits,
            l2_entries: h.cluster_size() / (8 * words),
            words,
            zero_flag: h.version >= 3,
            zstd: h.compression_type == 1,
        }
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }
}

impl Qcow2 {
    /// Reads `buf` from guest cluster `cluster`, `within` bytes into it.
    pub(super) fn read_cluster(&self, cluster: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        let g = &self.geometry;
        let l1_index = cluster / g.l2_entries;
        let l2_index = cluster % g.l2_entries;
        let Some(&l1) = self.l1.get(l1_index as usize) else {
            return Err(self.ctx.corrupt(
                self.header.l1_table_offset,
                format!(
                    "guest cluster {cluster} is past the L1 table's {} entries",
                    self.l1.len()
                ),
            ));
        };
        let l2_offset = l1 & OFFSET_MASK;
        if l2_offset == 0 {
            return self.unallocated(cluster, within, buf);
        }
        let l1_at = self.header.l1_table_offset + l1_index * 8;
        let l2 = self.l2_table(l2_offset, l1_at)?;
        let i = (l2_index * g.words) as usize;
        let entry = l2[i];
        let entry_at = l2_offset + i as u64 * 8;
        if entry & COMPRESSED != 0 {
            return self.read_compressed(entry, entry_at, within, buf);
        }
        let host = entry & OFFSET_MASK;
        let allocated = host != 0 || (self.data.is_some() && entry & COPIED != 0);
        if g.words == 1 {
            return if g.zero_flag && entry & ZERO != 0 {
                buf.fill(0);
                Ok(())
            } else if !allocated {
                self.unallocated(cluster, within, buf)
            } else {
                self.read_host(host, entry_at, within, buf)
            };
        }
        // Extended L2: bit n of the bitmap's low half says subcluster n is allocated, bit
        // 32 + n that it reads as zeros.
        let bitmap = l2[i + 1];
        let sub = g.cluster_size() / SUBCLUSTERS;
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = within + pos as u64;
            let n = off / sub;
            let state = |n: u64| (bitmap >> n & 1, bitmap >> (32 + n) & 1);
            let (alloc, zero) = state(n);
            if alloc == 1 && zero == 1 {
                return Err(self.ctx.corrupt(
                    entry_at + 8,
                    format!("subcluster {n} of guest cluster {cluster} is both allocated and zero"),
                ));
            }
            let mut end = n + 1;
            while end < SUBCLUSTERS
                && end * sub < within + buf.len() as u64
                && state(end) == (alloc, zero)
            {
                end += 1;
            }
            let run_end = (end * sub).min(within + buf.len() as u64);
            let piece = &mut buf[pos..pos + (run_end - off) as usize];
            if alloc == 1 {
                if !allocated {
                    return Err(self.ctx.corrupt(
                        entry_at,
                        format!(
                            "guest cluster {cluster} has allocated subclusters but no host offset"
                        ),
                    ));
                }
                self.read_host(host, entry_at, off, piece)?;
            } else if zero == 1 {
                piece.fill(0);
            } else {
                self.unallocated(cluster, off, piece)?;
            }
            pos += piece.len();
        }
        Ok(())
    }

    /// The guest clusters this image maps to data (stored, compressed, or held by an
    /// external data file), as ranges; with a backing file, its ranges too. A cluster whose
    /// entry says zeros is not data. An over-estimate is allowed (the ranges say what may
    /// hold data), never an under-estimate.
    pub(super) fn allocated_ranges(&self) -> Result<Option<Vec<(u64, u64)>>> {
        let mut ranges = match &self.backing {
            Some(b) => match b.allocated()? {
                Some(r) => r,
                None => return Ok(None),
            },
            None => Vec::new(),
        };
        let (g, size) = (&self.geometry, self.header.size);
        let cs = g.cluster_size();
        for (l1_index, &l1) in self.l1.iter().enumerate() {
            let l2_offset = l1 & OFFSET_MASK;
            if l2_offset == 0 {
                continue;
            }
            let l1_at = self.header.l1_table_offset + l1_index as u64 * 8;
            let l2 = self.l2_table(l2_offset, l1_at)?;
            for l2_index in 0..g.l2_entries {
                let at = (l1_index as u64 * g.l2_entries + l2_index).saturating_mul(cs);
                if at >= size {
                    break;
                }
                let Some(&entry) = l2.get((l2_index * g.words) as usize) else {
                    break;
                };
                // Bit 0 of a compressed entry is part of its host offset, not the zero flag.
                let zero =
                    entry & COMPRESSED == 0 && g.words == 1 && g.zero_flag && entry & ZERO != 0;
                let data = entry & COMPRESSED != 0
                    || entry & OFFSET_MASK != 0
                    || (self.data.is_some() && entry & COPIED != 0);
                if data && !zero {
                    ranges.push((at, cs.min(size - at)));
                }
            }
        }
        Ok(Some(rehost_core::io::merge_ranges(ranges)))
    }

    /// The L2 table at `offset`, which the L1 entry at `l1_at` names.
    pub(super) fn l2_table(&self, offset: u64, l1_at: u64) -> Result<std::sync::Arc<[u64]>> {
        let size = self.geometry.cluster_size();
        if offset % size != 0
            || offset
                .checked_add(size)
                .is_none_or(|e| e > self.file.size())
        {
            return Err(self.ctx.corrupt(
                l1_at,
                format!("L1 entry points at an L2 table at {offset:#x}, which is not a whole cluster inside the file"),
            ));
        }
        self.tables.get(offset, || {
            let mut raw = vec![0u8; size as usize];
            self.file.read_at(offset, &mut raw)?;
            Ok(raw
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
                .collect())
        })
    }

    /// A cluster (or subcluster run) stored at `host` in the data file.
    fn read_host(&self, host: u64, entry_at: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        let data: &HostFile = self.data.as_ref().unwrap_or(&self.file);
        let size = self.geometry.cluster_size();
        if host % size != 0 {
            return Err(self.ctx.corrupt(
                entry_at,
                format!("L2 entry's host offset {host:#x} is not cluster-aligned"),
            ));
        }
        let at = host + within;
        if at
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > data.size())
        {
            return Err(self.ctx.corrupt(
                entry_at,
                format!(
                    "L2 entry points at {host:#x}, past the end of {} ({} bytes)",
                    data.name(),
                    data.size()
                ),
            ));
        }
        data.read_at(at, buf)
    }

    /// A compressed cluster: its descriptor holds the host offset and the number of
    /// 512-byte sectors the compressed data spans.
    fn read_compressed(
        &self,
        entry: u64,
        entry_at: u64,
        within: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let g = &self.geometry;
        if self.data.is_some() {
            return Err(self.ctx.corrupt(
                entry_at,
                "a compressed cluster in an image with an external data file",
            ));
        }
        let x = 62 - (g.cluster_bits - 8);
        let host = entry & ((1u64 << x) - 1);
        let sectors = ((entry & !COMPRESSED & !(1 << 63)) >> x) + 1;
        let len = (sectors * 512 - (host & 511)).min(self.file.size().saturating_sub(host));
        if host >= self.file.size() || len == 0 {
            return Err(self.ctx.corrupt(
                entry_at,
                format!(
                    "compressed cluster at {host:#x} is past the end of the file ({} bytes)",
                    self.file.size()
                ),
            ));
        }
        let unit = self.units.get(host, || {
            let mut input = vec![0u8; len as usize];
            self.file.read_at(host, &mut input)?;
            let mut out = vec![0u8; g.cluster_size() as usize];
            if g.zstd {
                crate::inflate::zstd(&input, &mut out, &self.ctx, host)?;
            } else {
                crate::inflate::deflate(&input, &mut out, false, true, &self.ctx, host)?;
            }
            Ok(out)
        })?;
        let from = within as usize;
        buf.copy_from_slice(&unit[from..from + buf.len()]);
        Ok(())
    }

    /// A cluster this image does not hold: the backing file's, or zeros.
    fn unallocated(&self, cluster: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        match &self.backing {
            Some(b) => crate::read_parent(
                b.as_ref(),
                (cluster << self.geometry.cluster_bits) + within,
                buf,
            ),
            None => {
                buf.fill(0);
                Ok(())
            }
        }
    }
}
