//! The `rehost` command: a thin layer over the library (see `src/cli/`).

mod cli;

/// mimalloc keeps freed memory for the next allocation, where glibc's malloc returns each
/// large block to the kernel: a fix copies a hive of several MB a few times, and with glibc
/// every copy pays for fresh pages (faulted in and zeroed), a third of its time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::main());
}
