use super::*;
use crate::{Content, Layout, Partitioning, VolumeInfo};
use rehost_core::error::{Ctx, Layer};
use rehost_disk::Ids;

const BASIC: &str = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
const MSR: &str = "e3c9e316-0b5c-4db8-817d-f92df00215ae";
const RECOVERY: &str = "de94bba4-06d1-4d40-a16a-bfd50179d6ac";
const GIB: u64 = 1 << 30;

/// A partition: (index, MBR type, first sector, sectors, active, logical, content).
type P = (u32, u8, u64, u64, bool, bool, Content);

fn layout(ss: u32, parts: &[P]) -> Layout {
    Layout {
        partitioning: Partitioning::Mbr,
        sector_size: ss,
        mbr_signature: Some("5cbea03e".into()),
        disk_guid: None,
        volumes: parts
            .iter()
            .map(
                |&(index, kind, start, len, active, logical, content)| VolumeInfo {
                    index,
                    offset: start * ss as u64,
                    size: len * ss as u64,
                    part_type: format!("{kind:#04x}"),
                    type_name: String::new(),
                    name: None,
                    partition_guid: None,
                    bootable: active,
                    logical,
                    arc_partition: Some(index),
                    content,
                },
            )
            .collect(),
        notes: vec![],
        errors: vec![],
    }
}

fn req(disk_size: u64, ss: u32, grow: bool, reuse: bool, installs: &[u32]) -> Request {
    Request {
        disk_size,
        esp_size: Profile::builtin().esp_size(ss),
        can_grow: grow,
        reuse_system_reserved: reuse,
        install_volumes: installs.to_vec(),
    }
}

/// The entries as (origin, first LBA, last LBA, type).
fn shape(p: &Plan) -> Vec<(Origin, u64, u64, String)> {
    p.entries
        .iter()
        .map(|e| {
            (
                e.origin.clone(),
                e.partition.first_lba,
                e.partition.last_lba,
                e.partition.type_guid.to_string(),
            )
        })
        .collect()
}

/// A plan's table is one the writer accepts, at the planned size.
fn writable(p: &Plan) {
    let t = p.table(None);
    gpt_write::build(&t, &mut Ids::new(Some(1)), &Ctx::new("t", Layer::Gpt))
        .unwrap_or_else(|e| panic!("{e}: {p:?}"));
    assert_eq!(t.disk_size % (1 << 20), p.disk_size % (1 << 20));
}

const NTFS: Content = Content::Ntfs;
const FAT: Content = Content::Fat32;

#[test]
fn the_builtin_profile_parses() {
    let p = Profile::builtin();
    assert_eq!(p.esp_size(512), 100 << 20);
    assert_eq!(p.esp_size(4096), 260 << 20);
    assert!(p.map.iter().any(|m| m.mbr.contains(&0x07)));
}

