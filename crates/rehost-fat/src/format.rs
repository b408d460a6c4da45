//! Formatting a volume as FAT32 (an EFI system partition) through `fatfs`'s
//! `format_volume`, with what that function leaves out put right.
//!
//! The cluster size is the one Windows' format picks for the volume's size
//! (`profiles/fat.toml`: 1 KiB for a 100 MiB ESP, 4 KiB for a 260 MiB one), never below the
//! sector size, halved while the volume would hold fewer than the 65525 clusters FAT32
//! needs; a volume that holds fewer even at one sector per cluster is refused (100 MiB is
//! enough at 512-byte sectors, 260 MiB at 4 KiB ones), and so is one of more sectors than
//! the boot sector counts (2^32).
//!
//! `fatfs` 0.3 picks the FAT type by the cluster count whatever it was asked for, writes a
//! hidden-sector count of 0 and the label only in the boot sector; so the counts are checked
//! first, the hidden sectors (the partition's first LBA) are written into the boot sector and
//! its backup, and the label gets its root directory entry, as Windows and mkfs.vfat write
//! it. The format runs on an overlay of its own; the result is opened again by the reader
//! ([`crate::Fat`]) and must be FAT32 with the cluster size and label asked for before any
//! byte is passed on to the volume. Files go in afterwards through
//! [`crate::write::FatWriter`].

use super::Fat;
use rehost_core::error::{Ctx, Layer, Location, Result};
use rehost_core::io::{CursorMut, ReadAt, WriteAt};
use rehost_disk::Overlay;
use rehost_volume::Content;
use serde::Deserialize;
use std::sync::{Arc, OnceLock};

/// Fewest clusters of a FAT32 volume.
pub const MIN_CLUSTERS: u64 = 65525;
/// Reserved sectors `fatfs` writes before the first FAT of a FAT32 volume.
const RESERVED: u64 = 8;
/// FATs written.
const FATS: u64 = 2;

/// How to format.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes per sector: a power of two from 512 to 4096 (the disk's logical sector).
    pub sector_size: u32,
    /// Volume label: up to 11 characters of ASCII, kept in upper case; empty for none.
    pub label: String,
    /// Volume serial number.
    pub volume_id: u32,
    /// The partition's first LBA on its disk (the boot sector's hidden sectors).
    pub hidden_sectors: u32,
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Sectors of the volume.
    pub sectors: u64,
}

#[derive(Deserialize)]
struct Table {
    fat32: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    up_to_mib: Option<u64>,
    cluster: u32,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        toml::from_str(include_str!("../../../profiles/fat.toml"))
            .expect("the built-in FAT table parses (a unit test checks it)")
    })
}

/// Clusters of a FAT32 volume of `sectors` with `spc` sectors per cluster, at least (the
/// FATs counted at their largest).
fn clusters(sectors: u64, spc: u64, ss: u64) -> u64 {
    let rest = sectors.saturating_sub(RESERVED);
    let fat_sectors = ((rest / spc + 2) * 4).div_ceil(ss);
    rest.saturating_sub(FATS * fat_sectors) / spc
}

/// Bytes of the smallest FAT32 volume at sectors of `ss`, one sector per cluster.
fn smallest(ss: u64) -> u64 {
    (RESERVED + FATS * ((MIN_CLUSTERS + 2) * 4).div_ceil(ss) + MIN_CLUSTERS) * ss
}

/// The cluster size for a volume of `size` bytes and sectors of `ss`: Windows' default,
/// halved down to the sector size while the volume would hold too few clusters.
pub fn cluster_size(size: u64, ss: u32) -> u32 {
    let mib = size >> 20;
    let default = table()
        .fat32
        .iter()
        .find(|r| r.up_to_mib.is_none_or(|m| mib <= m))
        .map_or(4096, |r| r.cluster);
    let mut c = default.max(ss);
    while c > ss && clusters(size / ss as u64, (c / ss) as u64, ss as u64) < MIN_CLUSTERS {
        c /= 2;
    }
    c
}

/// The label's 11 bytes, or why not.
fn label_bytes(label: &str, ctx: &Ctx) -> Result<[u8; 11]> {
    let mut out = [b' '; 11];
    if label.is_empty() {
        out.copy_from_slice(b"NO NAME    ");
        return Ok(out);
    }
    let bad = |c: char| !c.is_ascii() || c.is_ascii_control() || "\"*+,./:;<=>?[\\]|".contains(c);
    if label.len() > 11 || label.chars().any(bad) {
        return Err(ctx.invalid(format!(
            "volume label {label:?}: up to 11 ASCII characters, none of \"*+,./:;<=>?[\\]|"
        )));
    }
    out[..label.len()].copy_from_slice(label.to_ascii_uppercase().as_bytes());
    Ok(out)
}

