//! The allocator: small blocks from the C library's malloc, large ones from this module, on
//! transparent huge pages, and kept for reuse when freed.
//!
//! A fix copies a hive of several MB a few times; under the C library's malloc every copy
//! paid for fresh 4 KiB pages, faulted in and zeroed one by one (each large block is a
//! mapping of its own, unmapped when freed), and the fix took 1.7 to 1.9 times as long
//! (README, Speed). Here a block of [`LARGE`] bytes or more belongs to a power-of-two class:
//! - one of 2 MiB or more is a mapping of its class's length (address space only: a page is
//!   backed when first touched), starting on a 2 MiB boundary and asking for huge pages, so
//!   it faults in 2 MiB at a time; freed, it is kept (up to [`KEPT_BYTES`] in all) for the
//!   next block of its class, whose pages are then already there; growing it beyond its
//!   class moves its pages with `mremap`, without copying them;
//! - one below 2 MiB is a slot carved from a 2 MiB huge-page chunk of its class; freed, it
//!   goes on its class's free list (kept for the process's life: at most the most such
//!   blocks ever alive at once).
//!
//! Rust hands `dealloc` and `realloc` the layout the block was allocated with, so the size
//! alone says which allocator owns a block and its class.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::Mutex;

/// The smallest block mapped by this module.
pub const LARGE: usize = 256 << 10;
/// Blocks at least this large start on a huge page boundary and ask for huge pages.
const HUGE_PAGE: usize = 2 << 20;
/// The most bytes of freed mappings kept for reuse.
pub const KEPT_BYTES: usize = 256 << 20;
/// The most freed mappings kept for reuse.
const KEPT_MAPPINGS: usize = 32;
/// The largest alignment a mapping gives (a page).
const PAGE: usize = 4096;

/// The split allocator (see the module's documentation).
pub struct Split;

/// The classes below a huge page: 256 KiB, 512 KiB and 1 MiB.
const SLOT_CLASSES: usize = (HUGE_PAGE / LARGE).trailing_zeros() as usize;

/// Freed mappings kept for reuse, and the slot classes' chunks and free lists.
struct Kept {
    /// Kept mappings' addresses and lengths (the first `count`).
    slots: [(usize, usize); KEPT_MAPPINGS],
    count: usize,
    bytes: usize,
    /// Each slot class's next free slot (0: none); a free slot's first word holds the next.
    free: [usize; SLOT_CLASSES],
    /// Each slot class's chunk being carved: the next slot's address and the chunk's end.
    carve: [(usize, usize); SLOT_CLASSES],
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    slots: [(0, 0); KEPT_MAPPINGS],
    count: 0,
    bytes: 0,
    free: [0; SLOT_CLASSES],
    carve: [(0, 0); SLOT_CLASSES],
});

/// The slot class of a block whose class is `len` bytes, if it is below a huge page.
fn slot_class(len: usize) -> Option<usize> {
    (len < HUGE_PAGE).then(|| (len / LARGE).trailing_zeros() as usize)
}

/// A slot of `len` bytes (a slot class's length): a freed one, or the next of its chunk.
fn take_slot(class: usize, len: usize, size: usize, zeroed: bool) -> *mut u8 {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let head = kept.free[class];
    if head != 0 {
        let p = head as *mut u8;
        // SAFETY: a free slot is `len` >= `size` bytes of a chunk this module mapped, no
        // block lives in it, and its first word was written by `free_slot`.
        unsafe {
            kept.free[class] = p.cast::<usize>().read();
            if zeroed {
                ptr::write_bytes(p, 0, size);
            }
        }
        return p;
    }
    let (next, end) = kept.carve[class];
    if next == end {
        let chunk = map(HUGE_PAGE);
        if chunk.is_null() {
            return chunk;
        }
        kept.carve[class] = (chunk as usize + len, chunk as usize + HUGE_PAGE);
        return chunk;
    }
    // A slot never carved before is zero, as the chunk was mapped.
    kept.carve[class].0 = next + len;
    next as *mut u8
}

/// Puts a freed slot on its class's free list.
fn free_slot(class: usize, p: *mut u8) {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the slot is this module's, at least a word long and page-aligned, and no
    // block lives in it now.
    unsafe { p.cast::<usize>().write(kept.free[class]) };
    kept.free[class] = p as usize;
}

/// Whether a block of this layout is one of this module's mappings.
fn mapped(size: usize, align: usize) -> bool {
    size >= LARGE && align <= PAGE
}

/// The length of the mapping that holds a block of `size` bytes, if it has one.
fn class(size: usize) -> Option<usize> {
    size.checked_next_power_of_two()
}

/// A kept mapping of exactly `len` bytes, if there is one.
fn take_kept(len: usize) -> Option<*mut u8> {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let count = kept.count;
    let i = kept.slots[..count].iter().position(|s| s.1 == len)?;
    let (addr, _) = kept.slots[i];
    kept.slots[i] = kept.slots[count - 1];
    kept.count -= 1;
    kept.bytes -= len;
    Some(addr as *mut u8)
}

/// Keeps a freed mapping for reuse if there is room; says whether it did.
fn keep(addr: *mut u8, len: usize) -> bool {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if kept.count == KEPT_MAPPINGS || kept.bytes.saturating_add(len) > KEPT_BYTES {
        return false;
    }
    let count = kept.count;
    kept.slots[count] = (addr as usize, len);
    kept.count += 1;
    kept.bytes += len;
    true
}