#[test]
fn windows_7_with_system_reserved() {
    // 40 GiB, System Reserved 100 MiB at 1 MiB, Windows to the last MiB (as setup leaves it).
    let sectors = 40 * GIB / 512;
    let l = layout(
        512,
        &[
            (1, 0x07, 2048, 204800, true, false, NTFS),
            (2, 0x07, 206848, sectors - 2048 - 206848, false, false, NTFS),
        ],
    );
    let win_last = sectors - 2048 - 1;

    // System Reserved taken over: no growth, no MSR (only 1 MiB is free).
    let p = plan(&l, &req(40 * GIB, 512, true, true, &[2])).unwrap();
    assert_eq!(p.esp_source, EspSource::SystemReserved { volume: 1 });
    assert!(p.esp_reason.contains("MBR2GPT"), "{}", p.esp_reason);
    assert_eq!(p.grow_by, 0);
    assert_eq!(
        shape(&p),
        [
            (Origin::Esp, 2048, 206847, ESP.into()),
            (Origin::Mbr(2), 206848, win_last, BASIC.into()),
        ]
    );
    assert_eq!(p.esp().unwrap().name, "EFI system partition");
    assert!(p.msr_reason.starts_with("no MSR"), "{}", p.msr_reason);
    writable(&p);

    // Not allowed to take it: the disk grows, System Reserved kept: the ESP from the MiB
    // after Windows, 1 MiB after it for the backup GPT (the last free MiB is used).
    let p = plan(&l, &req(40 * GIB, 512, true, false, &[2])).unwrap();
    assert_eq!(p.esp_source, EspSource::Grown);
    assert_eq!(p.grow_by, 100 << 20, "{}", p.esp_reason);
    assert_eq!(p.disk_size, 40 * GIB + (100 << 20));
    assert_eq!(
        shape(&p)[2],
        (
            Origin::Esp,
            sectors - 2048,
            sectors - 2048 + 204799,
            ESP.into()
        )
    );
    assert_eq!(shape(&p)[0].1, 2048);
    writable(&p);

    // Neither: refused, saying each way.
    let e = plan(&l, &req(40 * GIB, 512, false, false, &[2])).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Refusal::NoRoomForEsp(_)));
    assert!(
        text.contains("no free span of 100 MiB") && text.contains("cannot grow"),
        "{text}"
    );
    assert!(text.contains("may not be taken over"), "{text}");

    // System Reserved holding the install is never taken.
    let p = plan(&l, &req(40 * GIB, 512, true, true, &[1, 2])).unwrap();
    assert_eq!(p.esp_source, EspSource::Grown);
}

#[test]
fn xp_at_sector_63_grows() {
    // One cylinder-aligned partition from sector 63; the disk's last partial cylinder free.
    let cyl = 255 * 63;
    let len = 1000 * cyl - 63;
    let size = (1000 * cyl + 5000) * 512;
    let l = layout(512, &[(1, 0x07, 63, len, true, false, NTFS)]);
    let p = plan(&l, &req(size, 512, true, true, &[1])).unwrap();
    assert_eq!(p.esp_source, EspSource::Grown);
    assert!(
        p.notes.iter().any(|n| n.contains("sector 63")),
        "{:?}",
        p.notes
    );
    let esp_first = (63 + len).div_ceil(2048) * 2048;
    assert_eq!(
        shape(&p),
        [
            (Origin::Mbr(1), 63, 63 + len - 1, BASIC.into()),
            (Origin::Esp, esp_first, esp_first + 204799, ESP.into()),
        ]
    );
    assert_eq!(p.disk_size, (esp_first + 204800 + 2048) * 512);
    assert_eq!(p.grow_by, p.disk_size - size);
    writable(&p);
    // The install's own volume is active NTFS but never System Reserved.
    let e = plan(&l, &req(size, 512, false, true, &[1])).unwrap_err();
    assert!(e.to_string().contains("no System Reserved"), "{e}");
}

#[test]
fn free_space_at_the_end_takes_the_esp_and_an_msr() {
    // 4 KiB sectors: Windows in the first 3 GiB of 4 GiB.
    let mib = 256;
    let l = layout(4096, &[(1, 0x07, mib, 3 * 1024 * mib, true, false, NTFS)]);
    let p = plan(&l, &req(4 * GIB, 4096, false, true, &[1])).unwrap();
    assert_eq!(p.esp_source, EspSource::FreeSpace);
    assert_eq!(p.grow_by, 0);
    let esp = (1 + 3 * 1024) * mib;
    assert_eq!(
        shape(&p),
        [
            (Origin::Mbr(1), mib, esp - 1, BASIC.into()),
            (Origin::Esp, esp, esp + 260 * mib - 1, ESP.into()),
            (
                Origin::Msr,
                esp + 260 * mib,
                esp + 276 * mib - 1,
                MSR.into()
            ),
        ]
    );
    assert!(p.esp_reason.contains("free"), "{}", p.esp_reason);
    assert!(p.msr_reason.contains("16 MiB MSR fits"), "{}", p.msr_reason);
    writable(&p);
}

