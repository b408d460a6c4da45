//! The `rehost` command.

fn main() {
    std::process::exit(rehost_cli());
}

fn rehost_cli() -> i32 {
    0
}
