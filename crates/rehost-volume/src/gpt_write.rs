//! Writing a GUID partition table (UEFI specification, chapter 5.3): the protective MBR at
//! LBA 0, the primary header at LBA 1 and its entry array from LBA 2, the backup entry
//! array and backup header at the end of the disk.
//!
//! [`build`] turns a [`Table`] into the sectors to write ([`Sectors`]) and writes nothing
//! itself: the caller stages them (and shows them in a dry run) like any other change. It
//! checks every partition against the usable range and the others, gives each partition
//! without one a new unique GUID (random, or from a seed: [`rehost_disk::Ids`]) and warns
//! of partitions not aligned to 1 MiB.
//!
//! Own code rather than the `gpt` crate: that crate writes through a device it holds
//! (`Read + Write + Seek`) where rehost needs the sectors as values to stage, show and
//! journal before anything reaches the image, and the whole table is some ninety lines.

use rehost_core::error::{Ctx, Layer, Result};
use rehost_disk::Ids;
use uuid::Uuid;

/// Entries in the array written: the specification's minimum, what Windows writes.
pub const ENTRY_COUNT: u32 = 128;
/// Bytes of one entry written.
pub const ENTRY_SIZE: u32 = 128;
/// UTF-16 code units a partition name holds.
pub const NAME_UNITS: usize = 36;
/// Alignment below which a partition's start is worth a warning.
pub const ALIGNMENT: u64 = 1 << 20;

/// Bytes of the entry array.
const ARRAY_BYTES: u64 = ENTRY_COUNT as u64 * ENTRY_SIZE as u64;
/// Bytes of the header proper (the rest of its sector is zero).
const HEADER_SIZE: usize = 92;

/// One partition to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Partition type GUID.
    pub type_guid: Uuid,
    /// Unique partition GUID; a new one is made when `None`.
    pub unique_guid: Option<Uuid>,
    /// Attribute bits (bit 0 required by the platform, bit 63 no drive letter, ...).
    pub attributes: u64,
    /// Name, at most 36 UTF-16 code units.
    pub name: String,
}

/// A partition table to write on a disk.
#[derive(Debug, Clone)]
pub struct Table {
    /// Disk size in bytes (a partial last sector is not used).
    pub disk_size: u64,
    /// Logical sector size: 512 or 4096.
    pub sector_size: u32,
    /// Disk GUID; a new one is made when `None`.
    pub disk_guid: Option<Uuid>,
    /// The disk's present sector 0 (at least 446 bytes): its boot code (bytes 0..440) and
    /// disk signature (440..444) are kept in the protective MBR. `None` writes zeros there.
    pub old_mbr: Option<Vec<u8>>,
    /// The partitions, in entry order (entry 1 first).
    pub partitions: Vec<Partition>,
}

/// The sectors a [`Table`] becomes, and what was decided on the way.
#[derive(Debug, Clone)]
pub struct Sectors {
    /// Byte offset and bytes of each write, in disk order: the protective MBR, the primary
    /// header, the primary array, the backup array, the backup header.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// The disk GUID written.
    pub disk_guid: Uuid,
    /// Each partition's unique GUID as written, in entry order.
    pub unique_guids: Vec<Uuid>,
    /// First usable LBA.
    pub first_usable: u64,
    /// Last usable LBA.
    pub last_usable: u64,
    /// LBA of the backup header (the disk's last).
    pub backup_lba: u64,
    /// Things worth telling (partitions not aligned to 1 MiB).
    pub warnings: Vec<String>,
}

/// Sectors the entry array takes at a sector size.
pub fn array_sectors(sector_size: u32) -> u64 {
    ARRAY_BYTES.div_ceil(sector_size as u64)
}

/// The first usable LBA of a table of [`ENTRY_COUNT`] entries: after the protective MBR,
/// the header and the array (34 with 512-byte sectors, 6 with 4 KiB ones).
pub fn first_usable_lba(sector_size: u32) -> u64 {
    2 + array_sectors(sector_size)
}

