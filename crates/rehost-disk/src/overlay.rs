//! The staging overlay: writes land here, above a read-only device, and every read sees
//! them. Nothing reaches the image until a commit takes [`Overlay::extents`] and writes them
//! (in place behind an undo journal, or into a new image).
//!
//! Staged bytes are kept as sorted, non-overlapping extents; a write that overlaps or
//! touches existing extents merges with them, so the extents are always the smallest set
//! of runs that covers what changed.

use super::{ReadAt, WriteAt};
use rehost_core::error::{Ctx, Layer, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Most bytes an overlay stages (a fix writes megabytes; this bounds a runaway writer).
pub const MAX_STAGED: u64 = 8 << 30;

/// Writes staged above a device.
pub struct Overlay {
    base: Arc<dyn ReadAt>,
    extents: RwLock<BTreeMap<u64, Vec<u8>>>,
    /// The disk's size once grown ([`Overlay::grow_to`]); 0 while it has the base's.
    grown: AtomicU64,
    ctx: Ctx,
}

impl Overlay {
    /// An empty overlay above `base`; `ctx` names the image in errors.
    pub fn new(base: Arc<dyn ReadAt>, ctx: Ctx) -> Self {
        Overlay {
            base,
            extents: RwLock::new(BTreeMap::new()),
            grown: AtomicU64::new(0),
            ctx: ctx.with_layer(Layer::Raw),
        }
    }

    /// Makes the disk `size` bytes long, staged like a write: the bytes past the base's end
    /// read as zeros until written. The disk never shrinks here.
    pub fn grow_to(&self, size: u64) -> Result<()> {
        if size < self.size() {
            return Err(self.ctx.invalid(format!(
                "a disk of {} bytes is not grown to {size}: it would shrink",
                self.size()
            )));
        }
        self.grown.store(size, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes the disk was grown by (0: not grown).
    pub fn grown_by(&self) -> u64 {
        self.size() - self.base.size()
    }

    /// The device below, as it was before any staged write.
    pub fn base(&self) -> &Arc<dyn ReadAt> {
        &self.base
    }

    /// The staged extents, sorted by offset, each with its new bytes.
    pub fn extents(&self) -> Vec<(u64, Vec<u8>)> {
        let map = self.extents.read().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(o, b)| (*o, b.clone())).collect()
    }

    /// Bytes staged in all.
    pub fn staged_bytes(&self) -> u64 {
        let map = self.extents.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(|b| b.len() as u64).sum()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        let map = self.extents.read().unwrap_or_else(|p| p.into_inner());
        map.is_empty()
    }

    /// Drops every staged write.
    pub fn clear(&self) {
        let mut map = self.extents.write().unwrap_or_else(|p| p.into_inner());
        map.clear();
    }
}

impl Overlay {
    /// Reads the base's bytes (through `read_once` when `once`), then lays the staged
    /// extents over them.
    fn read(&self, offset: u64, buf: &mut [u8], once: bool) -> Result<()> {
        if !super::in_bounds(offset, buf.len(), self.size()) {
            return Err(self
                .ctx
                .out_of_bounds(offset, buf.len() as u64, self.size()));
        }
        let end = offset + buf.len() as u64;
        // Past the base's end (a grown disk) the bytes are zeros until written.
        let in_base = self
            .base
            .size()
            .saturating_sub(offset)
            .min(buf.len() as u64) as usize;
        let at = offset.min(self.base.size());
        if once {
            self.base.read_once(at, &mut buf[..in_base])?;
        } else {
            self.base.read_at(at, &mut buf[..in_base])?;
        }
        buf[in_base..].fill(0);
        let map = self.extents.read().unwrap_or_else(|p| p.into_inner());
        // The extent that starts before `offset` may reach into the read.
        let first = map.range(..=offset).next_back().map(|(o, _)| *o);
        let from = first.unwrap_or(offset);
        for (o, bytes) in map.range(from..end) {
            let e_end = o + bytes.len() as u64;
            let lo = (*o).max(offset);
            let hi = e_end.min(end);
            if lo < hi {
                buf[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&bytes[(lo - o) as usize..(hi - o) as usize]);
            }
        }
        Ok(())
    }
}

impl ReadAt for Overlay {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read(offset, buf, false)
    }

    fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.read(offset, buf, true)
    }

    fn size(&self) -> u64 {
        self.base.size().max(self.grown.load(Ordering::Relaxed))
    }

    /// What the disk below has, and every staged extent.
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        let Some(mut ranges) = self.base.allocated()? else {
            return Ok(None);
        };
        let map = self.extents.read().unwrap_or_else(|p| p.into_inner());
        ranges.extend(map.iter().map(|(o, b)| (*o, b.len() as u64)));
        Ok(Some(rehost_core::io::merge_ranges(ranges)))
    }
}

