use super::*;
use crate::{scan, Partitioning};
use rehost_core::io::{Memory, ReadAt};
use std::sync::Arc;

const BASIC: &str = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

fn ctx() -> Ctx {
    Ctx::new("t.img", Layer::Volume)
}

fn part(first: u64, last: u64, kind: &str, name: &str) -> Partition {
    Partition {
        first_lba: first,
        last_lba: last,
        type_guid: kind.parse().unwrap(),
        unique_guid: None,
        attributes: 0,
        name: name.into(),
    }
}

fn table(disk_size: u64, ss: u32, partitions: Vec<Partition>) -> Table {
    Table {
        disk_size,
        sector_size: ss,
        disk_guid: None,
        old_mbr: None,
        partitions,
    }
}

fn build_seeded(t: &Table) -> Result<Sectors> {
    build(t, &mut Ids::new(Some(7)), &ctx())
}

/// The sectors written into a zeroed disk of the table's size.
fn written(t: &Table, s: &Sectors) -> Arc<Memory> {
    let mut bytes = vec![0u8; t.disk_size as usize];
    for (at, b) in &s.writes {
        bytes[*at as usize..*at as usize + b.len()].copy_from_slice(b);
    }
    Arc::new(Memory::new("t.img", bytes))
}

#[test]
fn reads_back_through_the_reader_at_both_sector_sizes() {
    for ss in [512u32, 4096] {
        let mib = (1 << 20) / ss as u64;
        let size = 64 << 20;
        let mut p = vec![
            part(mib, 101 * mib - 1, ESP, "EFI system partition"),
            part(101 * mib, 117 * mib - 1, BASIC, "Basic data partition"),
        ];
        if ss == 4096 {
            p.truncate(1);
            p[0].last_lba = 33 * mib - 1;
        }
        p[0].attributes = 1;
        let t = table(if ss == 512 { 128 << 20 } else { size }, ss, p);
        let s = build_seeded(&t).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.first_usable, if ss == 512 { 34 } else { 6 });
        assert_eq!(s.backup_lba, t.disk_size / ss as u64 - 1);
        let disk = written(&t, &s);
        let layout = scan(disk.clone() as Arc<dyn ReadAt>, ss, &ctx()).unwrap();
        assert_eq!(layout.partitioning, Partitioning::Gpt);
        assert!(layout.errors.is_empty(), "{:?}", layout.errors);
        assert_eq!(layout.disk_guid, Some(s.disk_guid.to_string()));
        assert_eq!(layout.volumes.len(), t.partitions.len());
        for ((v, p), g) in layout
            .volumes
            .iter()
            .zip(&t.partitions)
            .zip(&s.unique_guids)
        {
            assert_eq!(v.offset, p.first_lba * ss as u64);
            assert_eq!(v.size, (p.last_lba - p.first_lba + 1) * ss as u64);
            assert_eq!(v.part_type, p.type_guid.to_string());
            assert_eq!(v.partition_guid, Some(g.to_string()));
            assert_eq!(v.name.as_deref(), Some(p.name.as_str()));
        }
        // The backup header alone reads too: it is the mirror of the primary.
        let gctx = ctx().with_layer(Layer::Gpt);
        let b = crate::gpt::header(&*disk, s.backup_lba, ss as u64, &gctx).unwrap();
        assert_eq!(b.alternate_lba, 1);
        assert_eq!(
            crate::gpt::entry_array(&*disk, &b, ss as u64, &gctx).unwrap(),
            crate::gpt::entry_array(
                &*disk,
                &crate::gpt::header(&*disk, 1, ss as u64, &gctx).unwrap(),
                ss as u64,
                &gctx
            )
            .unwrap()
        );
    }
}

#[test]
fn the_protective_mbr_keeps_the_boot_code_and_signature() {
    let mut old = vec![0u8; 512];
    for (i, b) in old.iter_mut().enumerate().take(440) {
        *b = i as u8 ^ 0x5a;
    }
    old[440..444].copy_from_slice(&0x5cbe_a03eu32.to_le_bytes());
    old[446 + 4] = 0x07; // the old MBR entry: gone
    let mut t = table(64 << 20, 512, vec![part(2048, 4095, BASIC, "")]);
    t.old_mbr = Some(old.clone());
    let s = build_seeded(&t).unwrap();
    let m = &s.writes[0].1;
    assert_eq!(s.writes[0].0, 0);
    assert_eq!(m[..444], old[..444]);
    assert_eq!(
        m[446..462],
        [0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0xFF, 0xFF, 0x01, 0]
    );
    assert!(m[462..510].iter().all(|b| *b == 0));
    assert_eq!(m[510..512], [0x55, 0xAA]);
}

#[test]
fn a_disk_over_2_tib_gets_the_largest_protective_entry() {
    let t = table(3 << 40, 512, vec![]);
    let s = build_seeded(&t).unwrap();
    assert_eq!(s.writes[0].1[458..462], [0xFF; 4]);
    assert_eq!(s.last_usable, (3u64 << 40) / 512 - 34);
}

