//! Writes into a FAT volume (the EFI system partition) through the `fatfs` crate: a file
//! created or replaced (the directories on its path created where missing), or renamed.
//!
//! Each operation runs on an overlay of its own above the volume: `fatfs` mounts it, does
//! the operation and unmounts (FSInfo written back, the dirty flag as it was found), then a
//! fresh mount of the reader reads the result back; only when it reads as asked are the
//! operation's bytes passed on to the volume. A failed operation leaves no byte behind.
//!
//! `fatfs` 0.3 writes a new directory's `.` and `..` entries each after a long-name entry,
//! and names the FAT32 root by its cluster in `..`; fsck.vfat and chkdsk take both for
//! damage, so `dot_entries` rewrites them as the specification has them.
//!
//! Before `fatfs` walks a directory, the reader lists it (bounded: a looping cluster chain
//! is an error there, where `fatfs` would loop), and before it rewrites a file, the reader
//! reads it whole (a chain that ends before the file's size is an error).

use super::Fat;
use rehost_core::entry::components;
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use rehost_core::io::{CursorMut, ReadAt, WriteAt};
use rehost_disk::Overlay;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

type Mounted = fatfs::FileSystem<CursorMut<Arc<Overlay>>>;
type Dir<'a> = fatfs::Dir<'a, CursorMut<Arc<Overlay>>>;

/// A FAT volume open for writing.
pub struct FatWriter {
    dev: Arc<dyn WriteAt>,
    ctx: Ctx,
    changes: u64,
}

/// Whether an error says a name was not found.
fn not_found(e: &rehost_core::Error) -> bool {
    matches!(e.kind, ErrorKind::NotFound(_))
}

impl FatWriter {
    /// Opens the FAT volume on `dev` (a window of the staging overlay) for writing; the
    /// reader's checks of its boot sector come first.
    pub fn open(dev: Arc<dyn WriteAt>, ctx: Ctx) -> Result<FatWriter> {
        let ctx = ctx.with_layer(Layer::Fat);
        let read: Arc<dyn ReadAt> = dev.clone();
        Fat::open(read, ctx.clone())?;
        Ok(FatWriter {
            dev,
            ctx,
            changes: 0,
        })
    }

    /// Operations done so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn err(&self, path: &str, e: std::io::Error) -> rehost_core::Error {
        self.ctx.error(Location::Path(path.to_string()), e.into())
    }

    /// Runs `op` on a fresh mount above its own overlay, then `check` on a fresh reader of
    /// the result; passes the overlay's bytes on to the volume when both succeed.
    fn stage(
        &self,
        path: &str,
        op: impl FnOnce(&Mounted) -> std::io::Result<()>,
        check: impl FnOnce(&Fat) -> Result<()>,
    ) -> Result<()> {
        let base: Arc<dyn ReadAt> = self.dev.clone();
        let ov = Arc::new(Overlay::new(base, self.ctx.clone()));
        let opts = fatfs::FsOptions::new().update_accessed_date(false);
        let fs = fatfs::FileSystem::new(CursorMut::new(ov.clone()), opts)
            .map_err(|e| self.err(path, e))?;
        op(&fs).map_err(|e| self.err(path, e))?;
        fs.unmount().map_err(|e| self.err(path, e))?;
        dot_entries(&ov)?;
        let read: Arc<dyn ReadAt> = ov.clone();
        let again = Fat::open(read, self.ctx.clone())?;
        check(&again)?;
        for (offset, bytes) in ov.extents() {
            self.dev.write_at(offset, &bytes)?;
        }
        Ok(())
    }

    /// Lists, with the bounded reader, every directory on the way to `comps`'s last
    /// component that exists, so that `fatfs` never walks a looping directory.
    fn walkable(&self, comps: &[&str]) -> Result<()> {
        let read: Arc<dyn ReadAt> = self.dev.clone();
        let fat = Fat::open(read, self.ctx.clone())?;
        for n in 0..comps.len() {
            match fat.read_dir(&comps[..n].join("/")) {
                Ok(_) => {}
                Err(e) if not_found(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The directory `comps` names, created (with its parents) where missing.
    fn make_dirs<'a>(fs: &'a Mounted, comps: &[&str]) -> std::io::Result<Dir<'a>> {
        let mut dir = fs.root_dir();
        for c in comps {
            dir = dir.create_dir(c)?;
        }
        Ok(dir)
    }

    /// The whole of the file at `path`, through the bounded reader.
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let read: Arc<dyn ReadAt> = self.dev.clone();
        let fat = Fat::open(read, self.ctx.clone())?;
        let mut out = Vec::new();
        fat.read_file(path, &mut out)?;
        Ok(out)
    }

    fn read_back(&self, fat: &Fat, path: &str, want: &[u8]) -> Result<()> {
        let mut got = Vec::new();
        fat.read_file(path, &mut got)?;
        if got != want {
            return Err(self.ctx.corrupt_at_path(
                path,
                format!(
                    "the file reads back as {} bytes that differ from the {} written; nothing \
                     is written",
                    got.len(),
                    want.len()
                ),
            ));
        }
        Ok(())
    }

    /// Creates `path` or replaces its content, creating the directories on its path where
    /// they are missing. A file being replaced keeps its clusters as far as they go.
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let comps = components(path);
        let Some((name, dirs)) = comps.split_last() else {
            return Err(self.ctx.invalid("the root is a directory"));
        };
        self.walkable(&comps)?;
        match self.read(path) {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        let joined = comps.join("/");
        self.stage(
            path,
            |fs| {
                let dir = Self::make_dirs(fs, dirs)?;
                let mut f = dir.create_file(name)?;
                f.seek(SeekFrom::Start(0))?;
                f.write_all(data)?;
                f.truncate()?;
                f.flush()
            },
            |fat| self.read_back(fat, &joined, data),
        )?;
        self.changes += 1;
        Ok(())
    }

    /// Replaces the content of the existing file `path`.
    pub fn replace(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.read(path)?;
        self.put(path, data)
    }

    /// Renames or moves the file `from` to `to` (the directories on `to`'s path created
    /// where missing); `to` must not exist.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let src = components(from);
        let dst = components(to);
        let Some((name, dirs)) = dst.split_last() else {
            return Err(self.ctx.invalid("the root cannot be a rename's target"));
        };
        if src.is_empty() {
            return Err(self.ctx.invalid("the root cannot be renamed"));
        }
        self.walkable(&src)?;
        self.walkable(&dst)?;
        let bytes = self.read(from)?;
        match self.read(to) {
            Err(e) if not_found(&e) => {}
            Ok(_) => return Err(self.ctx.invalid(format!("{to} exists already"))),
            Err(e) => return Err(e),
        }
        let (src_path, dst_name) = (src.join("/"), name.to_string());
        let to_path = dst.join("/");
        self.stage(
            from,
            |fs| {
                let dir = Self::make_dirs(fs, dirs)?;
                fs.root_dir().rename(&src_path, &dir, &dst_name)
            },
            |fat| {
                match fat.stat(&src_path) {
                    Err(e) if not_found(&e) => {}
                    Ok(_) => {
                        return Err(self
                            .ctx
                            .corrupt_at_path(from, "still there after the rename"))
                    }
                    Err(e) => return Err(e),
                }
                self.read_back(fat, &to_path, &bytes)
            },
        )?;
        self.changes += 1;
        Ok(())
    }
}

