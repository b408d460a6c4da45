//! The volume layer: partition tables (MBR with extended/logical chains, GPT) to volumes.
//!
//! [`scan`] reads the partition table of a disk and returns its [`Layout`]: each volume with
//! its identity (index, byte offset, length, type, MBR disk signature or GPT disk and
//! partition GUIDs, boot flag) and what it holds ([`Content`]), read from the volume's first
//! sectors. A disk with no partition table but a file system at offset 0 is one bare volume.
//! BitLocker, ReFS, LDM dynamic disks and Storage Spaces are named, never fatal.
//!
//! ```no_run
//! use rehost_core::{Ctx, Layer};
//! let disk = rehost_disk::open("server.vhdx".as_ref(), &Default::default())?;
//! let ctx = Ctx::new("server.vhdx", Layer::Volume);
//! let layout = rehost_volume::scan(disk.reader(), disk.info().logical_sector_size, &ctx)?;
//! for v in &layout.volumes {
//!     println!("volume {} at {} bytes: {:?}", v.index, v.offset, v.content);
//! }
//! # Ok::<(), rehost_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod content;
pub mod gpt;
pub mod gpt_plan;
pub mod gpt_write;
pub mod mbr;
pub mod mbr_plan;

pub use content::sniff;

use rehost_core::error::{Ctx, Layer, Result};
use rehost_disk::{ReadAt, Slice};
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

impl Content {
    /// A FAT file system (12, 16 or 32).
    pub fn is_fat(self) -> bool {
        matches!(self, Content::Fat12 | Content::Fat16 | Content::Fat32)
    }

    /// A file system rehost reads: NTFS or FAT.
    pub fn is_readable(self) -> bool {
        self == Content::Ntfs || self.is_fat()
    }

    /// The short name of what a volume holds, for messages ("ntfs", "fat32", "msr").
    pub fn name(self) -> &'static str {
        match self {
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
    /// Partitions that could not be used (past the end of the disk, a broken EBR chain),
    /// each naming the image, the layer and the offset. The other volumes are still listed.
    pub errors: Vec<String>,
}

/// GPT partition type of an EFI system partition.
pub const ESP_TYPE: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/// Reads the partition table of `disk` (logical sectors of `sector_size` bytes; a GPT
/// written with the other common sector size, 512 or 4096, is found too).
pub fn scan(disk: Arc<dyn ReadAt>, sector_size: u32, ctx: &Ctx) -> Result<Layout> {
    let ctx = ctx.with_layer(Layer::Volume);
    if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
        return Err(ctx.corrupt(
            0,
            format!("logical sector size {sector_size} is not 512..4096 and a power of two"),
        ));
    }
    if disk.size() < 512 {
        return Err(ctx.corrupt(
            0,
            format!(
                "a disk of {} bytes has no room for a partition table",
                disk.size()
            ),
        ));
    }
    let mut sector0 = vec![0u8; 512];
    disk.read_at(0, &mut sector0)?;
    let mut layout = Layout {
        partitioning: Partitioning::None,
        sector_size,
        mbr_signature: None,
        disk_guid: None,
        volumes: Vec::new(),
        notes: Vec::new(),
        errors: Vec::new(),
    };
    if let Some(content) = sniff(&sector0) {
        layout.volumes.push(VolumeInfo {
            index: 1,
            offset: 0,
            size: disk.size(),
            part_type: "none".into(),
            type_name: "bare volume".into(),
            name: None,
            partition_guid: None,
            bootable: false,
            logical: false,
            arc_partition: None,
            content,
        });
        return Ok(layout);
    }
    if sector0[510..512] != [0x55, 0xAA] {
        layout
            .notes
            .push("no partition table and no file system at the start of the disk".into());
        return Ok(layout);
    }
    let entries = mbr::entries(&sector0);
    if entries.iter().any(|e| e.kind == 0xEE) {
        scan_gpt(&*disk, sector_size, &ctx, &mut layout);
    } else {
        layout.partitioning = Partitioning::Mbr;
        layout.mbr_signature = Some(format!(
            "{:08x}",
            u32::from_le_bytes([sector0[440], sector0[441], sector0[442], sector0[443]])
        ));
        let p = mbr::parse(
            &*disk,
            &sector0,
            sector_size as u64,
            &ctx.with_layer(Layer::Mbr),
        );
        layout.volumes = p.volumes;
        layout.notes.extend(p.notes);
        layout.errors.extend(p.errors);
        if entries.iter().any(|e| e.kind == 0x42) {
            let mut priv_head = [0u8; 8];
            if disk.read_at(6 * 512, &mut priv_head).is_ok() && &priv_head == b"PRIVHEAD" {
                layout.notes.push("LDM dynamic disk: its volumes are described by the LDM database, not read here".into());
            }
        }
    }
    for v in &mut layout.volumes {
        if v.content != Content::Unknown {
            continue;
        }
        let mut vbr = [0u8; 512];
        if v.size >= 512 && disk.read_at(v.offset, &mut vbr).is_ok() {
            if let Some(c) = sniff(&vbr) {
                v.content = c;
            }
        }
    }
    Ok(layout)
}

/// Reads a GPT, trying `sector_size` first and then the other usual size; uses the backup
/// header and array when the primary ones are damaged.
fn scan_gpt(disk: &dyn ReadAt, sector_size: u32, ctx: &Ctx, layout: &mut Layout) {
    let gctx = ctx.with_layer(Layer::Gpt);
    layout.partitioning = Partitioning::Gpt;
    let other = if sector_size == 4096 { 512 } else { 4096 };
    let mut first_error = None;
    for ss in [sector_size as u64, other] {
        // The primary header is at LBA 1 and the backup at the last LBA: a disk of fewer
        // than two sectors holds neither (a tiny disk can still carry a protective MBR).
        let Some(last) = (disk.size() / ss).checked_sub(1).filter(|l| *l >= 1) else {
            first_error.get_or_insert(gctx.corrupt(
                0,
                format!(
                    "a disk of {} bytes has no room for a GPT of {ss}-byte sectors",
                    disk.size()
                ),
            ));
            continue;
        };
        let primary = gpt::header(disk, 1, ss, &gctx)
            .and_then(|h| gpt::entry_array(disk, &h, ss, &gctx).map(|a| (h, a)));
        let found = match primary {
            Ok(found) => Ok(found),
            Err(e) => {
                let backup = gpt::header(disk, last, ss, &gctx)
                    .and_then(|h| gpt::entry_array(disk, &h, ss, &gctx).map(|a| (h, a)));
                if backup.is_ok() {
                    layout.notes.push(format!(
                        "primary GPT damaged ({e}); the backup at LBA {last} was used"
                    ));
                }
                backup.map_err(|_| e)
            }
        };
        match found {
            Ok((h, a)) => {
                layout.sector_size = ss as u32;
                layout.disk_guid = Some(h.disk_guid.clone());
                layout.volumes = gpt::volumes(&a, &h, ss, disk.size(), &gctx, &mut layout.errors);
                return;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        layout
            .errors
            .push(format!("protective MBR but no readable GPT: {e}"));
    }
}

/// A volume as a device of its own.
pub fn open_volume(disk: Arc<dyn ReadAt>, volume: &VolumeInfo, ctx: &Ctx) -> Result<Slice> {
    Slice::new(disk, volume.offset, volume.size, ctx.clone())
}
