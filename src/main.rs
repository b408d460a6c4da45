//! The `rehost` command: a thin layer over the library (see `src/cli/`).

mod cli;

/// mimalloc, with its transparent huge pages: a fix copies a hive of several MB a few times,
/// and under glibc's malloc every copy paid for fresh 4 KiB pages, faulted in and zeroed one
/// by one, a third of its time. It costs each process about half a millisecond to start
/// (README, Speed).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::main());
}
