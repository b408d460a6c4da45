//! `rehost undo`: restores an image written in place from its undo journal.

use anyhow::Result;
use rehost::disk;
use std::path::Path;

pub fn run(image: &Path) -> Result<i32> {
    let r = disk::undo(image, None)?;
    let commits = r.generations.len();
    println!(
        "{}: {commits} commit{} undone, {} bytes restored, {} -> {} bytes; {} removed",
        image.display(),
        if commits == 1 { "" } else { "s" },
        r.bytes_restored,
        r.len_before,
        r.len_after,
        r.journal.display()
    );
    Ok(0)
}
