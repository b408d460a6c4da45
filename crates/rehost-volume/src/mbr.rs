//! MBR partition tables: four primary entries and the chain of extended boot records.

use super::{Content, VolumeInfo};
use rehost_core::error::Ctx;
use rehost_core::io::ReadAt;

/// Most logical partitions followed in one extended partition.
pub const MAX_LOGICALS: usize = 128;

/// One 16-byte partition entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// 0x80 when active (boot).
    pub status: u8,
    /// Partition type byte.
    pub kind: u8,
    /// First sector, relative to the table's base.
    pub start: u32,
    /// Sectors.
    pub sectors: u32,
}

/// The four entries of a table sector (MBR or EBR).
pub fn entries(sector: &[u8]) -> [Entry; 4] {
    let mut out = [Entry {
        status: 0,
        kind: 0,
        start: 0,
        sectors: 0,
    }; 4];
    for (i, e) in out.iter_mut().enumerate() {
        let o = 446 + 16 * i;
        e.status = sector[o];
        e.kind = sector[o + 4];
        e.start =
            u32::from_le_bytes([sector[o + 8], sector[o + 9], sector[o + 10], sector[o + 11]]);
        e.sectors = u32::from_le_bytes([
            sector[o + 12],
            sector[o + 13],
            sector[o + 14],
            sector[o + 15],
        ]);
    }
    out
}

/// Whether a type byte is an extended partition container.
pub fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

/// A readable name for an MBR partition type.
pub fn type_name(kind: u8) -> &'static str {
    match kind {
        0x01 => "FAT12",
        0x04 | 0x06 | 0x0E => "FAT16",
        0x05 | 0x0F | 0x85 => "extended",
        0x07 => "NTFS/exFAT/HPFS",
        0x0B | 0x0C => "FAT32",
        0x11 | 0x14 | 0x16 | 0x1B | 0x1C | 0x1E => "hidden FAT",
        0x12 => "OEM diagnostics",
        0x17 => "hidden NTFS",
        0x27 => "Windows recovery",
        0x42 => "LDM dynamic disk",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8E => "Linux LVM",
        0xDE => "Dell utility",
        0xEE => "GPT protective",
        0xEF => "EFI system",
        0xFD => "Linux RAID",
        _ => "unknown",
    }
}

/// What reading the chain produced: volumes (without their content yet), notes and errors.
#[derive(Default)]
pub struct Parsed {
    /// The volumes in table order.
    pub volumes: Vec<VolumeInfo>,
    /// Remarks.
    pub notes: Vec<String>,
    /// Entries that could not be used, as full error messages.
    pub errors: Vec<String>,
}

/// Reads the primary entries of `sector0` and follows every extended partition's chain.
pub fn parse(disk: &dyn ReadAt, sector0: &[u8], ss: u64, ctx: &Ctx) -> Parsed {
    let mut p = Parsed::default();
    let disk_sectors = disk.size() / ss;
    let mut logicals = Vec::new();
    for (slot, e) in entries(sector0).iter().enumerate() {
        if e.kind == 0 {
            continue;
        }
        let at = 446 + 16 * slot as u64;
        if e.sectors == 0 {
            p.notes.push(format!(
                "MBR entry {} (type {:#04x}) has no sectors; ignored",
                slot + 1,
                e.kind
            ));
            continue;
        }
        let end = e.start as u64 + e.sectors as u64;
        if end > disk_sectors {
            p.errors.push(
                ctx.corrupt(
                    at,
                    format!(
                        "partition {} (sectors {}..{}) lies past the end of the disk ({disk_sectors} sectors)",
                        slot + 1,
                        e.start,
                        end
                    ),
                )
                .to_string(),
            );
            continue;
        }
        if is_extended(e.kind) {
            follow_chain(
                disk,
                e.start as u64,
                e.sectors as u64,
                ss,
                ctx,
                &mut logicals,
                &mut p,
            );
            continue;
        }
        p.volumes.push(volume(slot as u32 + 1, e, 0, ss, false));
    }
    for (i, (base, e)) in logicals.into_iter().enumerate() {
        p.volumes.push(volume(5 + i as u32, &e, base, ss, true));
    }
    // ARC numbering: primaries first, then logicals (already in that order).
    for (n, v) in p.volumes.iter_mut().enumerate() {
        v.arc_partition = Some(n as u32 + 1);
    }
    p
}

fn volume(index: u32, e: &Entry, base: u64, ss: u64, logical: bool) -> VolumeInfo {
    VolumeInfo {
        index,
        offset: (base + e.start as u64) * ss,
        size: e.sectors as u64 * ss,
        part_type: format!("{:#04x}", e.kind),
        type_name: type_name(e.kind).to_string(),
        name: None,
        partition_guid: None,
        bootable: e.status & 0x80 != 0,
        logical,
        arc_partition: None,
        content: if e.kind == 0x42 {
            Content::Ldm
        } else {
            Content::Unknown
        },
    }
}

/// Follows the EBR chain of the extended partition at `ext_start` (`ext_len` sectors).
/// Each EBR's first entry is a logical partition relative to that EBR; its second entry
/// points at the next EBR relative to the extended partition. The chain must stay inside
/// the extended partition and visit each EBR once.
fn follow_chain(
    disk: &dyn ReadAt,
    ext_start: u64,
    ext_len: u64,
    ss: u64,
    ctx: &Ctx,
    out: &mut Vec<(u64, Entry)>,
    p: &mut Parsed,
) {
    let mut rel = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut sector = vec![0u8; ss as usize];
    loop {
        let ebr = ext_start + rel;
        let at = ebr * ss;
        if !seen.insert(ebr) {
            p.errors.push(
                ctx.corrupt(at, "extended boot record chain loops back on itself")
                    .to_string(),
            );
            return;
        }
        if out.len() >= MAX_LOGICALS {
            p.errors.push(
                ctx.corrupt(at, format!("more than {MAX_LOGICALS} logical partitions"))
                    .to_string(),
            );
            return;
        }
        if let Err(e) = disk.read_at(at, &mut sector) {
            p.errors.push(e.to_string());
            return;
        }
        if sector[510..512] != [0x55, 0xAA] {
            if rel != 0 {
                p.errors.push(
                    ctx.corrupt(at, "extended boot record has no 0x55AA signature")
                        .to_string(),
                );
            }
            return;
        }
        let [first, next, ..] = entries(&sector);
        if first.kind != 0 && first.sectors != 0 {
            let start = rel + first.start as u64;
            if start + first.sectors as u64 > ext_len {
                p.errors.push(
                    ctx.corrupt(
                        at + 446,
                        "logical partition reaches past its extended partition",
                    )
                    .to_string(),
                );
            } else {
                out.push((ebr, first));
            }
        }
        if next.kind == 0 || next.start == 0 {
            return;
        }
        rel = next.start as u64;
        if rel >= ext_len {
            p.errors.push(
                ctx.corrupt(
                    at + 462,
                    "next extended boot record lies outside the extended partition",
                )
                .to_string(),
            );
            return;
        }
    }
}