/// Formats `dev` (the whole volume) as FAT32.
pub fn format(dev: Arc<dyn WriteAt>, opts: &Options, ctx: &Ctx) -> Result<Formatted> {
    let ctx = ctx.with_layer(Layer::Fat);
    let ss = opts.sector_size;
    if !(512..=4096).contains(&ss) || !ss.is_power_of_two() {
        return Err(ctx.invalid(format!("{ss}-byte sectors: FAT has 512 to 4096")));
    }
    let label = label_bytes(&opts.label, &ctx)?;
    let sectors = dev.size() / ss as u64;
    if sectors > u32::MAX as u64 {
        return Err(ctx.invalid(format!(
            "{} sectors: a FAT32 boot sector counts at most 2^32 - 1",
            sectors
        )));
    }
    let cluster = cluster_size(dev.size(), ss);
    let n = clusters(sectors, (cluster / ss) as u64, ss as u64);
    if n < MIN_CLUSTERS {
        return Err(ctx.invalid(format!(
            "a volume of {} bytes holds {n} clusters of {cluster} bytes: FAT32 needs at least \
             {MIN_CLUSTERS} (about {} MiB at {ss}-byte sectors)",
            dev.size(),
            smallest(ss as u64).div_ceil(1 << 20)
        )));
    }

    let base: Arc<dyn ReadAt> = dev.clone();
    let ov = Arc::new(Overlay::new(base, ctx.clone()));
    let fmt = fatfs::FormatVolumeOptions::new()
        .bytes_per_sector(ss as u16)
        .total_sectors(sectors as u32)
        .bytes_per_cluster(cluster)
        .fat_type(fatfs::FatType::Fat32)
        .fats(FATS as u8)
        .media(0xF8)
        .sectors_per_track(63)
        .heads(255)
        .volume_id(opts.volume_id)
        .volume_label(label);
    fatfs::format_volume(CursorMut::new(ov.clone()), fmt)
        .map_err(|e| ctx.error(Location::Offset(0), e.into()))?;
    finish(&ov, ss, opts.hidden_sectors, &label)?;

    let read: Arc<dyn ReadAt> = ov.clone();
    let fat = Fat::open(read, ctx.clone())?;
    let got = (fat.fat_type(), fat.cluster_size(), fat.label());
    let want_label = String::from_utf8_lossy(&label).trim_end().to_string();
    if got != (Content::Fat32, cluster, want_label.clone()) {
        return Err(ctx.corrupt(
            0,
            format!(
                "the volume formatted reads back as {} with {}-byte clusters labelled {:?}, \
                 not FAT32 with {cluster} labelled {want_label:?}; nothing is written",
                got.0.name(),
                got.1,
                got.2
            ),
        ));
    }
    for (offset, bytes) in ov.extents() {
        dev.write_at(offset, &bytes)?;
    }
    Ok(Formatted {
        cluster_size: cluster,
        sectors,
    })
}

/// The hidden sectors in the boot sector and its backup; the free cluster count and the
/// next free cluster in FSInfo (`fatfs` leaves them unknown, which fsck.vfat reports); the
/// label's entry first in the root directory.
fn finish(ov: &Overlay, ss: u32, hidden: u32, label: &[u8; 11]) -> Result<()> {
    let mut boot = [0u8; 512];
    ov.read_at(0, &mut boot)?;
    let u16_at = |o: usize| u16::from_le_bytes([boot[o], boot[o + 1]]) as u64;
    let u32_at =
        |o: usize| u32::from_le_bytes([boot[o], boot[o + 1], boot[o + 2], boot[o + 3]]) as u64;
    let ssu = ss as u64;
    for at in [0, u16_at(50) * ssu] {
        ov.write_at(at + 28, &hidden.to_le_bytes())?;
    }
    let (reserved, fats, per_fat) = (u16_at(14), boot[16] as u64, u32_at(36));
    let (spc, root, total) = (boot[13] as u64, u32_at(44), u32_at(32));
    let data = reserved + fats * per_fat;
    let clusters = (total - data) / spc;
    // Every cluster is free but the root directory's (cluster 2); the next is 3.
    let fs_info = u16_at(48) * ssu;
    ov.write_at(fs_info + 488, &((clusters - 1) as u32).to_le_bytes())?;
    ov.write_at(fs_info + 492, &3u32.to_le_bytes())?;
    if label == b"NO NAME    " {
        return Ok(());
    }
    let at = (data + (root - 2) * spc) * ssu;
    let mut entry = [0u8; 32];
    entry[..11].copy_from_slice(label);
    entry[11] = 0x08; // volume label
    ov.write_at(at, &entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_picks_windows_sizes() {
        assert_eq!(table().fat32.len(), 7);
        assert_eq!(cluster_size(100 << 20, 512), 1024);
        assert_eq!(cluster_size(260 << 20, 4096), 4096);
        assert_eq!(cluster_size(260 << 20, 512), 4096);
        assert_eq!(cluster_size(40 << 20, 512), 512);
        // 300 MiB at 4 KiB clusters: 76800 clusters, Windows' default kept.
        assert_eq!(cluster_size(300 << 20, 512), 4096);
        // 200 MiB: 2 KiB would leave 102400 clusters.
        assert_eq!(cluster_size(200 << 20, 512), 2048);
        assert_eq!(smallest(512).div_ceil(1 << 20), 33);
        assert_eq!(smallest(4096).div_ceil(1 << 20), 257);
        // 64 GiB: 32 KiB.
        assert_eq!(cluster_size(64 << 30, 512), 32768);
    }

    #[test]
    fn labels() {
        let ctx = Ctx::new("t", Layer::Fat);
        assert_eq!(&label_bytes("System", &ctx).unwrap(), b"SYSTEM     ");
        assert_eq!(&label_bytes("", &ctx).unwrap(), b"NO NAME    ");
        assert!(label_bytes("TWELVE_CHARS", &ctx).is_err());
        assert!(label_bytes("a/b", &ctx).is_err());
        assert!(label_bytes("été", &ctx).is_err());
    }
}
