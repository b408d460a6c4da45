//! The fs layer: file systems on a volume. NTFS (own reader), FAT (the EFI system partition).
//!
//! Paths take `/` or `\` as separators and are matched without regard to case (NTFS through
//! the volume's own `$UpCase` table).
//!
//! ```no_run
//! use rehost_core::{Ctx, Layer};
//! use rehost_image::FileSystem;
//! use std::sync::Arc;
//! let disk = rehost_disk::open("server.vhdx".as_ref(), &Default::default())?;
//! let ctx = Ctx::new("server.vhdx", Layer::Volume);
//! let layout = rehost_volume::scan(disk.reader(), disk.info().logical_sector_size, &ctx)?;
//! let v = &layout.volumes[0];
//! let dev = rehost_volume::open_volume(disk.reader(), v, &ctx)?;
//! let fs = FileSystem::open(Arc::new(dev), v.content, &ctx)?;
//! for e in fs.read_dir("/Windows/System32/config")? {
//!     println!("{}", e.name);
//! }
//! # Ok::<(), rehost_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use rehost_fat as fat;
pub use rehost_ntfs as ntfs;
mod active;
mod image;
pub mod staged;

pub use image::{Counters, Image};

use serde::Serialize;

pub use rehost_core::entry::{components, Details, DirEntry};

/// What a file system says about itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Facts {
    /// NTFS: geometry, label, version, dirty flag, `$LogFile`, hibernation.
    Ntfs(ntfs::facts::NtfsFacts),
    /// FAT: type, label, serial.
    Fat {
        /// FAT12, FAT16 or FAT32.
        fat_type: String,
        /// Label in the boot sector.
        label: String,
        /// Volume serial number, 8 hex digits.
        serial: String,
    },
}

use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;
use rehost_volume::Content;
use std::collections::HashSet;
use std::sync::Arc;

/// Deepest FAT directory a walk enters. FAT has no inode numbers to recognise a directory
/// seen before, so a directory that contains its ancestor is stopped by depth: 256 levels
/// is far beyond what a path Windows can open (260 characters) reaches.
const MAX_FAT_DEPTH: usize = 256;

/// An opened file system of any supported kind.
pub enum FileSystem {
    /// NTFS.
    Ntfs(Box<ntfs::Ntfs>),
    /// FAT12/16/32.
    Fat(fat::Fat),
}

impl FileSystem {
    /// Opens the file system that `content` names on `dev`; `ctx` names the image.
    pub fn open(dev: Arc<dyn ReadAt>, content: Content, ctx: &Ctx) -> Result<Self> {
        match content {
            Content::Ntfs => Ok(FileSystem::Ntfs(Box::new(ntfs::Ntfs::open(
                dev,
                ctx.clone(),
            )?))),
            Content::Fat12 | Content::Fat16 | Content::Fat32 => Ok(FileSystem::Fat(
                fat::Fat::open(dev, ctx.with_layer(rehost_core::Layer::Fat))?,
            )),
            other => Err(ctx.unsupported(
                0,
                format!("no file system rehost can read on this volume ({other:?})"),
            )),
        }
    }

    /// The volume's facts.
    pub fn facts(&self) -> Result<Facts> {
        match self {
            FileSystem::Ntfs(n) => Ok(Facts::Ntfs(n.facts()?)),
            FileSystem::Fat(f) => Ok(Facts::Fat {
                fat_type: format!("{:?}", f.fat_type()).to_uppercase(),
                label: f.label().trim_end().to_string(),
                serial: format!("{:08x}", f.serial()),
            }),
        }
    }

    /// The entry a path names (the root is named by an empty path).
    pub fn stat(&self, path: &str) -> Result<DirEntry> {
        match self {
            FileSystem::Ntfs(n) => {
                let f = n.lookup(path)?;
                let name = f.best_name().map(|n| n.name_string()).unwrap_or_default();
                let size = if f.is_dir() {
                    0
                } else {
                    n.data(&f, "").map(|s| s.size()).unwrap_or(0)
                };
                Ok(DirEntry {
                    name,
                    inode: f.record,
                    size,
                    is_dir: f.is_dir(),
                })
            }
            FileSystem::Fat(f) => f.stat(path),
        }
    }

