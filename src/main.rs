//! The `rehost` command: a thin layer over the library (see `src/cli/`).

mod cli;

mod alloc;

/// Small blocks from malloc, large ones mapped with huge pages and kept (see `alloc`).
#[global_allocator]
static ALLOCATOR: alloc::Split = alloc::Split;

fn main() {
    std::process::exit(cli::main());
}
