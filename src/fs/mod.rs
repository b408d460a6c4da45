//! The fs layer: file systems on a volume. NTFS (own reader), FAT (the EFI system partition).
//!
//! Paths take `/` or `\` as separators and are matched without regard to case (NTFS through
//! the volume's own `$UpCase` table).

pub mod fat;
pub mod ntfs;

use serde::Serialize;

/// One entry of a directory listing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (the long name where a file has several).
    pub name: String,
    /// File identifier: the MFT record number on NTFS, the first cluster on FAT.
    pub inode: u64,
    /// Size of the unnamed data stream in bytes (0 for directories).
    pub size: u64,
    /// A directory.
    pub is_dir: bool,
}

/// Splits a path given with `/` or `\` separators into its non-empty components.
pub fn components(path: &str) -> Vec<&str> {
    path.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}
