//! The allocator: small blocks from the C library's malloc, large ones from mimalloc with
//! transparent huge pages.
//!
//! A fix copies a hive of several MB a few times; under the C library's malloc every copy
//! paid for fresh 4 KiB pages, faulted in and zeroed one by one, and the fix took 1.7 to
//! 1.9 times as long (README, Speed). mimalloc with huge pages keeps those buffers and
//! faults them in 2 MiB at a time. But mimalloc takes its small blocks from huge pages too,
//! and a small command (`inspect`, `ls`) touched a few huge pages for a few hundred KB of
//! small blocks: 19 MB resident instead of 6, most of its start-up spent zeroing them. So
//! blocks of [`LARGE`] bytes or more go to mimalloc and the rest to malloc.
//!
//! Rust hands `dealloc` and `realloc` the layout the block was allocated with, so the size
//! alone says which allocator owns a block; a `realloc` across the line moves the block.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout, System};

/// The smallest block taken from mimalloc.
pub const LARGE: usize = 256 << 10;

/// The split allocator (see the module's documentation).
pub struct Split;

// SAFETY: every block is allocated, reallocated and freed by the same allocator, chosen by
// its size, which the layout Rust passes back to `dealloc` and `realloc` carries; a block
// moved across the line is allocated anew, copied and freed where it came from.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Split {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if layout.size() >= LARGE {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if layout.size() >= LARGE {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the block's own, so the allocator chosen is the one that
        // allocated it.
        unsafe {
            if layout.size() >= LARGE {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was_large, is_large) = (layout.size() >= LARGE, new_size >= LARGE);
        // SAFETY: within one allocator, forwarded with the caller's guarantees; across the
        // line, a new block of the same alignment (valid: the caller guarantees `new_size`
        // rounded up to it does not overflow), the smaller of the two sizes copied between
        // blocks that cannot overlap, and the old block freed by its own allocator.
        unsafe {
            match (was_large, is_large) {
                (true, true) => MiMalloc.realloc(ptr, layout, new_size),
                (false, false) => System.realloc(ptr, layout, new_size),
                _ => {
                    let new = Layout::from_size_align_unchecked(new_size, layout.align());
                    let moved = self.alloc(new);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Blocks that grow and shrink across the line keep their bytes (the global allocator
    /// of this binary's tests is the split one).
    #[test]
    fn blocks_keep_their_bytes_across_the_line() {
        let mut v: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        v.reserve_exact(super::LARGE * 2);
        assert!(v.capacity() >= super::LARGE);
        assert!(v.iter().enumerate().all(|(i, b)| *b == i as u8));
        v.shrink_to_fit();
        assert!(v.capacity() < super::LARGE);
        assert!(v.iter().enumerate().all(|(i, b)| *b == i as u8));
        let big = vec![7u8; super::LARGE + 1];
        let mut z = vec![0u64; super::LARGE];
        z[0] = 1;
        assert_eq!(
            big.iter().map(|&b| b as usize).sum::<usize>(),
            7 * (super::LARGE + 1)
        );
        assert_eq!(z.iter().sum::<u64>(), 1);
    }
}
