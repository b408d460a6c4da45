//! The volume layer: partition tables (MBR with extended/logical chains, GPT) to volumes.
//!
//! [`scan`] reads the partition table of a disk and returns its [`Layout`]: each volume with
//! its identity (index, byte offset, length, type, MBR disk signature or GPT disk and
//! partition GUIDs, boot flag) and what it holds ([`Content`]), read from the volume's first
//! sectors. A disk with no partition table but a file system at offset 0 is one bare volume.
//! BitLocker, ReFS, LDM dynamic disks and Storage Spaces are named, never fatal.

use crate::disk::{ReadAt, Slice};
use crate::error::{Ctx, Result};
use serde::Serialize;
use std::sync::Arc;

/// The partitioning scheme of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Partitioning {
    /// Master boot record (with extended partitions).
    Mbr,
    /// GUID partition table.
    Gpt,
    /// No partition table: the disk is one bare volume (or unreadable).
    None,
}

/// What a volume holds, from its first sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    /// NTFS (`NTFS    ` OEM id).
    Ntfs,
    /// FAT12.
    Fat12,
    /// FAT16.
    Fat16,
    /// FAT32.
    Fat32,
    /// exFAT.
    Exfat,
    /// ReFS.
    Refs,
    /// BitLocker-encrypted (`-FVE-FS-`).
    Bitlocker,
    /// An LDM (dynamic disk) database or data partition.
    Ldm,
    /// A Storage Spaces pool member.
    StorageSpaces,
    /// Microsoft reserved partition (no file system).
    MicrosoftReserved,
    /// Nothing recognised.
    Unknown,
}

/// One volume of a disk and its identity.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    /// 1-based position in the partition table (MBR: primaries 1-4, logicals from 5, as
    /// Linux numbers them; GPT: the entry number). A bare volume is 1.
    pub index: u32,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
    /// Partition type: `0x07` for MBR, the type GUID for GPT, `none` for a bare volume.
    pub part_type: String,
    /// A readable name of the partition type ("NTFS/exFAT/HPFS", "EFI system", ...).
    pub type_name: String,
    /// GPT partition name, if any.
    pub name: Option<String>,
    /// GPT unique partition GUID.
    pub partition_guid: Option<String>,
    /// MBR active (boot) flag.
    pub bootable: bool,
    /// An MBR logical partition inside an extended one.
    pub logical: bool,
    /// The number `partition(N)` of an ARC path gives this volume (MBR: primaries first,
    /// then logicals, extended and empty entries not numbered).
    pub arc_partition: Option<u32>,
    /// What the volume holds.
    pub content: Content,
}

/// The partition layout of a disk.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    /// The partitioning scheme.
    pub partitioning: Partitioning,
    /// Logical sector size used to read the table.
    pub sector_size: u32,
    /// MBR disk signature (offset 0x1B8), as 8 hex digits.
    pub mbr_signature: Option<String>,
    /// GPT disk GUID.
    pub disk_guid: Option<String>,
    /// The volumes, in table order.
    pub volumes: Vec<VolumeInfo>,
    /// Things worth telling a user (backup GPT header used, LDM present, ...).
    pub notes: Vec<String>,
}

/// Reads the partition table of `disk` (logical sectors of `sector_size` bytes).
pub fn scan(disk: Arc<dyn ReadAt>, sector_size: u32, ctx: &Ctx) -> Result<Layout> {
    let _ = (disk, sector_size);
    Err(ctx.unsupported(0, "volume scan not yet implemented"))
}

/// A volume as a device of its own.
pub fn open_volume(disk: Arc<dyn ReadAt>, volume: &VolumeInfo, ctx: &Ctx) -> Result<Slice> {
    Slice::new(disk, volume.offset, volume.size, ctx.clone())
}
