//! GUID partition tables: the primary header at LBA 1, the backup at the last LBA, the
//! partition entry array, each checked by its CRC-32.

use super::{Content, VolumeInfo};
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;

/// Most partition entries accepted (the specification's minimum array holds 128).
pub const MAX_ENTRIES: u32 = 16384;
/// Largest partition entry array read, in bytes.
pub const MAX_ARRAY: u64 = 4 << 20;

/// A GUID as Windows prints it, from its mixed-endian on-disk form.
pub fn guid(b: &[u8]) -> String {
    rehost_core::le::guid(b, 0)
}

/// A checked GPT header.
#[derive(Debug, Clone)]
pub struct Header {
    /// LBA of this header.
    pub my_lba: u64,
    /// LBA of the other copy.
    pub alternate_lba: u64,
    /// Disk GUID.
    pub disk_guid: String,
    /// First LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries.
    pub entry_count: u32,
    /// Size of one entry.
    pub entry_size: u32,
    /// CRC-32 of the entry array.
    pub entries_crc: u32,
}

/// Reads and checks the header at `lba`.
pub fn header(disk: &dyn ReadAt, lba: u64, ss: u64, ctx: &Ctx) -> Result<Header> {
    let at = lba
        .checked_mul(ss)
        .ok_or_else(|| ctx.corrupt(0, format!("GPT header LBA {lba} overflows")))?;
    let mut b = vec![0u8; ss as usize];
    disk.read_at(at, &mut b)?;
    if &b[..8] != b"EFI PART" {
        return Err(ctx.corrupt(at, "no \"EFI PART\" signature"));
    }
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let size = u32_at(12) as usize;
    if !(92..=ss as usize).contains(&size) {
        return Err(ctx.corrupt(at + 12, format!("header size {size} is invalid")));
    }
    let stored = u32_at(16);
    let mut copy = b[..size].to_vec();
    copy[16..20].fill(0);
    let computed = crc32fast::hash(&copy);
    if stored != computed {
        return Err(ctx.corrupt(
            at + 16,
            format!("header CRC-32 {stored:#010x} does not match the header ({computed:#010x})"),
        ));
    }
    let h = Header {
        my_lba: u64_at(24),
        alternate_lba: u64_at(32),
        disk_guid: guid(&b[56..72]),
        entries_lba: u64_at(72),
        entry_count: u32_at(80),
        entry_size: u32_at(84),
        entries_crc: u32_at(88),
    };
    if h.my_lba != lba {
        return Err(ctx.corrupt(
            at + 24,
            format!("header says it is at LBA {}, found at {lba}", h.my_lba),
        ));
    }
    if h.entry_size < 128 || h.entry_size % 8 != 0 || h.entry_count > MAX_ENTRIES {
        return Err(ctx.corrupt(
            at + 80,
            format!(
                "{} entries of {} bytes is not a valid entry array",
                h.entry_count, h.entry_size
            ),
        ));
    }
    Ok(h)
}

/// Reads the entry array of `h` and checks its CRC.
pub fn entry_array(disk: &dyn ReadAt, h: &Header, ss: u64, ctx: &Ctx) -> Result<Vec<u8>> {
    let len = h.entry_count as u64 * h.entry_size as u64;
    let at = h.entries_lba.checked_mul(ss).ok_or_else(|| {
        ctx.corrupt(
            h.my_lba.saturating_mul(ss).saturating_add(72),
            "entry array LBA overflows",
        )
    })?;
    if len > MAX_ARRAY || !rehost_core::io::in_bounds(at, len as usize, disk.size()) {
        return Err(ctx.corrupt(
            at,
            format!(
                "entry array of {len} bytes at LBA {} does not fit the disk",
                h.entries_lba
            ),
        ));
    }
    let mut a = vec![0u8; len as usize];
    disk.read_at(at, &mut a)?;
    let crc = crc32fast::hash(&a);
    if crc != h.entries_crc {
        return Err(ctx.corrupt(
            at,
            format!(
                "entry array CRC-32 {:#010x} does not match ({crc:#010x})",
                h.entries_crc
            ),
        ));
    }
    Ok(a)
}

/// A readable name and the content implied by a partition type GUID.
pub fn type_info(t: &str) -> (&'static str, Option<Content>) {
    match t {
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" => ("EFI system", None),
        "e3c9e316-0b5c-4db8-817d-f92df00215ae" => {
            ("Microsoft reserved", Some(Content::MicrosoftReserved))
        }
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7" => ("Microsoft basic data", None),
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac" => ("Windows recovery", None),
        "5808c8aa-7e8f-42e0-85d2-e1e90434cfb3" => ("LDM metadata", Some(Content::Ldm)),
        "af9b60a0-1431-4f62-bc68-3311714a69ad" => ("LDM data", Some(Content::Ldm)),
        "e75caf8f-f680-4cee-afa3-b001e56efc2d" => ("Storage Spaces", Some(Content::StorageSpaces)),
        "0fc63daf-8483-4772-8e79-3d69d8477de4" => ("Linux filesystem", None),
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f" => ("Linux swap", None),
        "e6d6d379-f507-44c2-a23c-238f2a3df928" => ("Linux LVM", None),
        "21686148-6449-6e6f-744e-656564454649" => ("BIOS boot", None),
        _ => ("unknown", None),
    }
}

/// The volumes of an entry array; entries past the end of the disk become errors.
pub fn volumes(
    a: &[u8],
    h: &Header,
    ss: u64,
    disk_size: u64,
    ctx: &Ctx,
    errors: &mut Vec<String>,
) -> Vec<VolumeInfo> {
    let mut out = Vec::new();
    for (i, e) in a.chunks_exact(h.entry_size as usize).enumerate() {
        if e[..16].iter().all(|b| *b == 0) {
            continue;
        }
        let first = u64::from_le_bytes(e[32..40].try_into().unwrap_or_default());
        let last = u64::from_le_bytes(e[40..48].try_into().unwrap_or_default());
        let at = h
            .entries_lba
            .saturating_mul(ss)
            .saturating_add(i as u64 * h.entry_size as u64);
        let range = last
            .checked_sub(first)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(ss))
            .zip(first.checked_mul(ss))
            .filter(|(len, off)| off.checked_add(*len).is_some_and(|end| end <= disk_size));
        let Some((size, offset)) = range else {
            errors.push(
                ctx.corrupt(
                    at,
                    format!(
                        "partition {} (LBA {first}..={last}) lies outside the disk",
                        i + 1
                    ),
                )
                .to_string(),
            );
            continue;
        };
        let kind = guid(&e[0..16]);
        let (name, content) = type_info(&kind);
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        let label = String::from_utf16_lossy(&units);
        out.push(VolumeInfo {
            index: i as u32 + 1,
            offset,
            size,
            part_type: kind,
            type_name: name.to_string(),
            name: (!label.is_empty()).then_some(label),
            partition_guid: Some(guid(&e[16..32])),
            bootable: false,
            logical: false,
            arc_partition: None,
            content: content.unwrap_or(Content::Unknown),
        });
    }
    out
}
