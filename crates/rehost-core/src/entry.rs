//! What every file system's listing says: a directory entry, a file's details, and the
//! components of a path given with `/` or `\` separators.

use serde::Serialize;

/// One entry of a directory listing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (the long name where a file has several).
    pub name: String,
    /// File identifier: the MFT record number on NTFS; 0 on FAT, which has none.
    pub inode: u64,
    /// Size of the unnamed data stream in bytes (0 for directories).
    pub size: u64,
    /// A directory.
    pub is_dir: bool,
}

/// What a file's own record says, beyond its directory entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Details {
    /// Exact size of the unnamed data stream (0 for directories).
    pub size: u64,
    /// Bytes allocated to the unnamed data stream.
    pub allocated: u64,
    /// Named data streams and their sizes.
    pub streams: Vec<(String, u64)>,
    /// Last modification time (Windows FILETIME: 100 ns ticks since 1601).
    pub modified: Option<u64>,
}

/// Splits a path given with `/` or `\` separators into its non-empty components.
pub fn components(path: &str) -> Vec<&str> {
    path.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}
