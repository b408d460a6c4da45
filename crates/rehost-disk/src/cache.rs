//! A block cache above a container: the parsers' many small reads cost one host read per block.
//!
//! Blocks are [`BLOCK_SIZE`] bytes, aligned; the cache is split into shards, each a
//! CLOCK ring behind its own mutex, so that threads reading one image rarely wait on each
//! other. Reads of [`BYPASS`] bytes or more go straight to the container: bulk data (a file
//! copied out with `cat`) would only evict the metadata worth keeping, unless the cache is
//! made to keep them ([`BlockCache::keeping_bulk`]): a session that reads the same hives
//! several times (a fix: check, edit, verify, check again) then reads each byte of the
//! image once, as long as it fits.

use super::ReadAt;
use rehost_core::error::Result;
use std::collections::HashMap;
use std::sync::Mutex;

/// Size of a cached block in bytes.
pub const BLOCK_SIZE: usize = 4096;
/// Reads at least this long bypass the cache.
pub const BYPASS: usize = 64 * 1024;
const SHARDS: usize = 16;

struct Slot {
    block: u64,
    referenced: bool,
    data: Box<[u8]>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, usize>,
    slots: Vec<Slot>,
    hand: usize,
}

impl Shard {
    fn get(&mut self, block: u64, out: &mut [u8], from: usize) -> bool {
        match self.map.get(&block) {
            Some(&i) => {
                let slot = &mut self.slots[i];
                slot.referenced = true;
                out.copy_from_slice(&slot.data[from..from + out.len()]);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, block: u64, data: Box<[u8]>, capacity: usize) {
        if self.map.contains_key(&block) {
            return;
        }
        if self.slots.len() < capacity {
            self.map.insert(block, self.slots.len());
            self.slots.push(Slot {
                block,
                referenced: false,
                data,
            });
            return;
        }
        // CLOCK: pass over referenced slots, clearing their bit, and evict the first
        // unreferenced one. Terminates within two turns of the ring.
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            self.map.remove(&slot.block);
            *slot = Slot {
                block,
                referenced: false,
                data,
            };
            self.map.insert(block, i);
            return;
        }
    }
}

/// A read cache of fixed-size blocks above any [`ReadAt`].
pub struct BlockCache<D> {
    inner: D,
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    keep_bulk: bool,
    bulk: Mutex<Bulk>,
}

/// Bulk reads kept whole, by offset, and the order they came in (for eviction).
#[derive(Default)]
struct Bulk {
    map: std::collections::BTreeMap<u64, Box<[u8]>>,
    order: std::collections::VecDeque<u64>,
    bytes: usize,
}

impl<D: ReadAt> BlockCache<D> {
    /// A cache of about `blocks` blocks above `inner`. Zero blocks makes a pass-through.
    pub fn new(inner: D, blocks: usize) -> Self {
        let per_shard = blocks.div_ceil(SHARDS);
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        BlockCache {
            inner,
            shards,
            per_shard,
            keep_bulk: false,
            bulk: Mutex::new(Bulk::default()),
        }
    }

    /// A cache of about `blocks` blocks that keeps bulk reads too, whole, up to as many
    /// bytes again: a bulk read inside one kept is served from it; otherwise it is read
    /// below in one piece and kept.
    pub fn keeping_bulk(inner: D, blocks: usize) -> Self {
        BlockCache {
            keep_bulk: true,
            ..Self::new(inner, blocks)
        }
    }

