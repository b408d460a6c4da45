//! The file as the VHDX reader sees it: the host file, with the updates of a replayed log
//! laid over it in memory. Nothing is ever written back.
//!
//! The overlay is sparse: 4 KiB pages written by data descriptors and ranges zeroed by zero
//! descriptors, kept disjoint (a later update hides an earlier one). A read is split only
//! where the overlay changes, so a read that misses it is one read of the host file.

use crate::{in_bounds, HostFile, ReadAt};
use rehost_core::error::{Ctx, Result};
use std::collections::BTreeMap;

/// Size of a logged page.
pub(super) const PAGE: u64 = 4096;

/// The host file seen through the replayed log.
pub(super) struct Source {
    file: HostFile,
    ctx: Ctx,
    /// Logged pages by file offset (multiples of [`PAGE`]).
    pages: BTreeMap<u64, Box<[u8]>>,
    /// Zeroed ranges, start -> end, disjoint and not touching the logged pages.
    zeros: BTreeMap<u64, u64>,
    size: u64,
}

impl Source {
    /// The file as it is.
    pub fn new(file: HostFile, ctx: Ctx) -> Self {
        let size = file.size();
        Source {
            file,
            ctx,
            pages: BTreeMap::new(),
            zeros: BTreeMap::new(),
            size,
        }
    }

    /// The host file.
    pub fn file(&self) -> &HostFile {
        &self.file
    }

    /// Size of the file as seen: a replayed log may extend it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Grows the size seen to at least `size`; bytes past the host file's end read as zeros.
    pub fn grow_to(&mut self, size: u64) {
        self.size = self.size.max(size);
    }

    /// Lays a page over the file at `offset`, a multiple of [`PAGE`] that the log checked
    /// against its largest file offset (so `offset + PAGE` cannot overflow).
    pub fn put_page(&mut self, offset: u64, page: Box<[u8]>) {
        debug_assert!(offset % PAGE == 0 && page.len() == PAGE as usize);
        self.cut_zeros(offset, offset + PAGE);
        self.pages.insert(offset, page);
        self.grow_to(offset + PAGE);
    }

    /// Lays zeros over `offset..end` (checked by the log), hiding earlier pages there.
    pub fn put_zeros(&mut self, offset: u64, end: u64) {
        if end <= offset {
            return;
        }
        let hidden: Vec<u64> = self.pages.range(offset..end).map(|(k, _)| *k).collect();
        for k in hidden {
            self.pages.remove(&k);
        }
        // Merge with every range that overlaps or touches the new one.
        let (mut start, mut stop) = (offset, end);
        let touching: Vec<(u64, u64)> = self
            .zeros
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= offset)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.zeros.remove(&s);
            start = start.min(s);
            stop = stop.max(e);
        }
        self.zeros.insert(start, stop);
        self.grow_to(end);
    }

    /// Removes `offset..end` from the zeroed ranges.
    fn cut_zeros(&mut self, offset: u64, end: u64) {
        let overlapping: Vec<(u64, u64)> = self
            .zeros
            .range(..end)
            .rev()
            .take_while(|(_, e)| **e > offset)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.zeros.remove(&s);
            if s < offset {
                self.zeros.insert(s, offset);
            }
            if e > end {
                self.zeros.insert(end, e);
            }
        }
    }

    /// Whether a log was laid over the file.
    pub fn replayed(&self) -> bool {
        !self.pages.is_empty() || !self.zeros.is_empty()
    }

    /// Reads `buf` at `offset`: one host read where the overlay does not intervene.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !in_bounds(offset, buf.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, self.size));
        }
        if !self.replayed() {
            return self.file_part(offset, buf);
        }
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let out = &mut buf[(pos - offset) as usize..];
            let page = pos - pos % PAGE;
            if let Some(p) = self.pages.get(&page) {
                let from = (pos - page) as usize;
                let n = (PAGE - (pos - page)).min(end - pos) as usize;
                out[..n].copy_from_slice(&p[from..from + n]);
                pos += n as u64;
                continue;
            }
            if let Some((_, &e)) = self
                .zeros
                .range(..=pos)
                .next_back()
                .filter(|(_, e)| **e > pos)
            {
                let n = (e.min(end) - pos) as usize;
                out[..n].fill(0);
                pos += n as u64;
                continue;
            }
            // Neither: the host file, up to the next page or zeroed range.
            let next_page = self.pages.range(pos..).next().map_or(end, |(k, _)| *k);
            let next_zero = self.zeros.range(pos..).next().map_or(end, |(s, _)| *s);
            let stop = end.min(next_page).min(next_zero);
            let n = (stop - pos) as usize;
            self.file_part(pos, &mut out[..n])?;
            pos = stop;
        }
        Ok(())
    }

    /// Reads from the host file; bytes past its end (a file the log extended) are zeros.
    fn file_part(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let n = self.file.read_some_at(offset, buf)?;
        buf[n..].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IoStats;
    use rehost_core::error::Layer;

    /// Random page writes and zeroed ranges, the last one winning, against a plain model;
    /// reads that miss the overlay are one host read.
    #[test]
    fn the_overlay_matches_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let len = 64 * PAGE as usize;
        let base: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &base).unwrap();
        let stats = IoStats::new();
        let file = HostFile::open(&path, false, stats.clone()).unwrap();
        let mut src = Source::new(file, Ctx::new("f", Layer::Vhdx));
        // A far read before any update: one host read.
        let mut far = vec![0u8; 10 * PAGE as usize];
        let before = stats.reads();
        src.read(40 * PAGE, &mut far).unwrap();
        assert_eq!(stats.reads() - before, 1);
        let mut model = base.clone();
        model.resize(len + 8 * PAGE as usize, 0);
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..400u64 {
            let page = rnd(70);
            if rnd(2) == 0 {
                let data = vec![(round % 200) as u8 + 1; PAGE as usize];
                let at = (page * PAGE) as usize;
                model[at..at + PAGE as usize].copy_from_slice(&data);
                src.put_page(page * PAGE, data.into_boxed_slice());
            } else {
                let pages = 1 + rnd(6).min(71 - page);
                let (at, end) = (page * PAGE, (page + pages) * PAGE);
                model[at as usize..end as usize].fill(0);
                src.put_zeros(at, end);
            }
            let start = rnd(model.len() as u64 - 1);
            let n = 1 + rnd((model.len() as u64 - start).min(5 * PAGE));
            let mut got = vec![0u8; n as usize];
            if src.read(start, &mut got).is_ok() {
                let want = &model[start as usize..(start + n) as usize];
                assert!(got == want, "round {round}: {n} bytes at {start}");
            } else {
                assert!(start + n > src.size(), "round {round}");
            }
        }
        // The seen size grew with the updates past the end; past it, reads fail.
        assert!(src.size() > len as u64);
        let mut b = [0u8; 1];
        assert!(src.read(src.size(), &mut b).is_err());
        // Zeroed ranges stay merged: never more than there are gaps between them.
        assert!(src.zeros.len() <= 36, "{} ranges", src.zeros.len());
        for ((_, e), (s, _)) in src.zeros.iter().zip(src.zeros.iter().skip(1)) {
            assert!(e < s, "ranges touch or overlap");
        }
    }
}