/// A new mapping of `len` bytes (a power of two), zero-filled; null if the kernel refuses.
fn map(len: usize) -> *mut u8 {
    let huge = len >= HUGE_PAGE;
    // A huge-page-sized mapping is over-mapped by one huge page, then trimmed to start on a
    // huge page boundary.
    let Some(span) = (if huge {
        len.checked_add(HUGE_PAGE)
    } else {
        Some(len)
    }) else {
        return ptr::null_mut();
    };
    // SAFETY: an anonymous private mapping at an address the kernel chooses touches no
    // existing memory.
    let base = unsafe {
        libc::mmap(
            ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    if !huge {
        return base.cast();
    }
    let start = (base as usize).next_multiple_of(HUGE_PAGE);
    let head = start - base as usize;
    let tail = span - head - len;
    // SAFETY: the head and tail lie inside the mapping just made and nothing points into
    // them; madvise only advises on the part kept.
    unsafe {
        if head > 0 {
            libc::munmap(base, head);
        }
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    start as *mut u8
}

/// Frees a block: a slot onto its free list, a mapping kept for reuse or unmapped.
fn unmap(addr: *mut u8, len: usize) {
    if let Some(c) = slot_class(len) {
        free_slot(c, addr);
    } else if !keep(addr, len) {
        // SAFETY: the mapping is this module's, `len` long, and no block lives in it now.
        unsafe { libc::munmap(addr.cast(), len) };
    }
}

/// A mapped block of `size` bytes: a kept mapping of its class, or a new one.
fn alloc_mapped(size: usize, zeroed: bool) -> *mut u8 {
    let Some(len) = class(size) else {
        return ptr::null_mut();
    };
    if let Some(c) = slot_class(len) {
        return take_slot(c, len, size, zeroed);
    }
    match take_kept(len) {
        Some(p) => {
            if zeroed {
                // SAFETY: the kept mapping is `len` >= `size` bytes, and no block lives in it.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            p
        }
        None => map(len),
    }
}

/// Moves a mapped block to a mapping of `new_len` bytes (its pages moved, not copied).
fn remap(addr: *mut u8, len: usize, new_len: usize) -> *mut u8 {
    // SAFETY: the mapping is this module's and `len` long; MREMAP_MAYMOVE lets the kernel
    // pick a new address, and the old one is not used again.
    let p = unsafe { libc::mremap(addr.cast(), len, new_len, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    if new_len >= HUGE_PAGE && (p as usize) % HUGE_PAGE == 0 {
        // SAFETY: advice on a mapping this module owns.
        unsafe { libc::madvise(p, new_len, libc::MADV_HUGEPAGE) };
    }
    p.cast()
}

// SAFETY: a block's layout, which Rust passes back to `dealloc` and `realloc`, says which
// allocator owns it and, for one of this module's, its class; a block moved across the line
// or between a slot and a mapping is allocated anew, copied and freed where it came from.
// Mappings and slots are page-aligned, and only layouts of at most page alignment are ours.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Split {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return alloc_mapped(layout.size(), false);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return alloc_mapped(layout.size(), true);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout.size(), layout.align()) {
            if let Some(len) = class(layout.size()) {
                unmap(ptr, len);
            }
            return;
        }
        // SAFETY: `layout` is the block's own, so malloc allocated it.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let (was, is) = (mapped(layout.size(), align), mapped(new_size, align));
        if was && is {
            let (Some(len), Some(new_len)) = (class(layout.size()), class(new_size)) else {
                return ptr::null_mut();
            };
            if len == new_len {
                return ptr;
            }
            if slot_class(len).is_none() && slot_class(new_len).is_none() {
                return remap(ptr, len, new_len);
            }
        } else if !was && !is {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a new block of the same alignment (valid: the caller guarantees `new_size`
        // rounded up to it does not overflow), the smaller of the two sizes copied between
        // blocks that cannot overlap, and the old block freed by its own allocator.
        unsafe {
            let new = Layout::from_size_align_unchecked(new_size, align);
            let moved = self.alloc(new);
            if !moved.is_null() {
                ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LARGE;

    /// Blocks that grow and shrink across the line, and within and across classes, keep
    /// their bytes (the global allocator of this binary's tests is the split one).
    #[test]
    fn blocks_keep_their_bytes_across_the_line() {
        let mut v: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        v.reserve_exact(LARGE * 2);
        assert!(v.capacity() >= LARGE);
        assert!(v.iter().enumerate().all(|(i, b)| *b == i as u8));
        v.extend((0..(5 << 20)).map(|i: u32| (i % 251) as u8));
        assert!(v[..1000].iter().enumerate().all(|(i, b)| *b == i as u8));
        assert!(v[1000..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8));
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.capacity() < LARGE);
        assert!(v.iter().enumerate().all(|(i, b)| *b == i as u8));
    }

    /// A freed block reused for a zeroed one reads as zeros, one reused for a plain block is
    /// usable whole, and blocks alive at once never overlap: for each class, slots (below
    /// 2 MiB) and mappings alike.
    #[test]
    fn reused_blocks_are_zeroed_when_asked_and_never_shared() {
        for size in [LARGE, 300 << 10, 700 << 10, (1 << 20) + 1, 3 << 20] {
            for round in 0..3u8 {
                let mut dirty: Vec<Vec<u8>> = (0..5).map(|i| vec![i + round; size]).collect();
                for (i, d) in dirty.iter().enumerate() {
                    assert!(d.iter().all(|&b| b == i as u8 + round), "{size} {i}");
                }
                dirty.iter_mut().for_each(|d| d.fill(0xa5));
                drop(dirty);
                let z = vec![0u8; size];
                assert!(z.iter().all(|&b| b == 0), "{size}");
                let mut w: Vec<u64> = Vec::with_capacity(size / 8);
                w.extend(0..(size / 8) as u64);
                let n = (size / 8) as u64;
                assert_eq!(w.iter().sum::<u64>(), (n - 1) * n / 2);
            }
        }
    }
}