/// Sectors the backup array and header take at the end of the disk (33 with 512-byte
/// sectors, 5 with 4 KiB ones).
pub fn backup_sectors(sector_size: u32) -> u64 {
    array_sectors(sector_size) + 1
}

/// The sectors of `table`, checked. New GUIDs come from `ids`.
pub fn build(table: &Table, ids: &mut Ids, ctx: &Ctx) -> Result<Sectors> {
    let ctx = ctx.with_layer(Layer::Gpt);
    let ss = table.sector_size;
    if ss != 512 && ss != 4096 {
        return Err(ctx.invalid(format!(
            "a GPT is written with 512- or 4096-byte sectors, not {ss}"
        )));
    }
    let ssu = ss as u64;
    let sectors = table.disk_size / ssu;
    let first_usable = first_usable_lba(ss);
    // The smallest disk: the two tables and one usable sector.
    if sectors < first_usable + backup_sectors(ss) + 1 {
        return Err(ctx.invalid(format!(
            "a disk of {} bytes has no room for a GPT of {ss}-byte sectors",
            table.disk_size
        )));
    }
    let backup_lba = sectors - 1;
    let backup_array_lba = backup_lba - array_sectors(ss);
    let last_usable = backup_array_lba - 1;
    if table.partitions.len() > ENTRY_COUNT as usize {
        return Err(ctx.invalid(format!(
            "{} partitions: a GPT written here holds {ENTRY_COUNT}",
            table.partitions.len()
        )));
    }
    if let Some(m) = &table.old_mbr {
        if m.len() < 446 {
            return Err(ctx.invalid(format!(
                "the old MBR given is {} bytes, not a sector",
                m.len()
            )));
        }
    }
    let mut warnings = Vec::new();
    check_partitions(table, first_usable, last_usable, &ctx, &mut warnings)?;

    let disk_guid = table.disk_guid.unwrap_or_else(|| ids.guid());
    let mut unique_guids = Vec::with_capacity(table.partitions.len());
    for p in &table.partitions {
        let g = p.unique_guid.unwrap_or_else(|| ids.guid());
        if g.is_nil() || g == disk_guid || unique_guids.contains(&g) {
            return Err(ctx.invalid(format!(
                "partition at LBA {}: unique GUID {g} is nil or not unique on the disk",
                p.first_lba
            )));
        }
        unique_guids.push(g);
    }

    let mut array = vec![0u8; ARRAY_BYTES as usize];
    for ((p, g), e) in table
        .partitions
        .iter()
        .zip(&unique_guids)
        .zip(array.chunks_exact_mut(ENTRY_SIZE as usize))
    {
        entry(p, *g, e);
    }
    let array_crc = crc32fast::hash(&array);
    let array_lba = 2;
    let fields = HeaderFields {
        first_usable,
        last_usable,
        disk_guid,
        entries_crc: array_crc,
    };
    let primary = header(&fields, 1, backup_lba, array_lba, ss);
    let backup = header(&fields, backup_lba, 1, backup_array_lba, ss);
    let writes = vec![
        (0, protective_mbr(table.old_mbr.as_deref(), sectors, ss)),
        (ssu, primary),
        (array_lba * ssu, array.clone()),
        (backup_array_lba * ssu, array),
        (backup_lba * ssu, backup),
    ];
    Ok(Sectors {
        writes,
        disk_guid,
        unique_guids,
        first_usable,
        last_usable,
        backup_lba,
        warnings,
    })
}

