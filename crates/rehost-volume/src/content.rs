//! What a volume holds, from its first sector: file system boot sectors and signatures.

use super::Content;

/// Recognises the boot sector of a volume (512 bytes or more). `None`: no file system
/// signature.
pub fn sniff(b: &[u8]) -> Option<Content> {
    let oem = b.get(3..11)?;
    match oem {
        b"NTFS    " => return Some(Content::Ntfs),
        b"-FVE-FS-" => return Some(Content::Bitlocker),
        b"EXFAT   " => return Some(Content::Exfat),
        _ => {}
    }
    if &oem[..4] == b"ReFS" {
        return Some(Content::Refs);
    }
    fat_type(b)
}

/// The FAT type of a boot sector whose BIOS parameter block is consistent, by its count of
/// clusters (the only rule the FAT specification gives).
pub fn fat_type(b: &[u8]) -> Option<Content> {
    if b.len() < 512 || !(b[0] == 0xEB || b[0] == 0xE9) || b[510..512] != [0x55, 0xAA] {
        return None;
    }
    let u16_at = |o: usize| u32::from(rehost_core::le::u16_at(b, o));
    let u32_at = |o: usize| rehost_core::le::u32_at(b, o);
    let bytes_per_sector = u16_at(11);
    let per_cluster = b[13] as u32;
    let reserved = u16_at(14);
    let fats = b[16] as u32;
    let root_entries = u16_at(17);
    let total = if u16_at(19) != 0 {
        u16_at(19)
    } else {
        u32_at(32)
    };
    let fat_size = if u16_at(22) != 0 {
        u16_at(22)
    } else {
        u32_at(36)
    };
    let valid = matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && per_cluster.is_power_of_two()
        && reserved >= 1
        && (1..=2).contains(&fats)
        && fat_size > 0
        && total > 0;
    if !valid {
        return None;
    }
    let root_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
    let meta = reserved as u64 + fats as u64 * fat_size as u64 + root_sectors as u64;
    let data = (total as u64).checked_sub(meta)?;
    let clusters = data / per_cluster as u64;
    Some(if clusters < 4085 {
        Content::Fat12
    } else if clusters < 65525 {
        Content::Fat16
    } else {
        Content::Fat32
    })
}
