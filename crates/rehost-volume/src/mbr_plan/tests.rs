use super::*;
use crate::VolumeInfo;

const BASIC: &str = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
const MSR: &str = "e3c9e316-0b5c-4db8-817d-f92df00215ae";
const RECOVERY: &str = "de94bba4-06d1-4d40-a16a-bfd50179d6ac";

fn volume(index: u32, first: u64, sectors: u64, t: &str, content: Content) -> VolumeInfo {
    VolumeInfo {
        index,
        offset: first * 512,
        size: sectors * 512,
        part_type: t.into(),
        type_name: String::new(),
        name: None,
        partition_guid: None,
        bootable: false,
        logical: false,
        arc_partition: None,
        content,
    }
}

fn layout(volumes: Vec<VolumeInfo>) -> Layout {
    Layout {
        partitioning: Partitioning::Gpt,
        sector_size: 512,
        mbr_signature: None,
        disk_guid: Some("33333333-aaaa-4bbb-8ccc-000000000000".into()),
        volumes,
        notes: Vec::new(),
        errors: Vec::new(),
    }
}

fn header(my: u64, entries: u64) -> Header {
    Header {
        my_lba: my,
        alternate_lba: 0,
        disk_guid: String::new(),
        entries_lba: entries,
        entry_count: 128,
        entry_size: 128,
        entries_crc: 0,
    }
}

/// A protective MBR with a stand-in boot code.
fn protective() -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[..6].copy_from_slice(&[0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0xF4]);
    s[TABLE + 4] = 0xEE;
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn windows_layout() -> Layout {
    layout(vec![
        volume(1, 2048, 69632, ESP, Content::Fat32),
        volume(2, 71680, 2048, MSR, Content::MicrosoftReserved),
        volume(3, 73728, 81920, BASIC, Content::Ntfs),
        volume(4, 155648, 16384, RECOVERY, Content::Ntfs),
    ])
}

#[test]
fn the_table_parses() {
    let p = Profile::builtin();
    assert!(p.bios_arch.iter().any(|a| a == "x64"));
    assert!(p
        .to_mbr
        .iter()
        .any(|m| m.type_guid == MSR && m.carry == "drop"));
}

#[test]
fn windows_partitions_keep_their_numbers_and_offsets() {
    let old = protective();
    let req = Request {
        sector0: &old,
        headers: vec![header(1, 2), header(196607, 196575)],
        signature: 0x1234_5678,
        active: 3,
        disk_size: 196608 * 512,
    };
    let p = plan(&windows_layout(), &req).unwrap();
    let slots: Vec<(u32, u8, u32, bool)> = p
        .entries
        .iter()
        .map(|e| (e.slot, e.kind, e.first_lba, e.active))
        .collect();
    assert_eq!(
        slots,
        [
            (1, 0xEF, 2048, false),
            (3, 0x07, 73728, true),
            (4, 0x27, 155648, false)
        ]
    );
    assert_eq!(p.dropped.len(), 1);
    assert_eq!(p.dropped[0].volume, 2);
    let s = &p.sector0;
    assert_eq!(&s[..6], &old[..6], "the boot code kept");
    assert_eq!(&s[440..444], &0x1234_5678u32.to_le_bytes());
    // Entry 1: inactive, CHS (0, 32, 33) as Windows writes a partition at 1 MiB.
    assert_eq!(&s[446..454], &[0x00, 0x20, 0x21, 0x00, 0xEF, 117, 49, 4]);
    assert_eq!(&s[462..478], &[0u8; 16], "entry 2 (the MSR) empty");
    assert_eq!(s[478], 0x80);
    assert_eq!(s[482], 0x07);
    assert_eq!(&s[486..490], &73728u32.to_le_bytes());
    assert_eq!(&s[490..494], &81920u32.to_le_bytes());
    assert_eq!(&s[510..], &[0x55, 0xAA]);
    assert_eq!(
        p.zero,
        [
            (512, 512),
            (1024, 16384),
            (196575 * 512, 16384),
            (196607 * 512, 512)
        ]
    );
}

#[test]
fn chs_fields_are_windows_ones() {
    assert_eq!(chs(2048), [0x20, 0x21, 0x00]);
    assert_eq!(chs(0), [0, 1, 0]);
    // The last sector of cylinder 1023, and the first past it.
    let last = 1024 * 255 * 63 - 1;
    assert_eq!(chs(last), [0xFE, 0xFF, 0xFF]);
    assert_eq!(chs(last + 1), [0xFE, 0xFF, 0xFF]);
    assert_eq!(chs(1000 * 255 * 63), [0, 0x01 | (3 << 6), 0xE8]);
}

