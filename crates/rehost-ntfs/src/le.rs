//! Little-endian field reads that never panic: the workspace's one reader
//! ([`rehost_core::le`]), under the names the NTFS parser uses.

pub use rehost_core::le::{u16_at, u32_at, u64_at, utf16_at};