impl WriteAt for Overlay {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        if !super::in_bounds(offset, data.len(), self.size()) {
            return Err(self
                .ctx
                .out_of_bounds(offset, data.len() as u64, self.size()));
        }
        if data.is_empty() {
            return Ok(());
        }
        let end = offset + data.len() as u64;
        let mut map = self.extents.write().unwrap_or_else(|p| p.into_inner());
        // Fast paths, so that a large extent is not copied for every write to it: a write
        // inside one extent changes it in place; one that runs on past the end of the extent
        // it starts in (touching no other) extends it.
        let next_start = map.range(offset + 1..).next().map(|(o, _)| *o);
        let staged: u64 = map.values().map(|b| b.len() as u64).sum();
        if let Some((o, b)) = map.range_mut(..=offset).next_back() {
            let e_end = *o + b.len() as u64;
            if end <= e_end {
                let at = (offset - *o) as usize;
                b[at..at + data.len()].copy_from_slice(data);
                return Ok(());
            }
            if offset <= e_end && next_start.is_none_or(|n| n > end) {
                if staged + (end - e_end) > MAX_STAGED {
                    return Err(self.ctx.unsupported(
                        offset,
                        format!("more than {MAX_STAGED} bytes staged in one overlay"),
                    ));
                }
                b.truncate((offset - *o) as usize);
                b.extend_from_slice(data);
                return Ok(());
            }
        }
        // Every extent that overlaps or touches [offset, end) merges into one.
        let mut start = offset;
        let mut stop = end;
        let before = map.range(..=offset).next_back().map(|(o, b)| (*o, b.len()));
        if let Some((o, len)) = before {
            if o + len as u64 >= offset {
                start = o;
            }
        }
        let touching: Vec<u64> = map.range(start..=end).map(|(o, _)| *o).collect();
        for o in &touching {
            stop = stop.max(o + map[o].len() as u64);
        }
        let staged: u64 = map.values().map(|b| b.len() as u64).sum();
        if staged + (stop - start) > MAX_STAGED {
            return Err(self.ctx.unsupported(
                offset,
                format!("more than {MAX_STAGED} bytes staged in one overlay"),
            ));
        }
        let mut merged = vec![0u8; (stop - start) as usize];
        for o in touching {
            if let Some(b) = map.remove(&o) {
                let at = (o - start) as usize;
                merged[at..at + b.len()].copy_from_slice(&b);
            }
        }
        let at = (offset - start) as usize;
        merged[at..at + data.len()].copy_from_slice(data);
        map.insert(start, merged);
        Ok(())
    }
}

/// A window of a writable device: a volume of a staged disk, read and written at
/// volume-relative offsets.
pub struct WindowMut {
    inner: Arc<dyn WriteAt>,
    offset: u64,
    size: u64,
    ctx: Ctx,
}

impl WindowMut {
    /// `size` bytes of `inner` at `offset`; the window must lie inside `inner`.
    pub fn new(inner: Arc<dyn WriteAt>, offset: u64, size: u64, ctx: Ctx) -> Result<Self> {
        if offset.checked_add(size).is_none_or(|e| e > inner.size()) {
            return Err(ctx.corrupt(
                offset,
                format!(
                    "a window of {size:#x} bytes at {offset:#x} reaches past the end of the disk"
                ),
            ));
        }
        Ok(WindowMut {
            inner,
            offset,
            size,
            ctx,
        })
    }

    /// Where the window starts on the device below.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl ReadAt for WindowMut {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !super::in_bounds(offset, buf.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, self.size));
        }
        self.inner.read_at(self.offset + offset, buf)
    }
    fn size(&self) -> u64 {
        self.size
    }
}

