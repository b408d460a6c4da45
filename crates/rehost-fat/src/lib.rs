//! FAT12/16/32 volumes (the EFI system partition), read through the `fatfs` crate.
//!
//! The boot sector is checked here before `fatfs` sees it (the crate asserts on some
//! impossible values), directory listings are bounded by the volume's size, and a file that
//! ends before its recorded size is an error rather than short data. [`mod@write`] writes files
//! into a staged volume through the same crate, and [`mod@format`] makes a FAT32 volume (an
//! EFI system partition) from nothing.
//!
//! ```no_run
//! use rehost_core::{Ctx, Layer};
//! use std::sync::Arc;
//! let volume = rehost_core::io::Memory::new("esp.img", std::fs::read("esp.img")?);
//! let fat = rehost_fat::Fat::open(Arc::new(volume), Ctx::new("esp.img", Layer::Fat))?;
//! for e in fat.read_dir("/EFI/Microsoft/Boot")? {
//!     println!("{} {}", e.name, e.size);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod format;
pub mod write;

use rehost_core::entry::DirEntry;
use rehost_core::error::{Ctx, Location, Result};
use rehost_core::io::{Cursor, ReadAt};
use rehost_volume::{sniff, Content};
use std::io::Read;
use std::sync::{Arc, Mutex};

type Device = Cursor<Arc<dyn ReadAt>>;
type Inner = fatfs::FileSystem<Device>;
type Entry<'a> = fatfs::DirEntry<'a, Device>;

/// An opened FAT volume.
pub struct Fat {
    fs: Box<Mutex<Inner>>,
    ctx: Ctx,
    kind: Content,
    max_entries: usize,
}

impl Fat {
    /// Opens the FAT volume on `dev`; `ctx` names the image in errors.
    pub fn open(dev: Arc<dyn ReadAt>, ctx: Ctx) -> Result<Fat> {
        let ctx = ctx.with_layer(rehost_core::Layer::Fat);
        let mut boot = [0u8; 512];
        dev.read_at(0, &mut boot)?;
        let kind = match sniff(&boot) {
            Some(k @ (Content::Fat12 | Content::Fat16 | Content::Fat32)) => k,
            _ => return Err(ctx.corrupt(0, "no consistent FAT boot sector")),
        };
        let bps = u16::from_le_bytes([boot[11], boot[12]]) as u64;
        let total16 = u16::from_le_bytes([boot[19], boot[20]]) as u64;
        let total = if total16 != 0 {
            total16
        } else {
            u32::from_le_bytes([boot[32], boot[33], boot[34], boot[35]]) as u64
        };
        if total * bps > dev.size() {
            return Err(ctx.corrupt(
                19,
                format!(
                    "boot sector says {} bytes, the volume has {}",
                    total * bps,
                    dev.size()
                ),
            ));
        }
        let max_entries = (dev.size() / 32) as usize;
        let opts = fatfs::FsOptions::new().update_accessed_date(false);
        let fs = fatfs::FileSystem::new(Cursor::new(dev), opts)
            .map_err(|e| ctx.error(Location::Offset(0), e.into()))?;
        Ok(Fat {
            fs: Box::new(Mutex::new(fs)),
            ctx,
            kind,
            max_entries,
        })
    }

    /// The error context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// FAT12, FAT16 or FAT32.
    pub fn fat_type(&self) -> Content {
        self.kind
    }

    /// The volume label in the boot sector.
    pub fn label(&self) -> String {
        self.lock().volume_label()
    }

