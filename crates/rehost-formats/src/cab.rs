//! Cabinet archives (`driver.cab`, `spN.cab`, the files of a service pack), through the
//! `cab` crate: MSZIP and LZX folders, names compared case-insensitively as Windows does.
//! Quantum folders and cabinet sets spanning several files are refused by name.
//!
//! The archive is read through a [`ReadAt`], so a cabinet inside an image is never copied
//! out whole; each member read is bounded by the size its entry declares.

use rehost_core::error::{Ctx, Result};
use rehost_core::io::{Cursor, ReadAt};
use std::io::Read;

/// Largest member extracted (a HAL or kernel is a few MiB; a driver a few hundred KiB).
pub const MAX_MEMBER: u64 = 256 << 20;

/// One member of a cabinet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name as stored (may hold `\` for a path inside the archive; listed as it
    /// stands, but never found by [`Cab::find`] or read when it would leave its folder).
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u32,
    /// How its folder is compressed: "none", "mszip", "lzx", "quantum".
    pub compression: &'static str,
}

/// An opened cabinet.
pub struct Cab<R: ReadAt> {
    inner: cab::Cabinet<Cursor<R>>,
    ctx: Ctx,
}

fn compression(c: cab::CompressionType) -> &'static str {
    match c {
        cab::CompressionType::None => "none",
        cab::CompressionType::MsZip => "mszip",
        cab::CompressionType::Quantum(..) => "quantum",
        cab::CompressionType::Lzx(_) => "lzx",
    }
}

impl<R: ReadAt> Cab<R> {
    /// Opens the cabinet held by `src`; `ctx` names it in errors.
    pub fn open(src: R, ctx: Ctx) -> Result<Self> {
        let inner = guarded(|| cab::Cabinet::new(Cursor::new(src)))
            .map_err(|e| ctx.corrupt(0, format!("not a readable cabinet: {e}")))?;
        Ok(Cab { inner, ctx })
    }

    /// Every member, folder by folder.
    pub fn members(&self) -> Vec<Member> {
        let mut out = Vec::new();
        for folder in self.inner.folder_entries() {
            let c = compression(folder.compression_type());
            for f in folder.file_entries() {
                out.push(Member {
                    name: f.name().to_string(),
                    size: f.uncompressed_size(),
                    compression: c,
                });
            }
        }
        out
    }

    /// The member named `name` (case-insensitive; a name without `\` also matches the last
    /// part of a stored path), if there is one. A member whose stored name would leave its
    /// folder (`..\evil`, an absolute path, a drive, a device name:
    /// [`rehost_core::names::contained`]) is never found, whatever its last part.
    pub fn find(&self, name: &str) -> Option<Member> {
        let members: Vec<Member> = self
            .members()
            .into_iter()
            .filter(|m| rehost_core::names::contained(&m.name).is_ok())
            .collect();
        let exact = members.iter().find(|m| m.name.eq_ignore_ascii_case(name));
        exact
            .or_else(|| {
                members.iter().find(|m| {
                    m.name
                        .rsplit('\\')
                        .next()
                        .is_some_and(|last| last.eq_ignore_ascii_case(name))
                })
            })
            .cloned()
    }

    /// The bytes of the member named `name`.
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        if let Err(e) = rehost_core::names::contained(name) {
            return Err(self
                .ctx
                .corrupt_at_path(name, format!("the member's name {e}: not extracted")));
        }
        let m = self
            .find(name)
            .ok_or_else(|| self.ctx.not_found(&format!("{name} in the cabinet")))?;
        if m.compression == "quantum" {
            return Err(self.ctx.unsupported(
                0,
                format!("{}: Quantum-compressed folders are not read", m.name),
            ));
        }
        if m.size as u64 > MAX_MEMBER {
            return Err(self.ctx.unsupported(
                0,
                format!("{} is {} bytes, more than rehost extracts", m.name, m.size),
            ));
        }
        let stored = m.name.clone();
        let inner = &mut self.inner;
        let read = guarded(|| -> std::io::Result<Vec<u8>> {
            let reader = inner.read_file(&stored)?;
            let mut out = Vec::with_capacity(m.size as usize);
            reader.take(m.size as u64 + 1).read_to_end(&mut out)?;
            Ok(out)
        });
        let out = read.map_err(|e| {
            self.ctx
                .corrupt_at_path(&stored, format!("cannot extract: {e}"))
        })?;
        if out.len() != m.size as usize {
            return Err(self.ctx.corrupt_at_path(
                &stored,
                format!("extracted {} bytes, the entry says {}", out.len(), m.size),
            ));
        }
        Ok(out)
    }
}

/// Runs a call into the `cab` crate and its decompressors, turning a panic on malformed
/// input into an error: a damaged cabinet must never take the process down.
fn guarded<T>(f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other(
            "the decompressor failed on damaged data",
        )),
    }
}