/// Size of a directory entry.
const ENTRY: usize = 32;
/// The attribute of a long-name entry; of a directory.
const LONG_NAME: u8 = 0x0F;
const DIRECTORY: u8 = 0x10;

fn is_long_name(e: &[u8]) -> bool {
    e[11] == LONG_NAME
}

fn is_dot(e: &[u8], name: &[u8]) -> bool {
    let mut want = [b' '; 11];
    want[..name.len()].copy_from_slice(name);
    e[..11] == want && e[11] & DIRECTORY != 0 && e[11] != LONG_NAME
}

/// In the bytes an operation staged, the start of every directory it created (a long-name
/// entry, `.`, a long-name entry, `..`) rewritten as `.`, `..` and two deleted entries
/// (deleted, not free: entries after them stay in the directory), with a `..` that names
/// the FAT32 root by cluster 0.
fn dot_entries(ov: &Overlay) -> Result<()> {
    let mut boot = [0u8; 512];
    ov.read_at(0, &mut boot)?;
    let fat32 = u16::from_le_bytes([boot[22], boot[23]]) == 0;
    let root = fat32.then(|| u32::from_le_bytes([boot[44], boot[45], boot[46], boot[47]]));
    for (at, bytes) in ov.extents() {
        let mut b = bytes.clone();
        let mut i = (ENTRY - (at as usize % ENTRY)) % ENTRY;
        while i + 4 * ENTRY <= b.len() {
            let e = |n: usize| &b[i + n * ENTRY..i + (n + 1) * ENTRY];
            if !(is_long_name(e(0))
                && is_dot(e(1), b".")
                && is_long_name(e(2))
                && is_dot(e(3), b".."))
            {
                i += ENTRY;
                continue;
            }
            let dot = e(1).to_vec();
            let mut dotdot = e(3).to_vec();
            let cluster = (u32::from(u16::from_le_bytes([dotdot[20], dotdot[21]])) << 16)
                | u32::from(u16::from_le_bytes([dotdot[26], dotdot[27]]));
            if Some(cluster) == root {
                dotdot[20..22].fill(0);
                dotdot[26..28].fill(0);
            }
            b[i..i + ENTRY].copy_from_slice(&dot);
            b[i + ENTRY..i + 2 * ENTRY].copy_from_slice(&dotdot);
            b[i + 2 * ENTRY..i + 4 * ENTRY].fill(0);
            b[i + 2 * ENTRY] = 0xE5;
            b[i + 3 * ENTRY] = 0xE5;
            i += 4 * ENTRY;
        }
        if b != bytes {
            ov.write_at(at, &b)?;
        }
    }
    Ok(())
}