#[test]
fn a_4k_system_reserved_too_small_for_the_esp_is_kept() {
    let mib = 256u64;
    let sectors = 8 * GIB / 4096;
    let l = layout(
        4096,
        &[
            (1, 0x07, mib, 100 * mib, true, false, NTFS),
            (2, 0x07, 101 * mib, sectors - 101 * mib, false, false, NTFS),
        ],
    );
    let p = plan(&l, &req(8 * GIB, 4096, true, true, &[2])).unwrap();
    assert_eq!(p.esp_source, EspSource::Grown);
    assert!(
        p.esp_reason.contains("smaller than the ESP"),
        "{}",
        p.esp_reason
    );
    assert_eq!(p.grow_by, 261 << 20);
    writable(&p);
}

#[test]
fn a_gap_between_partitions_is_used_and_logicals_map() {
    // Primary Windows, then an extended partition with two logicals, 200 MiB free between.
    let l = layout(
        512,
        &[
            (1, 0x07, 2048, 20 * 2048, true, false, NTFS),
            (5, 0x07, 300 * 2048 + 2048, 50 * 2048, false, true, NTFS),
            (6, 0x0C, 351 * 2048 + 2048, 50 * 2048, false, true, FAT),
            (3, 0x27, 402 * 2048 + 2048, 10 * 2048, false, false, NTFS),
        ],
    );
    let size = 600 << 20;
    let p = plan(&l, &req(size, 512, false, false, &[1])).unwrap();
    assert_eq!(p.esp_source, EspSource::FreeSpace);
    let s = shape(&p);
    assert_eq!(s[0], (Origin::Mbr(1), 2048, 21 * 2048 - 1, BASIC.into()));
    assert_eq!(s[1], (Origin::Esp, 21 * 2048, 121 * 2048 - 1, ESP.into()));
    assert_eq!(s[2], (Origin::Msr, 121 * 2048, 137 * 2048 - 1, MSR.into()));
    assert_eq!(s[3].0, Origin::Mbr(5));
    assert_eq!((s[4].0.clone(), s[4].3.as_str()), (Origin::Mbr(6), BASIC));
    assert_eq!(
        (s[5].0.clone(), s[5].3.as_str()),
        (Origin::Mbr(3), RECOVERY)
    );
    assert_eq!(p.entries[5].partition.attributes, 1 | 1 << 63);
    assert_eq!(p.entries[5].partition.name, "Recovery");
    assert!(
        p.notes.iter().any(|n| n.contains("logical")),
        "{:?}",
        p.notes
    );
    writable(&p);
}

#[test]
fn the_backup_gpt_needs_room_after_the_last_partition() {
    let sectors = 2 * GIB / 512;
    // 300 MiB free in the middle, the second partition to the last sector.
    let l = layout(
        512,
        &[
            (1, 0x07, 2048, 100 * 2048, true, false, NTFS),
            (
                2,
                0x07,
                401 * 2048,
                sectors - 401 * 2048,
                false,
                false,
                NTFS,
            ),
        ],
    );
    let e = plan(&l, &req(2 * GIB, 512, false, false, &[2])).unwrap_err();
    assert_eq!(
        e,
        Refusal::NoRoomForBackup {
            last_lba: sectors - 1,
            last_usable: sectors - 34
        }
    );
    let p = plan(&l, &req(2 * GIB, 512, true, false, &[2])).unwrap();
    assert_eq!(p.esp_source, EspSource::FreeSpace);
    assert_eq!(p.grow_by, 1 << 20);
    assert!(
        p.notes.iter().any(|n| n.contains("backup GPT")),
        "{:?}",
        p.notes
    );
    writable(&p);
}

#[test]
fn an_mbr_esp_is_kept() {
    let l = layout(
        512,
        &[
            (1, 0xEF, 2048, 100 * 2048, false, false, FAT),
            (2, 0x07, 101 * 2048, 400 * 2048, true, false, NTFS),
        ],
    );
    let p = plan(&l, &req(GIB, 512, false, false, &[2])).unwrap();
    assert_eq!(p.esp_source, EspSource::Existing { volume: 1 });
    assert_eq!(
        shape(&p)[0],
        (Origin::Esp, 2048, 101 * 2048 - 1, ESP.into())
    );
    assert_eq!(shape(&p)[2].0, Origin::Msr);
    writable(&p);
}

