//! Reading back what an operation wrote, through the reader (its own `$MFT` mapping, index
//! traversal and data runs), before the operation reports success. A disagreement is a bug
//! in the writer: the error says so, and the staged changes must be thrown away.

use crate::Ntfs;
use rehost_core::error::Result;
use rehost_core::io::ReadAt;

/// What a file must hold after an operation.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// Exactly these bytes.
    Content(&'a [u8]),
    /// These bytes at `offset`, and `size` bytes in all.
    Region {
        /// Where the bytes were written.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
        /// The file's size.
        size: u64,
    },
    /// Zeros from `from` to the end, `size` bytes in all.
    Zeros {
        /// First byte that must be zero.
        from: u64,
        /// The file's size.
        size: u64,
    },
}

fn fail(ntfs: &Ntfs, path: &str, what: impl std::fmt::Display) -> rehost_core::Error {
    ntfs.ctx().corrupt_at_path(
        path,
        format!(
            "reading back after the write failed: {what}; the staged changes must not be committed"
        ),
    )
}

/// Checks that `path` is record `record`, that its data is as expected, and that its
/// directory entry records its size.
pub fn file(ntfs: &Ntfs, path: &str, record: u64, expect: Expect) -> Result<()> {
    let f = ntfs
        .lookup(path)
        .map_err(|e| fail(ntfs, path, format!("the file cannot be found ({e})")))?;
    if f.record != record {
        return Err(fail(
            ntfs,
            path,
            format!("the name leads to record {}, not {record}", f.record),
        ));
    }
    let s = ntfs.data(&f, "").map_err(|e| fail(ntfs, path, e))?;
    let size = match expect {
        Expect::Content(b) => b.len() as u64,
        Expect::Region { size, .. } | Expect::Zeros { size, .. } => size,
    };
    if s.size() != size {
        return Err(fail(
            ntfs,
            path,
            format!("{} bytes, expected {size}", s.size()),
        ));
    }
    let (from, to) = match expect {
        Expect::Content(_) => (0, size),
        Expect::Region { offset, bytes, .. } => (offset, offset + bytes.len() as u64),
        Expect::Zeros { from, size } => (from, size),
    };
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK.min(to - from) as usize];
    let mut at = from;
    while at < to {
        let n = CHUNK.min(to - at) as usize;
        s.read_at(at, &mut buf[..n])
            .map_err(|e| fail(ntfs, path, e))?;
        let want: Option<&[u8]> = match expect {
            Expect::Content(b) => Some(&b[at as usize..at as usize + n]),
            Expect::Region { offset, bytes, .. } => {
                let o = (at - offset) as usize;
                Some(&bytes[o..o + n])
            }
            Expect::Zeros { .. } => None,
        };
        let same = match want {
            Some(w) => buf[..n] == *w,
            None => buf[..n].iter().all(|b| *b == 0),
        };
        if !same {
            return Err(fail(
                ntfs,
                path,
                format!("the bytes at {at:#x} differ from those written"),
            ));
        }
        at += n as u64;
    }
    entry_size(ntfs, path, size)
}

/// Checks that the directory entry of `path` records `size`.
fn entry_size(ntfs: &Ntfs, path: &str, size: u64) -> Result<()> {
    let comps = rehost_core::entry::components(path);
    let Some((name, dir)) = comps.split_last() else {
        return Ok(());
    };
    let d = ntfs.lookup(&dir.join("/"))?;
    let index = ntfs.dir_index(&d, path)?;
    let units: Vec<u16> = name.encode_utf16().collect();
    let e = index
        .find(&units, ntfs.upcase())?
        .ok_or_else(|| fail(ntfs, path, "no directory entry"))?;
    let key = e
        .key
        .ok_or_else(|| fail(ntfs, path, "directory entry without a key"))?;
    if key.data_size != size {
        return Err(fail(
            ntfs,
            path,
            format!(
                "the directory entry says {} bytes, the file has {size}",
                key.data_size
            ),
        ));
    }
    Ok(())
}

/// Checks that `path` no longer names record `record`.
pub fn absent(ntfs: &Ntfs, path: &str, record: u64) -> Result<()> {
    match ntfs.lookup(path) {
        Err(e) if matches!(e.kind, rehost_core::ErrorKind::NotFound(_)) => Ok(()),
        Err(e) => Err(fail(ntfs, path, e)),
        Ok(f) if f.record != record => Ok(()),
        Ok(_) => Err(fail(ntfs, path, "the name still leads to the file")),
    }
}

/// Checks that `path` names record `record`.
pub fn names(ntfs: &Ntfs, path: &str, record: u64) -> Result<()> {
    let f = ntfs
        .lookup(path)
        .map_err(|e| fail(ntfs, path, format!("the file cannot be found ({e})")))?;
    if f.record != record {
        return Err(fail(
            ntfs,
            path,
            format!("the name leads to record {}, not {record}", f.record),
        ));
    }
    Ok(())
}

/// Checks that `path` names record `record`, a directory whose index reads as empty.
pub fn directory(ntfs: &Ntfs, path: &str, record: u64) -> Result<()> {
    names(ntfs, path, record)?;
    let f = ntfs.lookup(path).map_err(|e| fail(ntfs, path, e))?;
    if !f.is_dir() {
        return Err(fail(ntfs, path, "the record is not a directory"));
    }
    let entries = ntfs.read_dir(&f, path).map_err(|e| fail(ntfs, path, e))?;
    if !entries.is_empty() {
        return Err(fail(
            ntfs,
            path,
            format!("the new directory lists {} entries", entries.len()),
        ));
    }
    Ok(())
}