#[test]
fn refusals_say_which_condition_fails() {
    let old = protective();
    let req = |active| Request {
        sector0: &old,
        headers: Vec::new(),
        signature: 1,
        active,
        disk_size: 1 << 42,
    };
    let five: Vec<VolumeInfo> = (1..=5)
        .map(|i| volume(i, 2048 * i as u64, 2048, BASIC, Content::Ntfs))
        .collect();
    assert_eq!(
        plan(&layout(five), &req(1)),
        Err(Refusal::TooMany(vec![1, 2, 3, 4, 5]))
    );
    let past = layout(vec![
        volume(1, 2048, 2048, ESP, Content::Fat32),
        volume(5, 8192, 2048, BASIC, Content::Ntfs),
    ]);
    assert_eq!(plan(&past, &req(5)), Err(Refusal::PastEntry4(5)));
    let big = layout(vec![volume(1, 1 << 32, 2048, BASIC, Content::Ntfs)]);
    assert!(matches!(
        plan(&big, &req(1)),
        Err(Refusal::Past32Bit { volume: 1, .. })
    ));
    let ends_past = layout(vec![volume(
        1,
        (1 << 32) - 2048,
        4096,
        BASIC,
        Content::Ntfs,
    )]);
    let r = plan(&ends_past, &req(1)).unwrap_err();
    assert!(r.to_string().contains("2 TiB with 512-byte sectors"), "{r}");
    let odd = layout(vec![volume(
        1,
        2048,
        2048,
        "21686148-6449-6e6f-744e-656564454649",
        Content::Unknown,
    )]);
    assert!(matches!(
        plan(&odd, &req(1)),
        Err(Refusal::UnknownType(1, _))
    ));
    assert_eq!(
        plan(&windows_layout(), &req(2)),
        Err(Refusal::ActiveNotCarried(2))
    );
    let mut mbr = windows_layout();
    mbr.partitioning = Partitioning::Mbr;
    assert_eq!(plan(&mbr, &req(3)), Err(Refusal::NotGpt));
}

#[test]
fn the_esp_past_entry_4_is_dropped_and_fat_volumes_typed_by_content() {
    let old = protective();
    let l = layout(vec![
        volume(1, 2048, 2048, BASIC, Content::Fat32),
        volume(2, 4096, 2048, BASIC, Content::Ntfs),
        volume(5, 8192, 2048, ESP, Content::Fat32),
    ]);
    let req = Request {
        sector0: &old,
        headers: Vec::new(),
        signature: 1,
        active: 2,
        disk_size: 1 << 30,
    };
    let p = plan(&l, &req).unwrap();
    assert_eq!(p.entries[0].kind, 0x0C);
    assert_eq!(p.entries[1].kind, 0x07);
    assert_eq!(p.dropped[0].volume, 5);
}

#[test]
fn boot_code_is_present_only_when_it_is_code() {
    let p = Profile::builtin();
    assert_eq!(boot_code(&protective(), p), BootCode::Present(6));
    let mut zero = protective();
    zero[..440].fill(0);
    assert_eq!(boot_code(&zero, p), BootCode::Empty);
    let mut unsigned = protective();
    unsigned[511] = 0;
    assert_eq!(boot_code(&unsigned, p), BootCode::NoSignature);
    let mut grub = protective();
    grub[0x180..0x185].copy_from_slice(b"GRUB ");
    assert!(matches!(boot_code(&grub, p), BootCode::Other(w) if w.contains("GRUB")));
    assert_eq!(boot_code(&[0u8; 10], p), BootCode::NoSignature);
}

#[test]
fn gpt_structures_inside_a_partition_or_past_the_disk_are_left() {
    let old = protective();
    let mut huge = header(196607, 8);
    huge.entry_size = 1 << 20;
    let req = Request {
        sector0: &old,
        headers: vec![header(1, 2048), header(300000, 196575), huge],
        signature: 1,
        active: 3,
        disk_size: 196608 * 512,
    };
    let p = plan(&windows_layout(), &req).unwrap();
    assert_eq!(
        p.zero,
        [(512, 512), (196575 * 512, 16384), (196607 * 512, 512)]
    );
    let notes = p.notes.join("\n");
    assert!(
        notes.contains("entry array at LBA 2048") && notes.contains("in partition 1"),
        "{notes}"
    );
    assert!(
        notes.contains("header at LBA 300000") && notes.contains("outside the disk"),
        "{notes}"
    );
    assert!(notes.contains("more than a GPT array"), "{notes}");
}