/// Each partition inside the usable range, none overlapping another, names that fit,
/// type GUIDs set; a warning for each start not aligned to [`ALIGNMENT`].
fn check_partitions(
    table: &Table,
    first_usable: u64,
    last_usable: u64,
    ctx: &Ctx,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let ss = table.sector_size as u64;
    let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(table.partitions.len());
    for (i, p) in table.partitions.iter().enumerate() {
        let n = i + 1;
        if p.first_lba > p.last_lba {
            return Err(ctx.invalid(format!(
                "partition {n}: first LBA {} lies after its last LBA {}",
                p.first_lba, p.last_lba
            )));
        }
        if p.first_lba < first_usable || p.last_lba > last_usable {
            return Err(ctx.invalid(format!(
                "partition {n} (LBA {}..={}) lies outside the usable LBAs {first_usable}..={last_usable}",
                p.first_lba, p.last_lba
            )));
        }
        if p.type_guid.is_nil() {
            return Err(ctx.invalid(format!(
                "partition {n}: a nil type GUID marks an unused entry"
            )));
        }
        if p.name.encode_utf16().count() > NAME_UNITS {
            return Err(ctx.invalid(format!(
                "partition {n}: the name {:?} is longer than {NAME_UNITS} UTF-16 code units",
                p.name
            )));
        }
        if (p.first_lba * ss) % ALIGNMENT != 0 {
            warnings.push(format!(
                "partition {n} starts at LBA {} (byte {}), not on a 1 MiB boundary",
                p.first_lba,
                p.first_lba * ss
            ));
        }
        spans.push((p.first_lba, p.last_lba, n));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        let ((_, a_last, a), (b_first, _, b)) = (w[0], w[1]);
        if b_first <= a_last {
            return Err(ctx.invalid(format!(
                "partitions {a} and {b} overlap (LBA {b_first}..={a_last})"
            )));
        }
    }
    Ok(())
}

/// One 128-byte entry: type GUID, unique GUID, first and last LBA, attributes, name.
fn entry(p: &Partition, unique: Uuid, e: &mut [u8]) {
    e[0..16].copy_from_slice(&p.type_guid.to_bytes_le());
    e[16..32].copy_from_slice(&unique.to_bytes_le());
    e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
    e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
    e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
    for (unit, out) in p.name.encode_utf16().zip(e[56..128].chunks_exact_mut(2)) {
        out.copy_from_slice(&unit.to_le_bytes());
    }
}

/// What the two headers share.
struct HeaderFields {
    first_usable: u64,
    last_usable: u64,
    disk_guid: Uuid,
    entries_crc: u32,
}

/// A header sector: at `my_lba`, the other copy at `alternate_lba`, its array at
/// `array_lba`.
fn header(f: &HeaderFields, my_lba: u64, alternate_lba: u64, array_lba: u64, ss: u32) -> Vec<u8> {
    let mut h = vec![0u8; ss as usize];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
    h[40..48].copy_from_slice(&f.first_usable.to_le_bytes());
    h[48..56].copy_from_slice(&f.last_usable.to_le_bytes());
    h[56..72].copy_from_slice(&f.disk_guid.to_bytes_le());
    h[72..80].copy_from_slice(&array_lba.to_le_bytes());
    h[80..84].copy_from_slice(&ENTRY_COUNT.to_le_bytes());
    h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
    h[88..92].copy_from_slice(&f.entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..HEADER_SIZE]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// LBA 0: the old boot code and disk signature (if given), one 0xEE entry from LBA 1 over
/// the whole disk (0xFFFFFFFF sectors when it is larger), the 0x55AA signature; the rest of
/// a 4 KiB sector zero.
fn protective_mbr(old: Option<&[u8]>, sectors: u64, ss: u32) -> Vec<u8> {
    let mut m = vec![0u8; ss as usize];
    if let Some(old) = old {
        m[..444].copy_from_slice(&old[..444]);
    }
    let e = &mut m[446..462];
    e[0] = 0; // not active
    e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    e[4] = 0xEE;
    e[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    e[8..12].copy_from_slice(&1u32.to_le_bytes());
    let len = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    e[12..16].copy_from_slice(&len.to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xAA;
    m
}

#[cfg(test)]
mod tests;
