//! Write plans: what a commit writes into the host file, and in which order.
//!
//! A container turns the overlay's virtual-disk extents into a [`Plan`]: phases of host
//! writes, each phase flushed before the next begins (so a VHDX's new blocks are on disk
//! before its log points at them, and its log before the BAT is changed). The plan says
//! how long the file becomes; the commit journals the plan's ranges, then carries it out.
//!
//! Writes never overlap one another, except writes marked `scratch` (the VHDX log, which a
//! long commit fills more than once): what they hold between phases is not the image's
//! content, so a rollback restores them without checking them.

use super::{Format, ReadAt};
use rehost_core::error::{Ctx, Result};

/// One write into the host file.
#[derive(Debug, Clone)]
pub struct HostWrite {
    /// File offset.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// Working space whose content between phases is not the image's (the VHDX log).
    pub scratch: bool,
    /// What the write is, for `--dry-run` displays (`"BAT entry 12"`, `"data"`).
    pub what: String,
}

impl HostWrite {
    /// A write of `data` at `offset`.
    pub fn new(offset: u64, data: Vec<u8>, what: impl Into<String>) -> Self {
        HostWrite {
            offset,
            data,
            scratch: false,
            what: what.into(),
        }
    }

    /// The first byte past the write.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// Writes issued together and flushed before the next phase.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// What the phase does (`"data"`, `"log"`, `"header"`).
    pub name: &'static str,
    /// The file's new length, set before the writes.
    pub set_len: Option<u64>,
    /// The writes, in file order.
    pub writes: Vec<HostWrite>,
}

/// Everything a commit writes into one host file.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The container format.
    pub format: Format,
    /// Length of the host file before the commit.
    pub file_len: u64,
    /// Length after it (never shorter).
    pub new_len: u64,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// What the plan does, in words (blocks allocated, headers updated, ...).
    pub notes: Vec<String>,
    /// What the commit repairs in the container besides storing the write (a dirty qcow2's
    /// refcounts rebuilt), which a dry run says up front.
    pub repairs: Vec<String>,
}

impl Plan {
    /// A plan that writes nothing.
    pub fn empty(format: Format, file_len: u64) -> Self {
        Plan {
            format,
            file_len,
            new_len: file_len,
            phases: Vec::new(),
            notes: Vec::new(),
            repairs: Vec::new(),
        }
    }

    /// Every write, phase by phase.
    pub fn writes(&self) -> impl Iterator<Item = &HostWrite> {
        self.phases.iter().flat_map(|p| p.writes.iter())
    }

    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes().next().is_none() && self.new_len == self.file_len
    }

    /// Bytes written in all.
    pub fn bytes_written(&self) -> u64 {
        self.writes().map(|w| w.data.len() as u64).sum()
    }

    /// Drops empty phases and sorts each phase's writes; checks that writes stay inside the
    /// new length, that the file never shrinks and that no write overlaps another unless
    /// both are scratch.
    pub(crate) fn seal(mut self, ctx: &Ctx) -> Result<Self> {
        self.phases
            .retain(|p| !p.writes.is_empty() || p.set_len.is_some());
        if self.new_len < self.file_len {
            return Err(ctx.invalid(format!(
                "a commit would shrink the file from {} to {} bytes",
                self.file_len, self.new_len
            )));
        }
        let mut all: Vec<(u64, u64, bool)> = Vec::new();
        for p in &mut self.phases {
            p.writes.sort_by_key(|w| w.offset);
            for w in &p.writes {
                if w.end() > self.new_len {
                    return Err(ctx.invalid(format!(
                        "a planned write ({}) of {} bytes at {:#x} reaches past the new end \
                         of the file ({:#x})",
                        w.what,
                        w.data.len(),
                        w.offset,
                        self.new_len
                    )));
                }
                all.push((w.offset, w.end(), w.scratch));
            }
        }
        all.sort();
        for pair in all.windows(2) {
            let ((_, end, s1), (start, _, s2)) = (pair[0], pair[1]);
            if start < end && !(s1 && s2) {
                return Err(ctx.invalid(format!(
                    "planned writes overlap at {start:#x}: the container writer is wrong"
                )));
            }
        }
        Ok(self)
    }
}