    /// The entries of a directory, without `.` and `..`.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        match self {
            FileSystem::Ntfs(n) => {
                let dir = n.lookup(path)?;
                if !dir.is_dir() {
                    return Err(n.ctx().invalid(format!("{path} is not a directory")));
                }
                let shown = if path.is_empty() { "\\" } else { path };
                let mut entries = n.read_dir(&dir, shown)?;
                entries.retain(|e| e.inode != dir.record);
                Ok(entries)
            }
            FileSystem::Fat(f) => f.read_dir(path),
        }
    }

    /// The size of an entry's unnamed data stream from the file's own record (NTFS; the
    /// size in a directory index may be stale), or from its directory entry (FAT, where
    /// that is the only one). Directories are 0 without a read.
    pub fn size(&self, e: &DirEntry) -> Result<u64> {
        match self {
            FileSystem::Ntfs(n) if !e.is_dir => n.data_size(e.inode),
            _ => Ok(if e.is_dir { 0 } else { e.size }),
        }
    }

    /// The exact size, allocation and streams of an entry, read from its own record (the
    /// directory index may lag behind, notably for NTFS metafiles).
    pub fn details(&self, e: &DirEntry) -> Result<Details> {
        match self {
            FileSystem::Ntfs(n) => {
                let f = n.file(e.inode)?;
                let mut d = Details {
                    size: 0,
                    allocated: 0,
                    streams: Vec::new(),
                    modified: f.standard_information().map(|s| s.modified),
                };
                for name in f.data_stream_names() {
                    let s = n.data(&f, &name)?;
                    if name.is_empty() {
                        d.size = s.size();
                        d.allocated = s.desc().allocated_size;
                    } else {
                        d.streams.push((name, s.size()));
                    }
                }
                Ok(d)
            }
            FileSystem::Fat(_) => Ok(Details {
                size: e.size,
                allocated: e.size,
                streams: Vec::new(),
                modified: None,
            }),
        }
    }

    /// Visits every entry below `path`, depth first, with its path relative to `path`.
    /// A directory reached twice (a loop in a damaged volume) is not entered again; errors
    /// in one directory are passed to `on_error` and the walk goes on. The walk keeps its
    /// own stack, so no tree is too deep for it.
    pub fn walk(
        &self,
        path: &str,
        visit: &mut dyn FnMut(&str, &DirEntry),
        on_error: &mut dyn FnMut(&str, rehost_core::Error),
    ) {
        struct Level {
            abs: String,
            rel: String,
            entries: std::vec::IntoIter<DirEntry>,
        }
        let mut seen = HashSet::new();
        let mut stack = Vec::new();
        match self.read_dir(path) {
            Ok(e) => stack.push(Level {
                abs: path.to_string(),
                rel: String::new(),
                entries: e.into_iter(),
            }),
            Err(e) => on_error("", e),
        }
        loop {
            let depth = stack.len();
            let Some(level) = stack.last_mut() else { break };
            let Some(e) = level.entries.next() else {
                stack.pop();
                continue;
            };
            let rel = if level.rel.is_empty() {
                e.name.clone()
            } else {
                format!("{}/{}", level.rel, e.name)
            };
            visit(&rel, &e);
            // FAT has no inode numbers: there a depth bound (deeper than any path Windows
            // can name) stops a directory that contains its own ancestor.
            let fresh = if e.inode == 0 {
                depth < MAX_FAT_DEPTH
            } else {
                seen.insert(e.inode)
            };
            if e.is_dir && fresh {
                let abs = format!("{}/{}", level.abs, e.name);
                match self.read_child_dir(&abs, &e) {
                    Ok(children) => stack.push(Level {
                        abs,
                        rel,
                        entries: children.into_iter(),
                    }),
                    Err(err) => on_error(&rel, err),
                }
            }
        }
    }

    /// Lists the directory `e`, found at `abs`: NTFS goes straight to its record.
    fn read_child_dir(&self, abs: &str, e: &DirEntry) -> Result<Vec<DirEntry>> {
        match self {
            FileSystem::Ntfs(n) => {
                let dir = n.file(e.inode)?;
                if !dir.is_dir() {
                    return Err(n
                        .ctx()
                        .corrupt_at_path(abs, "index says directory, record says file"));
                }
                let mut entries = n.read_dir(&dir, abs)?;
                entries.retain(|c| c.inode != dir.record);
                Ok(entries)
            }
            FileSystem::Fat(_) => self.read_dir(abs),
        }
    }

    /// Copies a file's data stream (`stream` "" for the unnamed one) to `out`; returns the
    /// bytes copied.
    pub fn copy_to(&self, path: &str, stream: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        match self {
            FileSystem::Ntfs(n) => {
                let f = n.lookup(path)?;
                if f.is_dir() && stream.is_empty() {
                    return Err(n.ctx().invalid(format!("{path} is a directory")));
                }
                let s = n.data(&f, stream)?;
                copy_device(&s, out, n.ctx(), path)
            }
            FileSystem::Fat(f) => {
                if !stream.is_empty() {
                    return Err(f.ctx().invalid("FAT has no named streams"));
                }
                f.read_file(path, out)
            }
        }
    }
}

impl FileSystem {
    /// A file's unnamed data stream as a device, read in place (NTFS), or read whole into
    /// memory (FAT, whose files on an ESP are small).
    pub fn open_file(&self, path: &str) -> Result<Box<dyn ReadAt>> {
        match self {
            FileSystem::Ntfs(n) => {
                let f = n.lookup(path)?;
                if f.is_dir() {
                    return Err(n.ctx().invalid(format!("{path} is a directory")));
                }
                Ok(Box::new(n.data(&f, "")?))
            }
            FileSystem::Fat(f) => {
                let mut out = Vec::new();
                f.read_file(path, &mut out)?;
                Ok(Box::new(rehost_core::io::Memory::new(path, out)))
            }
        }
    }
}

/// Copies a whole device to `out` in 1 MiB pieces.
pub fn copy_device(
    dev: &dyn ReadAt,
    out: &mut dyn std::io::Write,
    ctx: &Ctx,
    path: &str,
) -> Result<u64> {
    const PIECE: usize = 1 << 20;
    let size = dev.size();
    let mut buf = vec![0u8; PIECE.min(size as usize)];
    let mut done = 0u64;
    while done < size {
        let n = ((size - done) as usize).min(PIECE);
        dev.read_at(done, &mut buf[..n])?;
        out.write_all(&buf[..n])
            .map_err(|e| ctx.error(rehost_core::Location::Path(path.to_string()), e.into()))?;
        done += n as u64;
    }
    Ok(done)
}