#[test]
fn a_seed_gives_the_same_bytes_and_none_gives_new_guids() {
    let t = table(64 << 20, 512, vec![part(2048, 4095, BASIC, "a")]);
    let a = build_seeded(&t).unwrap();
    let b = build_seeded(&t).unwrap();
    assert_eq!(a.writes, b.writes);
    let c = build(&t, &mut Ids::new(None), &ctx()).unwrap();
    let d = build(&t, &mut Ids::new(None), &ctx()).unwrap();
    assert_ne!(c.disk_guid, d.disk_guid);
    assert_ne!(c.unique_guids, d.unique_guids);
    assert_eq!(c.disk_guid.get_version_num(), 4);
}

#[test]
fn given_guids_are_kept() {
    let mut t = table(64 << 20, 512, vec![part(2048, 4095, BASIC, "a")]);
    let g: Uuid = "11111111-2222-4333-8444-555555555555".parse().unwrap();
    let d: Uuid = "77777777-aaaa-4bbb-8ccc-000000000000".parse().unwrap();
    t.partitions[0].unique_guid = Some(g);
    t.disk_guid = Some(d);
    let s = build_seeded(&t).unwrap();
    assert_eq!((s.disk_guid, s.unique_guids.clone()), (d, vec![g]));
    t.partitions[0].unique_guid = Some(d);
    assert!(
        build_seeded(&t).is_err(),
        "a partition GUID equal to the disk's"
    );
}

#[test]
fn a_start_off_1_mib_is_a_warning() {
    let t = table(64 << 20, 512, vec![part(63, 4095, BASIC, "xp")]);
    let s = build_seeded(&t).unwrap();
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].contains("LBA 63"), "{}", s.warnings[0]);
}

#[test]
fn bad_tables_are_refused_with_their_reason() {
    let size = 64u64 << 20;
    let last = size / 512 - 34;
    let long = "x".repeat(37);
    let cases: Vec<(Table, &str)> = vec![
        (table(size, 1024, vec![]), "512- or 4096-byte"),
        (table(512 * 60, 512, vec![]), "no room for a GPT"),
        (table(4096 * 10, 4096, vec![]), "no room for a GPT"),
        (
            table(size, 512, vec![part(33, 4095, BASIC, "")]),
            "outside the usable",
        ),
        (
            table(size, 512, vec![part(2048, last + 1, BASIC, "")]),
            "outside the usable",
        ),
        (
            table(size, 512, vec![part(4096, 2048, BASIC, "")]),
            "lies after",
        ),
        (
            table(
                size,
                512,
                vec![part(2048, 8191, BASIC, ""), part(8191, 9000, ESP, "")],
            ),
            "partitions 1 and 2 overlap",
        ),
        (
            table(
                size,
                512,
                vec![part(8192, 9000, ESP, ""), part(2048, 8192, BASIC, "")],
            ),
            "partitions 2 and 1 overlap",
        ),
        (
            table(
                size,
                512,
                vec![part(2048, 4095, "00000000-0000-0000-0000-000000000000", "")],
            ),
            "nil type GUID",
        ),
        (
            table(size, 512, vec![part(2048, 4095, BASIC, &long)]),
            "longer than 36",
        ),
        (
            table(
                size,
                512,
                (0..129)
                    .map(|i| part(2048 + i, 2048 + i, BASIC, ""))
                    .collect(),
            ),
            "129 partitions",
        ),
    ];
    for (t, why) in cases {
        let e = build_seeded(&t).unwrap_err().to_string();
        assert!(e.contains(why), "{e} (wanted {why})");
        assert!(e.contains("t.img") && e.contains("gpt"), "{e}");
    }
    let mut t = table(size, 512, vec![]);
    t.old_mbr = Some(vec![0; 100]);
    assert!(build_seeded(&t).is_err());
}

#[test]
fn a_partition_may_fill_the_usable_range_exactly() {
    let t = table(
        64 << 20,
        512,
        vec![part(34, (64 << 20) / 512 - 34, BASIC, "")],
    );
    let s = build_seeded(&t).unwrap();
    assert_eq!(s.writes.last().unwrap().0, (64 << 20) - 512);
    assert_eq!(s.writes[3].0, (64 << 20) - 33 * 512);
}

/// Random tables: built or refused, never a panic; what is built reads back.
#[test]
fn random_tables_never_panic() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut built = 0;
    for _ in 0..2000 {
        let ss = [512u32, 4096, 1024][(next() % 3) as usize];
        let size = next() % (1 << (next() % 36 + 1));
        let n = next() % 5;
        let sectors = size / ss as u64 + 1;
        let parts = (0..n)
            .map(|_| {
                let first = next() % sectors;
                let mut p = part(first, first + next() % (sectors / 2 + 1), BASIC, "p");
                p.attributes = next();
                p
            })
            .collect();
        let t = table(size, ss, parts);
        if let Ok(s) = build_seeded(&t) {
            built += 1;
            if t.disk_size <= 64 << 20 {
                let disk = written(&t, &s);
                let layout = scan(disk as Arc<dyn ReadAt>, ss, &ctx()).unwrap();
                assert_eq!(layout.volumes.len(), t.partitions.len());
            }
        }
    }
    assert!(built > 100, "only {built} tables built");
}
