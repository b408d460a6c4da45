//! The `rehost` command: a thin layer over the library (see `src/cli/`).

mod cli;

mod alloc;

/// Small blocks from malloc, large ones from mimalloc with huge pages (see `alloc`).
#[global_allocator]
static ALLOCATOR: alloc::Split = alloc::Split;

/// mimalloc's `mi_option_destroy_on_exit`: its place in the `mi_option_t` enumeration of
/// mimalloc.h, which keeps retired options as placeholders so that each place stays fixed.
const MI_OPTION_DESTROY_ON_EXIT: libmimalloc_sys::mi_option_t = 22;

fn main() {
    // At exit, mimalloc collects every heap and hands each freed range back to the kernel,
    // one madvise (and TLB shootdown) at a time: about a millisecond of a 4 ms `inspect`, for
    // memory the kernel frees at once when the process ends. The value 2 skips that final
    // pass (and only that: purging while running, which keeps a fleet's RSS down, stays).
    // A user's own MIMALLOC_DESTROY_ON_EXIT still wins.
    if std::env::var_os("MIMALLOC_DESTROY_ON_EXIT").is_none() {
        // SAFETY: mi_option_set stores one integer in mimalloc's option table; it takes no
        // pointer and is called before any other thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_DESTROY_ON_EXIT, 2)
        };
    }
    std::process::exit(cli::main());
}
