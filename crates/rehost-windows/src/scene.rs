//! The opened image as the windows layer sees it: the layout and each volume's file system.

use rehost_core::error::{Ctx, Result};
use rehost_formats::bcd::PartitionRef;
use rehost_image::{DirEntry, FileSystem};
use rehost_volume::{Layout, VolumeInfo};
use std::sync::Arc;

/// Largest file the windows layer reads whole (a hive or a PE image).
pub const MAX_FILE: u64 = 512 << 20;

/// An image's volumes and their opened file systems.
pub struct Scene {
    /// The image, for messages.
    pub ctx: Ctx,
    /// Its partition layout.
    pub layout: Layout,
    /// The file system of each volume of `layout`, when it has a readable one.
    pub fss: Vec<Option<Arc<FileSystem>>>,
}

impl Scene {
    /// The volume numbered `index`.
    pub fn volume(&self, index: u32) -> Option<&VolumeInfo> {
        self.layout.volumes.iter().find(|v| v.index == index)
    }

    /// The file system of volume `index`.
    pub fn fs(&self, index: u32) -> Option<&FileSystem> {
        let i = self.layout.volumes.iter().position(|v| v.index == index)?;
        self.fss.get(i)?.as_deref()
    }

    /// The entry at `path` on volume `index`, if it exists.
    pub fn stat(&self, index: u32, path: &str) -> Option<DirEntry> {
        self.fs(index)?.stat(path).ok()
    }

    /// Whether `path` names a file on volume `index`.
    pub fn is_file(&self, index: u32, path: &str) -> bool {
        self.stat(index, path).is_some_and(|e| !e.is_dir)
    }

    /// The whole of the file at `path` on volume `index`.
    pub fn read(&self, index: u32, path: &str) -> Result<Vec<u8>> {
        let fs = self.fs(index).ok_or_else(|| {
            self.ctx
                .invalid(format!("volume {index} has no readable file system"))
        })?;
        let e = fs.stat(path)?;
        if e.size > MAX_FILE {
            return Err(self.ctx.unsupported(
                0,
                format!("{path} is {} bytes, more than rehost reads whole", e.size),
            ));
        }
        let mut out = Vec::with_capacity(e.size as usize);
        fs.copy_to(path, "", &mut out)?;
        Ok(out)
    }

    /// The file at `path` on volume `index` as a device, read in place.
    pub fn open_file(&self, index: u32, path: &str) -> Result<Box<dyn rehost_core::io::ReadAt>> {
        let fs = self.fs(index).ok_or_else(|| {
            self.ctx
                .invalid(format!("volume {index} has no readable file system"))
        })?;
        fs.open_file(path)
    }

    /// The volume of this image a boot store or MountedDevices names.
    pub fn resolve(&self, p: &PartitionRef) -> Option<u32> {
        match p {
            PartitionRef::Mbr { signature, offset } => (self.layout.mbr_signature.as_deref()
                == Some(signature.as_str()))
            .then(|| {
                self.layout
                    .volumes
                    .iter()
                    .find(|v| v.offset == *offset)
                    .map(|v| v.index)
            })
            .flatten(),
            PartitionRef::Gpt { disk, partition } => {
                // MountedDevices names only the partition; BCD names the disk too.
                if !disk.is_empty() && self.layout.disk_guid.as_deref() != Some(disk.as_str()) {
                    return None;
                }
                self.layout
                    .volumes
                    .iter()
                    .find(|v| v.partition_guid.as_deref() == Some(partition.as_str()))
                    .map(|v| v.index)
            }
        }
    }

    /// How a boot store or MountedDevices names volume `index` of this image (the inverse
    /// of [`Scene::resolve`]): MBR disk signature and start, or GPT disk and partition GUID.
    pub fn identity(&self, index: u32) -> Option<PartitionRef> {
        let v = self.volume(index)?;
        if let Some(signature) = &self.layout.mbr_signature {
            return Some(PartitionRef::Mbr {
                signature: signature.clone(),
                offset: v.offset,
            });
        }
        Some(PartitionRef::Gpt {
            disk: self.layout.disk_guid.clone()?,
            partition: v.partition_guid.clone()?,
        })
    }

    /// The volume `partition(N)` of an ARC path names on this disk (rdisk 0).
    pub fn arc_partition(&self, n: u32) -> Option<u32> {
        self.layout
            .volumes
            .iter()
            .find(|v| v.arc_partition == Some(n))
            .map(|v| v.index)
    }
}