    /// A bulk read: from a kept extent that holds all of it (one copy), else in one read
    /// below, kept whole as an extent of its own; the oldest extents go when the kept
    /// bytes pass the budget.
    fn read_bulk(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.copy_kept(offset, buf) {
            return Ok(());
        }
        self.inner.read_at(offset, buf)?;
        let budget = self.per_shard * SHARDS * BLOCK_SIZE;
        let mut bulk = self.bulk.lock().unwrap_or_else(|p| p.into_inner());
        let longer = bulk
            .map
            .get(&offset)
            .is_none_or(|old| old.len() < buf.len());
        if longer && buf.len() <= budget {
            if let Some(old) = bulk.map.insert(offset, buf.into()) {
                bulk.bytes -= old.len();
            }
            bulk.bytes += buf.len();
            bulk.order.push_back(offset);
            while bulk.bytes > budget {
                let Some(oldest) = bulk.order.pop_front() else {
                    break;
                };
                if let Some(old) = bulk.map.remove(&oldest) {
                    bulk.bytes -= old.len();
                }
            }
        }
        Ok(())
    }

    /// The kept bulk read that holds all of `buf.len()` bytes at `offset`, copied into `buf`;
    /// false when none does.
    fn copy_kept(&self, offset: u64, buf: &mut [u8]) -> bool {
        let end = offset + buf.len() as u64;
        let bulk = self.bulk.lock().unwrap_or_else(|p| p.into_inner());
        match bulk.map.range(..=offset).next_back() {
            Some((&start, data)) if start + data.len() as u64 >= end => {
                let from = (offset - start) as usize;
                buf.copy_from_slice(&data[from..from + buf.len()]);
                true
            }
            _ => false,
        }
    }

    /// The device below the cache.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn shard(&self, block: u64) -> &Mutex<Shard> {
        &self.shards[(block as usize) % SHARDS]
    }

    fn read_block_part(&self, block: u64, from: usize, out: &mut [u8]) -> Result<()> {
        let shard = self.shard(block);
        if shard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(block, out, from)
        {
            return Ok(());
        }
        let start = block * BLOCK_SIZE as u64;
        let len = (self.inner.size() - start).min(BLOCK_SIZE as u64) as usize;
        let mut data = vec![0u8; BLOCK_SIZE].into_boxed_slice();
        self.inner.read_at(start, &mut data[..len])?;
        out.copy_from_slice(&data[from..from + out.len()]);
        shard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(block, data, self.per_shard);
        Ok(())
    }
}