impl WriteAt for WindowMut {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        if !super::in_bounds(offset, data.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, data.len() as u64, self.size));
        }
        self.inner.write_at(self.offset + offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::io::Memory;

    fn overlay(n: usize) -> Overlay {
        let base: Vec<u8> = (0..n).map(|i| i as u8).collect();
        Overlay::new(Arc::new(Memory::new("m", base)), Ctx::new("m", Layer::Raw))
    }

    /// A grown disk reads zeros past the base's end until written there; it never shrinks.
    #[test]
    fn a_grown_disk_reads_zeros_past_the_base_and_takes_writes_there() {
        let base = Arc::new(crate::Memory::new("g", vec![7u8; 1000]));
        let ov = Overlay::new(base, Ctx::new("g", Layer::Raw));
        assert!(ov.write_at(990, &[1; 20]).is_err());
        ov.grow_to(1500).unwrap();
        assert_eq!((ov.size(), ov.grown_by()), (1500, 500));
        let mut b = vec![9u8; 20];
        ov.read_at(990, &mut b).unwrap();
        assert_eq!(b[..10], [7; 10]);
        assert_eq!(b[10..], [0; 10]);
        ov.write_at(995, &[1; 10]).unwrap();
        ov.read_at(990, &mut b).unwrap();
        assert_eq!(b, [[7u8; 5], [1; 5], [1; 5], [0; 5]].concat());
        ov.read_at(1500, &mut []).unwrap();
        assert!(ov.read_at(1490, &mut [0; 11]).is_err());
        assert!(ov.grow_to(1200).is_err());
        assert_eq!(ov.extents(), vec![(995, vec![1; 10])]);
    }

    /// Random writes against a plain byte vector: reads and extents always agree with it.
    #[test]
    fn random_writes_read_back_like_a_vector() {
        let mut model: Vec<u8> = (0..4096).map(|i| i as u8).collect();
        let o = overlay(4096);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for round in 0..2000 {
            let at = next(4096);
            let len = next(64).min(4096 - at);
            let data: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
            o.write_at(at, &data).unwrap();
            model[at as usize..(at + len) as usize].copy_from_slice(&data);
            let (ra, rl) = (next(4096), next(300));
            let rl = rl.min(4096 - ra) as usize;
            let mut buf = vec![0u8; rl];
            o.read_at(ra, &mut buf).unwrap();
            assert_eq!(buf, model[ra as usize..ra as usize + rl], "round {round}");
        }
        let ex = o.extents();
        for w in ex.windows(2) {
            assert!(w[0].0 + (w[0].1.len() as u64) < w[1].0, "extents touch");
        }
        let mut rebuilt: Vec<u8> = (0..4096).map(|i| i as u8).collect();
        for (at, b) in ex {
            rebuilt[at as usize..at as usize + b.len()].copy_from_slice(&b);
        }
        assert_eq!(rebuilt, model);
    }

    #[test]
    fn writes_past_the_end_fail_and_windows_shift() {
        let o = Arc::new(overlay(1000));
        assert!(o.write_at(999, &[1, 2]).is_err());
        let w = WindowMut::new(o.clone(), 100, 200, Ctx::new("m", Layer::Volume)).unwrap();
        w.write_at(10, &[0xAA; 4]).unwrap();
        assert!(w.write_at(198, &[0; 4]).is_err());
        let mut b = [0u8; 6];
        o.read_at(109, &mut b).unwrap();
        assert_eq!(b, [109, 0xAA, 0xAA, 0xAA, 0xAA, 114]);
        assert_eq!(o.extents(), vec![(110, vec![0xAA; 4])]);
        assert!(WindowMut::new(o, 900, 200, Ctx::new("m", Layer::Volume)).is_err());
    }
}

#[cfg(test)]
mod cursor_tests {
    use crate::{CursorMut, Memory, Overlay};
    use rehost_core::error::{Ctx, Layer};
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::sync::Arc;

    #[test]
    fn writes_land_in_the_overlay_and_stop_at_the_end() {
        let base = Arc::new(Memory::new("m", vec![7u8; 100]));
        let ov = Arc::new(Overlay::new(base, Ctx::new("m", Layer::Raw)));
        let mut c = CursorMut::new(ov.clone());
        c.seek(SeekFrom::Start(96)).unwrap();
        assert!(c.write_all(&[1, 2, 3, 4, 5, 6]).is_err());
        c.seek(SeekFrom::Start(10)).unwrap();
        c.write_all(&[9, 9]).unwrap();
        let mut b = [0u8; 4];
        c.seek(SeekFrom::Start(9)).unwrap();
        c.read_exact(&mut b).unwrap();
        assert_eq!(b, [7, 9, 9, 7]);
        assert_eq!(ov.extents()[0], (10, vec![9, 9]));
        assert!(c.seek(SeekFrom::Current(-100)).is_err());
    }
}
