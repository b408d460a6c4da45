//! Opening an image for a command: the disk, its layout, and the volume the user means.

use anyhow::{bail, Context, Result};
use rehost::disk::{self, Disk, OpenOptions};
use rehost::fs::FileSystem;
use rehost::volume::{self, Content, Layout, VolumeInfo};
use rehost::{Ctx, Layer};
use std::path::Path;

/// An opened image and its partition layout.
pub struct Image {
    pub disk: Disk,
    pub layout: Layout,
    pub ctx: Ctx,
}

impl Image {
    /// Opens `path` read-only and reads its partition table.
    pub fn open(path: &Path) -> Result<Image> {
        let disk = disk::open(path, &OpenOptions::default())?;
        let ctx = Ctx::new(path.display().to_string(), Layer::Volume);
        let layout = volume::scan(disk.reader(), disk.info().logical_sector_size, &ctx)?;
        Ok(Image { disk, layout, ctx })
    }

    /// The volume numbered `wanted`, or the one a user most likely means: the only NTFS
    /// volume, else the NTFS volume holding `\Windows`, else the only readable one.
    pub fn choose(&self, wanted: Option<u32>) -> Result<(&VolumeInfo, FileSystem)> {
        if let Some(n) = wanted {
            let v = self
                .layout
                .volumes
                .iter()
                .find(|v| v.index == n)
                .with_context(|| {
                    format!("{}: no volume {n}{}", self.ctx.image, self.volumes_or_why())
                })?;
            return Ok((v, self.open_fs(v)?));
        }
        let ntfs: Vec<&VolumeInfo> = self
            .layout
            .volumes
            .iter()
            .filter(|v| v.content == Content::Ntfs)
            .collect();
        if ntfs.len() == 1 {
            return Ok((ntfs[0], self.open_fs(ntfs[0])?));
        }
        let mut with_windows = Vec::new();
        for v in &ntfs {
            if let Ok(fs) = self.open_fs(v) {
                if fs.stat("Windows").is_ok_and(|e| e.is_dir) {
                    with_windows.push((*v, fs));
                }
            }
        }
        if with_windows.len() == 1 {
            return Ok(with_windows.remove(0));
        }
        let readable: Vec<&VolumeInfo> = self
            .layout
            .volumes
            .iter()
            .filter(|v| matches!(v.content, Content::Fat12 | Content::Fat16 | Content::Fat32))
            .collect();
        if ntfs.is_empty() && readable.len() == 1 {
            return Ok((readable[0], self.open_fs(readable[0])?));
        }
        if self.layout.volumes.is_empty() {
            bail!(
                "{}: no volume to read{}",
                self.ctx.image,
                self.volumes_or_why()
            )
        }
        bail!(
            "{}: which volume? choose one with --volume N:\n{}",
            self.ctx.image,
            self.list()
        )
    }

    /// Opens the file system of a volume.
    pub fn open_fs(&self, v: &VolumeInfo) -> Result<FileSystem> {
        let dev = volume::open_volume(self.disk.reader(), v, &self.ctx)?;
        Ok(FileSystem::open(
            std::sync::Arc::new(dev),
            v.content,
            &self.ctx,
        )?)
    }

    /// For a message about a missing volume: the volumes there are, or, when there are
    /// none, why (the layout's own errors: a partition past the end of the disk, a broken
    /// table; else that no table and no file system was found).
    fn volumes_or_why(&self) -> String {
        let l = &self.layout;
        if !l.volumes.is_empty() {
            return format!("; the volumes are:\n{}", self.list());
        }
        let mut why: Vec<String> = l.errors.iter().chain(&l.notes).cloned().collect();
        if why.is_empty() {
            why.push(format!(
                "the disk ({} bytes) has no partition table and no file system rehost \
                 recognises at offset 0",
                self.disk.info().virtual_size
            ));
        }
        format!("; the image has no volumes:\n  {}", why.join("\n  "))
    }

    /// One line per volume, for messages.
    pub fn list(&self) -> String {
        self.layout
            .volumes
            .iter()
            .map(|v| {
                format!(
                    "  {:>2}  offset {:>12}  size {:>10}  {}",
                    v.index,
                    v.offset,
                    human(v.size),
                    content_name(v.content)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Prints the bytes read so far, when asked.
    pub fn report_stats(&self, asked: bool) {
        if asked {
            let s = self.disk.stats();
            eprintln!(
                "stats: read {} bytes in {} reads from {}",
                s.bytes(),
                s.reads(),
                self.ctx.image
            );
        }
    }
}

/// A size in binary units, one decimal.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The short name of a volume's content.
pub fn content_name(c: Content) -> &'static str {
    match c {
        Content::Ntfs => "ntfs",
        Content::Fat12 => "fat12",
        Content::Fat16 => "fat16",
        Content::Fat32 => "fat32",
        Content::Exfat => "exfat",
        Content::Refs => "refs",
        Content::Bitlocker => "bitlocker",
        Content::Ldm => "ldm",
        Content::StorageSpaces => "storage-spaces",
        Content::MicrosoftReserved => "msr",
        Content::Unknown => "unknown",
    }
}