    /// The volume serial number.
    pub fn serial(&self) -> u32 {
        self.lock().volume_id()
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u32 {
        self.lock().cluster_size()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.fs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, path: &str, e: std::io::Error) -> rehost_core::Error {
        self.ctx.error(Location::Path(path.to_string()), e.into())
    }

    /// Lists the entries of the directory at `path` (bounded: a looping cluster chain stops
    /// after as many entries as the volume could hold).
    fn entries<'a>(fs: &'a Inner, path: &str, this: &Fat) -> Result<Vec<(Entry<'a>, DirEntry)>> {
        let mut dir = fs.root_dir();
        let mut walked = String::new();
        for comp in rehost_core::entry::components(path) {
            walked.push('/');
            walked.push_str(comp);
            let found = Self::find(dir.iter(), comp, this, &walked)?;
            match found {
                Some(e) if e.is_dir() => dir = e.to_dir(),
                Some(_) => return Err(this.ctx.invalid(format!("{walked} is not a directory"))),
                None => return Err(this.ctx.not_found(&walked)),
            }
        }
        let mut out = Vec::new();
        for (n, e) in dir.iter().enumerate() {
            if n >= this.max_entries {
                return Err(this
                    .ctx
                    .corrupt_at_path(path, "directory cluster chain loops"));
            }
            let e = e.map_err(|e| this.err(path, e))?;
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let entry = DirEntry {
                name,
                inode: 0,
                size: if e.is_dir() { 0 } else { e.len() },
                is_dir: e.is_dir(),
            };
            out.push((e, entry));
        }
        Ok(out)
    }

    fn find<'a>(
        iter: fatfs::DirIter<'a, Device>,
        name: &str,
        this: &Fat,
        walked: &str,
    ) -> Result<Option<Entry<'a>>> {
        let wanted = name.to_uppercase();
        for (n, e) in iter.enumerate() {
            if n >= this.max_entries {
                return Err(this
                    .ctx
                    .corrupt_at_path(walked, "directory cluster chain loops"));
            }
            let e = e.map_err(|e| this.err(walked, e))?;
            if e.file_name().to_uppercase() == wanted
                || e.short_file_name().to_uppercase() == wanted
            {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The entries of a directory, without `.` and `..`.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let fs = self.lock();
        Ok(Self::entries(&fs, path, self)?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// The entry a path names.
    pub fn stat(&self, path: &str) -> Result<DirEntry> {
        let comps = rehost_core::entry::components(path);
        let Some((last, parent)) = comps.split_last() else {
            return Ok(DirEntry {
                name: String::new(),
                inode: 0,
                size: 0,
                is_dir: true,
            });
        };
        let parent = parent.join("/");
        let fs = self.lock();
        Self::entries(&fs, &parent, self)?
            .into_iter()
            .map(|(_, d)| d)
            .find(|d| {
                d.name.eq_ignore_ascii_case(last) || d.name.to_uppercase() == last.to_uppercase()
            })
            .ok_or_else(|| self.ctx.not_found(path))
    }

    /// Copies the file at `path` to `out`; returns its size.
    pub fn read_file(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let comps = rehost_core::entry::components(path);
        let Some((last, parent)) = comps.split_last() else {
            return Err(self.ctx.invalid("the root is a directory"));
        };
        let parent = parent.join("/");
        let fs = self.lock();
        let (e, d) = Self::entries(&fs, &parent, self)?
            .into_iter()
            .find(|(e, d)| {
                d.name.to_uppercase() == last.to_uppercase()
                    || e.short_file_name().to_uppercase() == last.to_uppercase()
            })
            .ok_or_else(|| self.ctx.not_found(path))?;
        if d.is_dir {
            return Err(self.ctx.invalid(format!("{path} is a directory")));
        }
        let mut file = e.to_file();
        let mut buf = vec![0u8; 64 * 1024];
        let mut done = 0u64;
        while done < d.size {
            let want = ((d.size - done) as usize).min(buf.len());
            let n = file.read(&mut buf[..want]).map_err(|e| self.err(path, e))?;
            if n == 0 {
                return Err(self.ctx.corrupt_at_path(
                    path,
                    format!("cluster chain ends after {done} of {} bytes", d.size),
                ));
            }
            out.write_all(&buf[..n]).map_err(|e| self.err(path, e))?;
            done += n as u64;
        }
        Ok(done)
    }
}