impl<D: ReadAt> ReadAt for BlockCache<D> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.per_shard == 0 || !super::in_bounds(offset, buf.len(), self.size()) {
            // Out-of-bounds reads go below too, so that the container names the error.
            return self.inner.read_at(offset, buf);
        }
        if buf.len() >= BYPASS {
            return if self.keep_bulk {
                self.read_bulk(offset, buf)
            } else {
                self.inner.read_at(offset, buf)
            };
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let block = pos / BLOCK_SIZE as u64;
            let from = (pos % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - from).min(buf.len() - done);
            self.read_block_part(block, from, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        self.inner.allocated()
    }

    /// A bulk read served from what is kept, or read below and not kept; a short read goes
    /// through the block cache as ever (it costs little to keep).
    fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if buf.len() < BYPASS || self.per_shard == 0 {
            return self.read_at(offset, buf);
        }
        if self.keep_bulk && self.copy_kept(offset, buf) {
            return Ok(());
        }
        self.inner.read_once(offset, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::error::{Ctx, Layer};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Pattern {
        size: u64,
        reads: AtomicUsize,
    }

    impl ReadAt for Pattern {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            if !crate::in_bounds(offset, buf.len(), self.size) {
                return Err(Ctx::new("p", Layer::Raw).out_of_bounds(
                    offset,
                    buf.len() as u64,
                    self.size,
                ));
            }
            self.reads.fetch_add(1, Ordering::Relaxed);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = ((offset + i as u64) % 251) as u8;
            }
            Ok(())
        }
        fn size(&self) -> u64 {
            self.size
        }
    }

    #[test]
    fn reads_match_the_device_and_hit_the_cache() {
        let dev = Pattern {
            size: 100_000,
            reads: AtomicUsize::new(0),
        };
        let cache = BlockCache::new(dev, 8);
        for &(off, len) in &[(0u64, 10usize), (4090, 20), (99_990, 10), (5000, 9000)] {
            let mut buf = vec![0u8; len];
            cache.read_at(off, &mut buf).unwrap();
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, ((off + i as u64) % 251) as u8, "offset {off} + {i}");
            }
        }
        let before = cache.inner().reads.load(Ordering::Relaxed);
        let mut buf = [0u8; 10];
        cache.read_at(2, &mut buf).unwrap();
        assert_eq!(
            cache.inner().reads.load(Ordering::Relaxed),
            before,
            "cached"
        );
        assert!(cache.read_at(99_995, &mut buf).is_err(), "past the end");
    }

    #[test]
    fn eviction_keeps_contents_right() {
        let dev = Pattern {
            size: 1 << 20,
            reads: AtomicUsize::new(0),
        };
        let cache = BlockCache::new(dev, 16);
        for round in 0..3u64 {
            for blk in 0..200u64 {
                let off = (blk * 4096 + round * 7) % ((1 << 20) - 16);
                let mut buf = [0u8; 16];
                cache.read_at(off, &mut buf).unwrap();
                assert_eq!(buf[0], (off % 251) as u8);
            }
        }
    }

    #[test]
    fn reads_once_are_served_from_what_is_kept_but_never_kept() {
        let dev = Pattern {
            size: 1 << 22,
            reads: AtomicUsize::new(0),
        };
        let cache = BlockCache::keeping_bulk(dev, 1024);
        let reads = || cache.inner().reads.load(Ordering::Relaxed);
        let mut buf = vec![0u8; 200_000];
        // Read once, twice: below each time, and kept neither time.
        cache.read_once(5000, &mut buf).unwrap();
        cache.read_once(5000, &mut buf).unwrap();
        assert_eq!(reads(), 2);
        assert!(buf
            .iter()
            .enumerate()
            .all(|(i, b)| *b == ((5000 + i) % 251) as u8));
        cache.read_at(5000, &mut buf).unwrap();
        assert_eq!(reads(), 3, "a read once left nothing kept");
        // What a plain read kept serves a read once.
        cache.read_once(5000, &mut buf).unwrap();
        assert_eq!(reads(), 3);
        // A short read once goes through the block cache as any short read does.
        let mut small = [0u8; 100];
        cache.read_once(1 << 21, &mut small).unwrap();
        cache.read_at(1 << 21, &mut small).unwrap();
        assert_eq!(reads(), 4);
        assert!(small
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (((1 << 21) + i) % 251) as u8));
    }

    #[test]
    fn bulk_reads_are_kept_when_asked_and_read_below_once() {
        let dev = Pattern {
            size: 1 << 22,
            reads: AtomicUsize::new(0),
        };
        let cache = BlockCache::keeping_bulk(dev, 1024);
        let check = |off: u64, len: usize| {
            let mut buf = vec![0u8; len];
            cache.read_at(off, &mut buf).unwrap();
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, ((off + i as u64) % 251) as u8, "offset {off} + {i}");
            }
        };
        // A read at any alignment is kept whole.
        check(1000, 300_000);
        assert_eq!(cache.inner().reads.load(Ordering::Relaxed), 1);
        // Reads inside the first: served from it.
        check(4096, 200_000);
        check(8192 + 17, 100_000);
        assert_eq!(cache.inner().reads.load(Ordering::Relaxed), 1);
        // Reaching past what was kept: one more read below.
        check(250_000, 100_000);
        assert_eq!(cache.inner().reads.load(Ordering::Relaxed), 2);
        // Beyond the capacity the cache evicts and stays right.
        for n in 0..40u64 {
            check(n * 100_003, 70_000);
        }
        check(1000, 300_000);
        // A plain cache leaves bulk reads alone.
        let plain = BlockCache::new(
            Pattern {
                size: 1 << 20,
                reads: AtomicUsize::new(0),
            },
            1024,
        );
        let mut buf = vec![0u8; 100_000];
        plain.read_at(0, &mut buf).unwrap();
        plain.read_at(0, &mut buf).unwrap();
        assert_eq!(plain.inner().reads.load(Ordering::Relaxed), 2);
    }
}