#[test]
fn refusals_say_why() {
    let g = GIB;
    let ok = (1, 0x07, 2048, 2048, true, false, NTFS);
    let mut gpt = layout(512, &[ok]);
    gpt.partitioning = Partitioning::Gpt;
    let mut none = layout(512, &[]);
    none.partitioning = Partitioning::None;
    let mut broken = layout(512, &[ok]);
    broken.errors.push("partition 2 lies past the end".into());
    let many: Vec<P> = (0..128)
        .map(|i| (5 + i, 0x07, 4096 + i as u64 * 4096, 2048, false, true, NTFS))
        .collect();
    let cases: Vec<(Layout, u32, Refusal)> = vec![
        (gpt, 512, Refusal::AlreadyGpt),
        (none, 512, Refusal::NoPartitionTable),
        (
            broken,
            512,
            Refusal::Unreadable(vec!["partition 2 lies past the end".into()]),
        ),
        (layout(1024, &[ok]), 512, Refusal::SectorSize(1024)),
        (
            layout(
                512,
                &[ok, (2, 0x12, 8192, 2048, false, false, Content::Unknown)],
            ),
            512,
            Refusal::UnknownType(2, "0x12".into()),
        ),
        (
            layout(512, &[(1, 0x07, 32, 2048, true, false, NTFS)]),
            512,
            Refusal::NoRoomForPrimary {
                volume: 1,
                first_lba: 32,
                needed: 34,
            },
        ),
        (
            layout(4096, &[(1, 0x07, 5, 2048, true, false, NTFS)]),
            4096,
            Refusal::NoRoomForPrimary {
                volume: 1,
                first_lba: 5,
                needed: 6,
            },
        ),
        (
            layout(512, &[ok, (2, 0x07, 3000, 2048, false, false, NTFS)]),
            512,
            Refusal::Overlap(1, 2),
        ),
        (layout(512, &many), 512, Refusal::TooManyPartitions(129)),
    ];
    for (l, ss, want) in cases {
        let got = plan(&l, &req(g, ss, true, true, &[])).unwrap_err();
        assert_eq!(got, want);
        assert!(!got.to_string().is_empty());
    }
    let dynamic = layout(512, &[(1, 0x42, 63, 2048, false, false, Content::Ldm)]);
    let e = plan(&dynamic, &req(g, 512, true, true, &[])).unwrap_err();
    assert!(matches!(e, Refusal::Type(1, 0x42, _)));
    assert!(e.to_string().contains("dynamic disk"), "{e}");
}

/// Random layouts (any types, offsets, sizes, flags, disk sizes): the planner never panics,
/// and every plan it gives is one the writer accepts.
#[test]
fn random_layouts_never_panic_and_plans_are_writable() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let kinds = [0x07u8, 0x0C, 0x27, 0xEF, 0x42, 0x12, 0x83, 0x00, 0xEE];
    let mut planned = 0;
    for _ in 0..3000 {
        let ss = if next() % 4 == 0 { 4096 } else { 512 };
        let disk_sectors = next() % (1 << (next() % 40 + 1)) + 1;
        let n = (next() % 4) as u32;
        let parts: Vec<P> = (0..n)
            .map(|i| {
                let start = next() % (disk_sectors + 10);
                let len = next() % (disk_sectors / 2 + 2);
                let content = [NTFS, FAT, Content::Unknown][(next() % 3) as usize];
                let kind = kinds[(next() % kinds.len() as u64) as usize];
                (i + 1, kind, start, len, next() % 2 == 0, i >= 4, content)
            })
            .collect();
        let l = layout(ss, &parts);
        let mut r = req(
            disk_sectors * ss as u64,
            ss,
            next() % 2 == 0,
            next() % 2 == 0,
            &[1],
        );
        if next() % 5 == 0 {
            r.esp_size = next() % (1 << 30);
        }
        if let Ok(p) = plan(&l, &r) {
            writable(&p);
            assert!(p.disk_size >= r.disk_size / ss as u64 * ss as u64);
            planned += 1;
        }
    }
    assert!(planned > 300, "only {planned} layouts planned");
}