/// The staged extents widened to whole `unit`-byte units (sectors), the added bytes read
/// from `view` (the disk as staged), touching or overlapping units merged.
pub(crate) fn align(
    view: &dyn ReadAt,
    extents: &[(u64, Vec<u8>)],
    unit: u64,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let size = view.size();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for (at, bytes) in extents {
        let start = at - at % unit;
        let end = (at + bytes.len() as u64)
            .div_ceil(unit)
            .saturating_mul(unit);
        let end = end.min(size);
        match ranges.last_mut() {
            Some((_, e)) if *e >= start => *e = (*e).max(end),
            _ => ranges.push((start, end)),
        }
    }
    let mut out = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        let mut buf = vec![0u8; (end - start) as usize];
        view.read_at(start, &mut buf)?;
        out.push((start, buf));
    }
    Ok(out)
}

/// The staged extents with `start..end` of the disk covered too (read from `view`, the disk
/// as staged), touching or overlapping ranges merged.
pub(crate) fn cover(
    view: &dyn ReadAt,
    extents: &[(u64, Vec<u8>)],
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut ranges: Vec<(u64, u64)> = extents
        .iter()
        .map(|(at, b)| (*at, at + b.len() as u64))
        .chain([(start, end.min(view.size()))])
        .filter(|(a, b)| a < b)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some((_, e)) if *e >= a => *e = (*e).max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out = Vec::with_capacity(merged.len());
    for (a, b) in merged {
        let mut buf = vec![0u8; (b - a) as usize];
        view.read_at(a, &mut buf)?;
        out.push((a, buf));
    }
    Ok(out)
}

/// Calls `f(block, offset within the block, bytes)` for each piece of each extent cut at
/// `block`-byte boundaries.
pub(crate) fn by_block(
    extents: &[(u64, Vec<u8>)],
    block: u64,
    mut f: impl FnMut(u64, u64, &[u8]) -> Result<()>,
) -> Result<()> {
    for (at, bytes) in extents {
        let mut done = 0usize;
        while done < bytes.len() {
            let pos = at + done as u64;
            let within = pos % block;
            let n = ((block - within) as usize).min(bytes.len() - done);
            f(pos / block, within, &bytes[done..done + n])?;
            done += n;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::error::Layer;
    use rehost_core::io::Memory;

    #[test]
    fn alignment_reads_the_rest_of_each_sector_and_merges() {
        let base: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let m = Memory::new("m", base.clone());
        let ex = vec![
            (10u64, vec![0xAA; 4]),
            (600, vec![0xBB; 2]),
            (1600, vec![1]),
        ];
        let a = align(&m, &ex, 512).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].0, a[0].1.len()), (0, 1024));
        assert_eq!((a[1].0, a[1].1.len()), (1536, 512));
        // The view is the base here: the padding is the base's bytes.
        assert_eq!(a[0].1[..], base[..1024]);
    }

    #[test]
    fn overlapping_writes_are_refused_unless_scratch() {
        let ctx = Ctx::new("m", Layer::Raw);
        let mut p = Plan::empty(Format::Raw, 100);
        p.phases.push(Phase {
            name: "a",
            set_len: None,
            writes: vec![HostWrite::new(0, vec![0; 10], "x")],
        });
        p.phases.push(Phase {
            name: "b",
            set_len: None,
            writes: vec![HostWrite::new(5, vec![0; 10], "y")],
        });
        assert!(p.clone().seal(&ctx).is_err());
        for ph in &mut p.phases {
            ph.writes[0].scratch = true;
        }
        assert!(p.clone().seal(&ctx).is_ok());
        p.phases[0].writes[0].offset = 95;
        assert!(p.seal(&ctx).is_err(), "past the end");
    }
}
