//! An image's identity: where it is, its size and modification time, and a hash of the
//! bytes that change when anything writes it.
//!
//! The hash ([`SCHEME`]) is a SHA-256 over, in this order: the first MiB of the file, the
//! last MiB (the whole file when it is smaller than 2 MiB, each byte once), and the
//! container's metadata blocks past the first MiB: for a dynamic or differencing VHD its
//! dynamic header and block allocation table (BAT), for a VHDX every region its region
//! table lists (the BAT and the metadata region). A raw image has no more than its first
//! and last MiB, which hold its MBR or primary GPT and its backup GPT. Each metadata block
//! is hashed up to 64 MiB. The file is read, never written or locked.
//!
//! The hash guards against a changed image whose modification time was kept (a copy with
//! `cp -p`, a restore); it does not read the data blocks, so two images with the same
//! metadata and first and last MiB but different data in the middle hash alike: the
//! identity always takes the path, size and modification time beside it.

use rehost_core::error::{Ctx, Layer, Location, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// The name of the hash scheme, stored beside each hash.
pub const SCHEME: &str = "sha256(first MiB, last MiB, VHD/VHDX metadata) v1";

const MIB: u64 = 1 << 20;
const MAX_META: u64 = 64 * MIB;

/// Who an image is, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Identity {
    /// The canonical path (symbolic links resolved).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Device and inode: the same file under two names has the same pair.
    pub dev: u64,
    /// See `dev`.
    pub inode: u64,
    /// Hex SHA-256 as [`SCHEME`] says.
    pub hash: String,
}

impl Identity {
    /// Reads the identity of the image at `path`.
    pub fn of(path: &Path) -> Result<Identity> {
        let ctx = Ctx::new(path.display().to_string(), Layer::File);
        let io = |e: std::io::Error| ctx.error(Location::None, e.into());
        let canonical = std::fs::canonicalize(path).map_err(io)?;
        let file = File::open(&canonical).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let hash = hash(&file, meta.len()).map_err(io)?;
        Ok(Identity {
            path: canonical.display().to_string(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            dev: meta.dev(),
            inode: meta.ino(),
            hash,
        })
    }
}

/// Reads up to `len` bytes at `at` (fewer at the end of the file).
fn read(file: &File, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The (offset, length) of the container's metadata blocks, as far as they can be read;
/// a damaged structure yields fewer blocks, never an error.
fn metadata_blocks(file: &File, size: u64, head: &[u8]) -> std::io::Result<Vec<(u64, u64)>> {
    let mut blocks = Vec::new();
    if head.starts_with(b"vhdxfile") {
        // The region table at 192 KiB: "regi", a checksum, the entry count, then 32-byte
        // entries (GUID, file offset, length, required).
        let t = &head[(192 << 10).min(head.len())..];
        if t.starts_with(b"regi") {
            let count = le32(t, 8).unwrap_or(0).min(2047) as usize;
            for i in 0..count {
                let e = 16 + i * 32;
                if let (Some(off), Some(len)) = (le64(t, e + 16), le32(t, e + 24)) {
                    blocks.push((off, len as u64));
                }
            }
        }
    } else if size >= 512 {
        let footer = read(file, size - 512, 512)?;
        if footer.starts_with(b"conectix") {
            // A dynamic or differencing disk: the footer's data offset names the dynamic
            // header, which names the BAT (its offset, and its entries of 4 bytes).
            if let Some(dyn_at) = be64(&footer, 16).filter(|&o| o != u64::MAX && o < size) {
                let dynamic = read(file, dyn_at, 1024)?;
                blocks.push((dyn_at, 1024));
                if let (Some(bat), Some(n)) = (be64(&dynamic, 16), be32(&dynamic, 28)) {
                    blocks.push((bat, n as u64 * 4));
                }
            }
        }
    }
    Ok(blocks
        .into_iter()
        .filter(|&(off, len)| len > 0 && off < size)
        .map(|(off, len)| (off, len.min(MAX_META).min(size - off)))
        .collect())
}

fn hash(file: &File, size: u64) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let head = read(file, 0, MIB)?;
    h.update(&head);
    let tail_at = size.saturating_sub(MIB).max(head.len() as u64);
    h.update(read(file, tail_at, size - tail_at)?);
    for (off, len) in metadata_blocks(file, size, &head)? {
        // What lies in the first or last MiB is hashed already.
        let start = off.max(MIB.min(size));
        let end = (off + len).min(tail_at);
        if end > start {
            h.update(read(file, start, end - start)?);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_in_the_first_or_last_mib_or_the_metadata_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.raw");
        let mut bytes = vec![0u8; 5 << 20];
        std::fs::write(&p, &bytes).unwrap();
        let a = Identity::of(&p).unwrap();
        assert_eq!(a.size, 5 << 20);
        // The middle is not read: same hash (the time tells this change).
        bytes[3 << 20] = 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(Identity::of(&p).unwrap().hash, a.hash);
        bytes[(5 << 20) - 1] = 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_ne!(Identity::of(&p).unwrap().hash, a.hash);
        // A VHD footer naming a dynamic header and a BAT in the middle: the BAT counts.
        let mut vhd = vec![0u8; 5 << 20];
        let foot = vhd.len() - 512;
        vhd[foot..foot + 8].copy_from_slice(b"conectix");
        vhd[foot + 16..foot + 24].copy_from_slice(&(2u64 << 20).to_be_bytes());
        let dynh = 2 << 20;
        vhd[dynh + 16..dynh + 24].copy_from_slice(&(3u64 << 20).to_be_bytes());
        vhd[dynh + 28..dynh + 32].copy_from_slice(&16u32.to_be_bytes());
        std::fs::write(&p, &vhd).unwrap();
        let v = Identity::of(&p).unwrap();
        vhd[(3 << 20) + 8] = 7;
        std::fs::write(&p, &vhd).unwrap();
        assert_ne!(Identity::of(&p).unwrap().hash, v.hash);
    }

    #[test]
    fn a_small_file_is_hashed_once_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.img");
        std::fs::write(&p, b"tiny").unwrap();
        let want: String = Sha256::digest(b"tiny")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(Identity::of(&p).unwrap().hash, want);
        assert!(Identity::of(&dir.path().join("gone")).is_err());
    }
}
