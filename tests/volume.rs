//! Partition tables at their edges: 4 KiB-sector GPT, damaged primary GPT, EBR chains that
//! loop, partitions past the end of the disk, encrypted and foreign volumes, mutations.

mod common;

use rehost::disk::{Memory, ReadAt};
use rehost::volume::{scan, Content, Partitioning};
use rehost::{Ctx, Layer};
use std::sync::Arc;

fn ctx() -> Ctx {
    Ctx::new("t.img", Layer::Volume)
}

fn dev(bytes: Vec<u8>) -> Arc<dyn ReadAt> {
    Arc::new(Memory::new("t.img", bytes))
}

/// An MBR sector with the given entries (status, type, start, sectors).
fn mbr(entries: &[(u8, u8, u32, u32)]) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[440..444].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    for (i, (status, kind, start, len)) in entries.iter().enumerate() {
        let o = 446 + 16 * i;
        s[o] = *status;
        s[o + 4] = *kind;
        s[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
        s[o + 12..o + 16].copy_from_slice(&len.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn put(disk: &mut [u8], sector: usize, bytes: &[u8]) {
    disk[sector * 512..sector * 512 + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn ebr_chains_loops_and_partitions_past_the_end() {
    let mut disk = vec![0u8; 4 << 20];
    // p1 NTFS-typed, p2 extended at 2048 (4096 sectors), p3 past the end of the disk.
    put(
        &mut disk,
        0,
        &mbr(&[
            (0x80, 7, 63, 1000),
            (0, 5, 2048, 4096),
            (0, 7, 6000, 100_000),
        ]),
    );
    // EBR 1 at 2048: a logical at +64; next EBR at +1024. EBR 2 loops back to EBR 1.
    put(
        &mut disk,
        2048,
        &mbr(&[(0, 6, 64, 512), (0, 5, 1024, 1024)]),
    );
    put(
        &mut disk,
        2048 + 1024,
        &mbr(&[(0, 0x0B, 64, 512), (0, 5, 0, 1024)]),
    );
    let l = scan(dev(disk.clone()), 512, &ctx()).unwrap();
    assert_eq!(l.partitioning, Partitioning::Mbr);
    assert_eq!(l.mbr_signature.as_deref(), Some("deadbeef"));
    let got: Vec<(u32, u64, bool, Option<u32>)> = l
        .volumes
        .iter()
        .map(|v| (v.index, v.offset, v.logical, v.arc_partition))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 63 * 512, false, Some(1)),
            (5, (2048 + 64) * 512, true, Some(2)),
            (6, (2048 + 1024 + 64) * 512, true, Some(3)),
        ]
    );
    assert!(l.volumes[0].bootable);
    assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
    assert!(
        l.errors[0].contains("t.img: mbr at offset 0x1de") && l.errors[0].contains("past the end"),
        "{:?}",
        l.errors
    );
    // A chain whose next pointer goes back: the first EBR points at itself.
    put(&mut disk, 2048, &mbr(&[(0, 6, 64, 512), (0, 5, 0, 1024)]));
    put(&mut disk, 2048, &{
        let mut s = mbr(&[(0, 6, 64, 512)]);
        // next EBR "at +0" is the end marker, so make it +2048 - outside the partition.
        s[462 + 4] = 5;
        s[462 + 8..462 + 12].copy_from_slice(&8192u32.to_le_bytes());
        s[462 + 12..462 + 16].copy_from_slice(&16u32.to_le_bytes());
        s
    });
    let l = scan(dev(disk), 512, &ctx()).unwrap();
    assert_eq!(l.volumes.len(), 2);
    assert!(
        l.errors
            .iter()
            .any(|e| e.contains("outside the extended partition")),
        "{:?}",
        l.errors
    );
}

#[test]
fn an_ebr_that_points_at_itself_stops() {
    let mut disk = vec![0u8; 2 << 20];
    put(&mut disk, 0, &mbr(&[(0, 0x0F, 100, 2000)]));
    put(&mut disk, 100, &mbr(&[(0, 6, 10, 10), (0, 5, 50, 100)]));
    put(&mut disk, 150, &mbr(&[(0, 6, 10, 10), (0, 5, 50, 100)]));
    let l = scan(dev(disk), 512, &ctx()).unwrap();
    assert_eq!(l.volumes.len(), 2);
    assert!(
        l.errors.iter().any(|e| e.contains("loops")),
        "{:?}",
        l.errors
    );
}

/// A GPT written for 4 KiB logical sectors (what a 4Kn disk or a VHDX with 4 KiB sectors
/// holds), found even when the caller assumed 512-byte sectors.
fn gpt_4k() -> Vec<u8> {
    let ss = 4096usize;
    let sectors = 1024usize;
    let mut d = vec![0u8; ss * sectors];
    d[..512].copy_from_slice(&mbr(&[(0, 0xEE, 1, (sectors - 1) as u32)]));
    let mut entries = vec![0u8; 128 * 128];
    let e = &mut entries[..128];
    e[..16].copy_from_slice(
        &uuid::Uuid::parse_str("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
            .unwrap()
            .to_bytes_le(),
    );
    e[16..32].copy_from_slice(
        &uuid::Uuid::parse_str("11223344-5566-7788-99aa-bbccddeeff00")
            .unwrap()
            .to_bytes_le(),
    );
    e[32..40].copy_from_slice(&256u64.to_le_bytes());
    e[40..48].copy_from_slice(&511u64.to_le_bytes());
    let name: Vec<u8> = "data"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    e[56..56 + name.len()].copy_from_slice(&name);
    let entries_crc = crc32fast::hash(&entries);
    let header = |my: u64, alt: u64, table: u64| {
        let mut h = vec![0u8; ss];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&6u64.to_le_bytes());
        h[48..56].copy_from_slice(&((sectors - 6) as u64).to_le_bytes());
        h[56..72].copy_from_slice(
            &uuid::Uuid::parse_str("0a0b0c0d-0000-4000-8000-00000000beef")
                .unwrap()
                .to_bytes_le(),
        );
        h[72..80].copy_from_slice(&table.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let last = (sectors - 1) as u64;
    d[ss..2 * ss].copy_from_slice(&header(1, last, 2));
    d[2 * ss..2 * ss + entries.len()].copy_from_slice(&entries);
    d[(last as usize - 4) * ss..(last as usize - 4) * ss + entries.len()].copy_from_slice(&entries);
    d[last as usize * ss..].copy_from_slice(&header(last, 1, last - 4));
    d
}

#[test]
fn gpt_with_4096_byte_sectors_and_its_backup() {
    let d = gpt_4k();
    for assumed in [512, 4096] {
        let l = scan(dev(d.clone()), assumed, &ctx()).unwrap();
        assert_eq!(l.partitioning, Partitioning::Gpt);
        assert_eq!(l.sector_size, 4096);
        assert_eq!(
            l.disk_guid.as_deref(),
            Some("0a0b0c0d-0000-4000-8000-00000000beef")
        );
        assert_eq!(l.volumes.len(), 1);
        let v = &l.volumes[0];
        assert_eq!((v.offset, v.size), (256 * 4096, 256 * 4096));
        assert_eq!(v.name.as_deref(), Some("data"));
        assert_eq!(
            v.partition_guid.as_deref(),
            Some("11223344-5566-7788-99aa-bbccddeeff00")
        );
        assert!(l.notes.is_empty(), "{:?}", l.notes);
    }
    // The primary header damaged: the backup is used, and said to be.
    let mut damaged = d.clone();
    damaged[4096 + 30] ^= 0xFF;
    let l = scan(dev(damaged.clone()), 4096, &ctx()).unwrap();
    assert_eq!(l.volumes.len(), 1);
    assert!(
        l.notes.iter().any(|n| n.contains("backup")),
        "{:?}",
        l.notes
    );
    // The primary entry array damaged too: still the backup.
    damaged[2 * 4096 + 40] ^= 0xFF;
    assert_eq!(
        scan(dev(damaged.clone()), 4096, &ctx())
            .unwrap()
            .volumes
            .len(),
        1
    );
    // Both copies gone: an error that names the layer and offset, no volumes, no panic.
    let last = damaged.len() - 4096;
    damaged[last..].fill(0);
    let l = scan(dev(damaged), 4096, &ctx()).unwrap();
    assert!(l.volumes.is_empty());
    assert!(
        l.errors.iter().any(|e| e.contains("t.img: gpt at offset")),
        "{:?}",
        l.errors
    );
}

#[test]
fn encrypted_and_foreign_volumes_are_named_and_do_not_stop_the_others() {
    let mut disk = vec![0u8; 8 << 20];
    put(
        &mut disk,
        0,
        &mbr(&[
            (0, 7, 2048, 2048),
            (0, 7, 4096, 2048),
            (0, 0x42, 6144, 2048),
            (0, 7, 8192, 2048),
        ]),
    );
    let vbr = |oem: &[u8; 8]| {
        let mut s = vec![0u8; 512];
        s[0] = 0xEB;
        s[3..11].copy_from_slice(oem);
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    };
    put(&mut disk, 2048, &vbr(b"-FVE-FS-"));
    put(&mut disk, 4096, &vbr(b"ReFS\0\0\0\0"));
    put(&mut disk, 6, b"PRIVHEAD");
    put(&mut disk, 8192, &vbr(b"EXFAT   "));
    let l = scan(dev(disk), 512, &ctx()).unwrap();
    let contents: Vec<Content> = l.volumes.iter().map(|v| v.content).collect();
    assert_eq!(
        contents,
        vec![
            Content::Bitlocker,
            Content::Refs,
            Content::Ldm,
            Content::Exfat
        ]
    );
    assert!(
        l.notes.iter().any(|n| n.contains("LDM dynamic disk")),
        "{:?}",
        l.notes
    );
}

#[test]
fn bare_volumes_and_blank_disks() {
    let bare = std::fs::read(common::fixture("ntfs/testfs1.zst")).unwrap();
    let l = scan(dev(bare.clone()), 512, &ctx()).unwrap();
    assert_eq!(l.partitioning, Partitioning::None);
    assert_eq!(l.volumes.len(), 1);
    assert_eq!(
        (l.volumes[0].offset, l.volumes[0].size, l.volumes[0].content),
        (0, bare.len() as u64, Content::Ntfs)
    );
    let l = scan(dev(vec![0u8; 1 << 20]), 512, &ctx()).unwrap();
    assert!(l.volumes.is_empty() && !l.notes.is_empty());
    let e = scan(dev(vec![0u8; 100]), 512, &ctx()).unwrap_err();
    assert!(e.to_string().starts_with("t.img: volume"), "{e}");
}

#[test]
fn seeded_mutations_of_partition_tables_never_panic() {
    if common::bounded::reran_in_child("seeded_mutations_of_partition_tables_never_panic") {
        return;
    }
    let mut x = 0x0123_4567_89ab_cdefu64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let gpt = gpt_4k();
    let mut mbr_disk = vec![0u8; 2 << 20];
    put(
        &mut mbr_disk,
        0,
        &mbr(&[(0x80, 7, 63, 1000), (0, 5, 2048, 2048)]),
    );
    put(
        &mut mbr_disk,
        2048,
        &mbr(&[(0, 6, 64, 512), (0, 5, 1024, 1024)]),
    );
    put(&mut mbr_disk, 3072, &mbr(&[(0, 0x0B, 64, 512)]));
    for round in 0..600 {
        let (mut d, hot): (Vec<u8>, &[usize]) = if round % 2 == 0 {
            (gpt.clone(), &[0, 4096, 8192, 4096 * 1023])
        } else {
            (mbr_disk.clone(), &[0, 2048 * 512, 3072 * 512])
        };
        for _ in 0..1 + rnd() % 8 {
            let at = hot[(rnd() % hot.len() as u64) as usize] + (rnd() % 512) as usize;
            d[at] = rnd() as u8;
        }
        if let Ok(l) = scan(dev(d), 512, &ctx()) {
            for v in &l.volumes {
                assert!(
                    v.offset + v.size <= (4 << 20),
                    "round {round}: volume outside the disk"
                );
            }
        }
    }
}
