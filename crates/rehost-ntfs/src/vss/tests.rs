//! The VSS reader on volumes built here: a catalog of one shadow copy, then the same with
//! each kind of damage. Whatever the bytes, a result and never a panic; damage said with
//! the image, the layer and the offset.

use super::*;
use rehost_core::io::Memory;

const CATALOG: u64 = 0x8000;
const STORE_HEADER: u64 = 0x10000;

fn block_header(b: &mut [u8], at: u64, record_type: u32, relative: u64, next: u64) {
    let o = at as usize;
    b[o..o + 16].copy_from_slice(&VSS_IDENTIFIER);
    b[o + 16..o + 20].copy_from_slice(&1u32.to_le_bytes());
    b[o + 20..o + 24].copy_from_slice(&record_type.to_le_bytes());
    b[o + 24..o + 32].copy_from_slice(&relative.to_le_bytes());
    b[o + 32..o + 40].copy_from_slice(&at.to_le_bytes());
    b[o + 40..o + 48].copy_from_slice(&next.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A 128 KiB volume: the volume header, a catalog of one block listing one shadow copy,
/// its store header.
fn volume() -> Vec<u8> {
    let mut b = vec![0u8; 0x20000];
    let h = header::VOLUME_HEADER_OFFSET as usize;
    b[h..h + 16].copy_from_slice(&VSS_IDENTIFIER);
    b[h + 16] = 1;
    b[h + 20] = 1;
    put64(&mut b, h + 24, header::VOLUME_HEADER_OFFSET);
    put64(&mut b, h + 48, CATALOG);
    block_header(&mut b, CATALOG, VSS_RECORD_CATALOG, 0, 0);
    let e = CATALOG as usize + BLOCK_HEADER_SIZE;
    put64(&mut b, e, 2);
    put64(&mut b, e + 8, 0x20000);
    b[e + 16] = 0xAA; // store identifier aa000000-...
    put64(&mut b, e + 48, 130_305_261_097_363_787);
    let e = e + 128;
    put64(&mut b, e, 3);
    b[e + 16] = 0xAA;
    put64(&mut b, e + 32, STORE_HEADER);
    put64(&mut b, e + 56, (1 << 48) | 64);
    block_header(&mut b, STORE_HEADER, VSS_RECORD_STORE_HEADER, 0, 0);
    let i = STORE_HEADER as usize;
    put64(&mut b, i + 48, 70);
    let info = i + BLOCK_HEADER_SIZE;
    b[info + 16] = 0x11; // shadow copy id 00000011-...
    b[info + 56] = 9; // attribute flags
    b
}

fn read_bytes(b: Vec<u8>) -> Option<ShadowCopies> {
    let dev = Memory::new("test.raw", b);
    read(&dev, &Ctx::new("test.raw", Layer::Ntfs)).expect("only the header's read fails")
}

#[test]
fn a_catalog_of_one_copy_reads_whole() {
    let s = read_bytes(volume()).expect("a VSS volume header");
    assert_eq!(s.damaged, None);
    assert_eq!(s.count(), 1);
    let c = &s.copies[0];
    assert_eq!(c.store_id, "000000aa-0000-0000-0000-000000000000");
    assert_eq!(c.created, "2013-12-03T06:35:09.7363787Z");
    assert_eq!(
        c.shadow_copy_id.as_deref(),
        Some("00000011-0000-0000-0000-000000000000")
    );
    assert_eq!(c.attribute_flags, Some(9));
    let l = c.store.as_ref().unwrap();
    assert_eq!((l.file_record, l.file_sequence), (64, 1));
    assert_eq!(c.damaged, None);
}

#[test]
fn no_header_is_no_shadow_copies_and_a_tiny_volume_too() {
    assert!(read_bytes(vec![0u8; 0x20000]).is_none());
    assert!(read_bytes(vec![0u8; 100]).is_none());
}

/// `damage` applied to the volume gives a damaged catalog whose message names the image,
/// the layer, the offset and `says`, with `copies` shadow copies still listed.
fn damaged(damage: impl Fn(&mut Vec<u8>), at: u64, says: &str, copies: usize) {
    let mut b = volume();
    damage(&mut b);
    let s = read_bytes(b).expect("a VSS volume header");
    let d = s
        .damaged
        .as_deref()
        .unwrap_or_else(|| panic!("not damaged: {s:?}"));
    let head = format!("test.raw: vss at offset {at:#x}: ");
    assert!(d.starts_with(&head), "{d}");
    assert!(d.contains(says), "{d}");
    assert_eq!(s.count(), copies, "{d}");
    assert!(s.any());
}

#[test]
fn each_kind_of_catalog_damage_is_said_where_it_is() {
    let h = header::VOLUME_HEADER_OFFSET as usize;
    let c = CATALOG as usize;
    damaged(
        |b| put64(b, h + 48, 1 << 40),
        1 << 40,
        "outside the volume",
        0,
    );
    damaged(
        |b| put64(b, h + 48, u64::MAX - 5),
        u64::MAX - 5,
        "outside",
        0,
    );
    damaged(|b| b[c] ^= 1, CATALOG, "VSS identifier", 0);
    damaged(|b| b[c + 20] = 3, CATALOG, "record type 3", 0);
    damaged(
        |b| put64(b, c + 32, 0x4000),
        CATALOG,
        "says it lies at 0x4000",
        0,
    );
    damaged(|b| put64(b, c + 40, CATALOG), CATALOG, "loops", 1);
    damaged(|b| put64(b, c + 128 * 3, 7), CATALOG + 128 * 3, "type 7", 1);
    damaged(|b| b[h + 20] = 2, 0x1E00, "record type 2", 0);
}

#[test]
fn a_damaged_store_header_is_said_with_its_copy() {
    let mut b = volume();
    put64(&mut b, STORE_HEADER as usize + 48, 1 << 20);
    let s = read_bytes(b).unwrap();
    assert_eq!(s.damaged, None);
    let d = s.copies[0].damaged.as_deref().unwrap();
    assert!(d.starts_with("test.raw: vss at offset 0x10000: "), "{d}");
    assert!(d.contains("information 1048576 bytes"), "{d}");
    // A machine name longer than the information holds.
    let mut b = volume();
    b[STORE_HEADER as usize + BLOCK_HEADER_SIZE + 64] = 200;
    let s = read_bytes(b).unwrap();
    assert!(s.copies[0]
        .damaged
        .as_deref()
        .unwrap()
        .contains("200 bytes"));
}

#[test]
fn a_block_list_is_counted_and_a_looping_one_refused() {
    let mut b = volume();
    let at = 0x14000u64;
    block_header(&mut b, at, VSS_RECORD_BLOCK_LIST, 0, 0);
    for n in 0..5 {
        b[at as usize + BLOCK_HEADER_SIZE + n * 32] = 1;
    }
    let dev = Memory::new("test.raw", b.clone());
    let ctx = Ctx::new("test.raw", Layer::Vss);
    assert_eq!(store::count_block_descriptors(&dev, &ctx, at).unwrap(), 5);
    put64(&mut b, at as usize + 40, at);
    let dev = Memory::new("test.raw", b);
    let e = store::count_block_descriptors(&dev, &ctx, at).unwrap_err();
    assert!(e.to_string().contains("loops"), "{e}");
}

#[test]
fn random_bytes_after_a_valid_header_never_panic() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..300 {
        let mut b = volume();
        for _ in 0..(1 + round % 40) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % b.len();
            // Most flips land where the structures are.
            let at = if round % 2 == 0 {
                0x1E00 + at % 0x200
            } else {
                at
            };
            let at = if round % 3 == 0 {
                CATALOG as usize + at % 0x400
            } else {
                at
            };
            b[at] = (state >> 32) as u8;
        }
        let _ = read_bytes(b);
    }
}
