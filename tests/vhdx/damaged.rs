//! Damaged files give errors that name the image, the layer and the offset; seeded random
//! mutations of a dynamic disk with a log and of a differencing disk never panic or hang.

use super::*;
use crate::common;

/// A dynamic disk: 4 MiB, blocks 1 and 2 present.
fn plain() -> Vec<u8> {
    VhdxSpec {
        virtual_size: 4 * MB as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: [1, 2]
            .into_iter()
            .map(|i| Block {
                index: i,
                state: 6,
                data: Some(common::pattern(MB, i)),
            })
            .collect(),
        bitmap: None,
        data_write_guid: "01010101-0202-0303-0404-050505050505".into(),
        parent: None,
    }
    .build()
}

fn open_err(p: &Path) -> String {
    match uncached(p) {
        Ok(_) => panic!("{} opened", p.display()),
        Err(e) => e.to_string(),
    }
}

fn read_err(p: &Path, at: u64, len: usize) -> String {
    let d = uncached(p).unwrap();
    let mut buf = vec![0u8; len];
    d.read_at(at, &mut buf).unwrap_err().to_string()
}

#[test]
fn damaged_headers_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let good = plain();
    let w = |name: &str, b: &[u8]| write(dir.path(), name, b);
    // One bad header: the other is used, with a note. Both bad: refused.
    let mut one = good.clone();
    one[CURRENT_HEADER + 200] ^= 1;
    let d = uncached(&w("one.vhdx", &one)).unwrap();
    assert!(
        d.info()
            .notes
            .iter()
            .any(|n| n.contains("header at 0x20000 is damaged")),
        "{:?}",
        d.info().notes
    );
    assert_eq!(common::read_all(&d)[MB..2 * MB], common::pattern(MB, 1)[..]);
    let mut both = one.clone();
    both[64 * 1024 + 200] ^= 1;
    let msg = open_err(&w("both.vhdx", &both));
    assert!(
        msg.contains("both.vhdx: vhdx at offset 0x10004") && msg.contains("CRC-32C"),
        "{msg}"
    );
    let mut zero = good.clone();
    zero[64 * 1024..192 * 1024].fill(0);
    let msg = open_err(&w("zero.vhdx", &zero));
    assert!(
        msg.contains("zero.vhdx: vhdx at offset 0x10000") && msg.contains("head"),
        "{msg}"
    );
    // No file type identifier.
    let mut ident = good.clone();
    ident[..8].copy_from_slice(b"vhdxfilf");
    // (not detected as VHDX at all: read as a raw image)
    let d = uncached(&w("ident.vhdx", &ident)).unwrap();
    assert_eq!(d.info().format, disk::Format::Raw);
    // A version other than 1 in the current header.
    let mut ver = good.clone();
    ver[CURRENT_HEADER + 66] = 2;
    reseal(&mut ver, CURRENT_HEADER, 4096);
    assert!(open_err(&w("ver.vhdx", &ver)).contains("version 2"));
    // The first region table damaged: its copy, with a note. Both: refused.
    let mut r1 = good.clone();
    r1[192 * 1024 + 40] ^= 1;
    let d = uncached(&w("r1.vhdx", &r1)).unwrap();
    assert!(d.info().notes.iter().any(|n| n.contains("region table")));
    let mut r2 = r1.clone();
    r2[256 * 1024 + 40] ^= 1;
    let msg = open_err(&w("r2.vhdx", &r2));
    assert!(
        msg.contains("offset 0x30004") && msg.contains("region table"),
        "{msg}"
    );
    // Region table edits, resealed: a required unknown region, a misaligned region, too
    // many entries, a region past the end of the file.
    let region_edit = |name: &str, edit: &dyn Fn(&mut [u8])| {
        let mut f = good.clone();
        for at in [192 * 1024, 256 * 1024] {
            edit(&mut f[at..at + 64 * 1024]);
            reseal(&mut f, at, 64 * 1024);
        }
        open_err(&w(name, &f))
    };
    let msg = region_edit("unknown.vhdx", &|r| {
        put32(r, 8, 3);
        r[80..96].copy_from_slice(&[0x5A; 16]);
        put64(r, 96, 4 * MB as u64);
        put32(r, 104, MB as u32);
        put32(r, 108, 1);
    });
    assert!(
        msg.contains("unsupported") && msg.contains("5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a"),
        "{msg}"
    );
    let msg = region_edit("align.vhdx", &|r| put64(r, 32, 2 * MB as u64 + 4096));
    assert!(msg.contains("1 MiB aligned"), "{msg}");
    let msg = region_edit("count.vhdx", &|r| put32(r, 8, 5000));
    assert!(msg.contains("5000 entries"), "{msg}");
    let msg = region_edit("past.vhdx", &|r| put64(r, 64, 900 * MB as u64));
    assert!(msg.contains("inside the file"), "{msg}");
    let msg = region_edit("overlap.vhdx", &|r| put64(r, 64, 2 * MB as u64));
    assert!(msg.contains("overlaps"), "{msg}");
    let msg = region_edit("nobat.vhdx", &|r| {
        r[16] ^= 1;
        r[44] = 0;
    });
    assert!(msg.contains("no BAT region"), "{msg}");
}

#[test]
fn damaged_metadata_and_bat() {
    let dir = tempfile::tempdir().unwrap();
    let good = plain();
    let w = |name: &str, b: &[u8]| write(dir.path(), name, b);
    let meta = 3 * MB;
    // File parameters are the first item, at 64 KiB into the region.
    let mut bs = good.clone();
    put32(&mut bs, meta + 64 * 1024, 3 * MB as u32);
    assert!(open_err(&w("bs.vhdx", &bs)).contains("block size 3145728"));
    let mut bs = good.clone();
    put32(&mut bs, meta + 64 * 1024, 512 * MB as u32);
    assert!(open_err(&w("bs2.vhdx", &bs)).contains("block size"));
    // An unknown item marked required; the same not required is ignored.
    let mut unknown = good.clone();
    let count = u16::from_le_bytes([unknown[meta + 10], unknown[meta + 11]]) as usize;
    let e = meta + 32 + 32 * count;
    unknown[e..e + 16].copy_from_slice(&[0x3C; 16]);
    put32(&mut unknown, e + 24, 4);
    unknown[meta + 10..meta + 12].copy_from_slice(&(count as u16 + 1).to_le_bytes());
    let msg = open_err(&w("unknown.vhdx", &unknown));
    assert!(msg.contains("required metadata item 3c3c3c3c"), "{msg}");
    put32(&mut unknown, e + 24, 0);
    assert!(uncached(&w("optional.vhdx", &unknown)).is_ok());
    // An item outside the region; a missing item; a sector size of 1000; a zero disk size.
    let mut out = good.clone();
    put32(&mut out, meta + 32 + 16, 2 * MB as u32);
    assert!(open_err(&w("out.vhdx", &out)).contains("outside the metadata region"));
    let mut missing = good.clone();
    missing[meta + 32 + 32] ^= 0xFF; // the virtual disk size item's id, not required
    put32(&mut missing, meta + 32 + 32 + 24, 0);
    assert!(open_err(&w("missing.vhdx", &missing)).contains("no virtual disk size"));
    let mut sector = good.clone();
    let lss_item = u32_at(&good, meta + 32 + 3 * 32 + 16) as usize;
    put32(&mut sector, meta + lss_item, 1000);
    assert!(open_err(&w("sector.vhdx", &sector)).contains("sector size 1000"));
    let mut size = good.clone();
    let size_item = u32_at(&good, meta + 32 + 32 + 16) as usize;
    put64(&mut size, meta + size_item, 0);
    assert!(open_err(&w("size.vhdx", &size)).contains("virtual disk size 0"));
    // A disk too big for its BAT region.
    put64(&mut size, meta + size_item, 1 << 40);
    assert!(open_err(&w("big.vhdx", &size)).contains("cannot hold"));
    // BAT entries past the end of the file, with 1 MiB and 32 MiB blocks and the largest
    // FileOffsetMB: errors naming the entry and its offset, when read.
    let bat = 2 * MB;
    let mut past = good.clone();
    put64(&mut past, bat + 8, 6 | 4096 << 20);
    let p = w("past.vhdx", &past);
    let msg = read_err(&p, MB as u64, 512);
    assert!(
        msg.contains("past.vhdx: vhdx at offset 0x200008")
            && msg.contains("BAT entry 1 points at file offset 0x100000000"),
        "{msg}"
    );
    let mut d = [0u8; 512];
    uncached(&p)
        .unwrap()
        .read_at(2 * MB as u64, &mut d)
        .unwrap();
    let mut huge = good.clone();
    put64(&mut huge, bat + 8, 6 | u64::MAX << 20);
    let msg = read_err(&w("huge.vhdx", &huge), MB as u64 + 4096, MB / 2);
    assert!(
        msg.contains("BAT entry 1 points at file offset 0xfffffffffff00000"),
        "{msg}"
    );
    let mut head = good.clone();
    put64(&mut head, bat + 8, 6);
    assert!(read_err(&w("head.vhdx", &head), MB as u64, 512).contains("header section"));
    let big = VhdxSpec {
        virtual_size: 64 * MB as u64,
        block_size: 32 * MB as u32,
        logical_sector: 512,
        blocks: vec![],
        bitmap: None,
        data_write_guid: "01010101-0202-0303-0404-050505050505".into(),
        parent: None,
    };
    let mut big = big.build();
    put64(&mut big, bat, 6 | u64::MAX << 20);
    let msg = read_err(&w("big32.vhdx", &big), 3 * MB as u64, 2 * MB);
    assert!(msg.contains("BAT entry 0 points at"), "{msg}");
    // Reserved states; a partially present block in a dynamic disk.
    for (state, what) in [(4u64, "reserved state 4"), (7, "without parent")] {
        let mut s = good.clone();
        put64(&mut s, bat + 16, state | 4 << 20);
        let msg = read_err(&w("state.vhdx", &s), 2 * MB as u64, 512);
        assert!(
            msg.contains(what) && msg.contains("offset 0x200010"),
            "{msg}"
        );
    }
    // Truncated anywhere: an error (or, cut in the last block, a read error), never a panic.
    for cut in [
        100,
        70_000,
        200_000,
        MB + 10,
        2 * MB + 4,
        3 * MB + 1000,
        good.len() - 1,
    ] {
        let p = w("cut.vhdx", &good[..cut]);
        if let Ok(d) = uncached(&p) {
            let mut buf = vec![0u8; d.size() as usize];
            assert!(d.read_at(0, &mut buf).is_err(), "cut at {cut}: read it all");
        }
    }
}

/// Random bytes changed in the headers, region tables, log, BAT, metadata (table, items,
/// parent locator) and sector bitmap of a dynamic disk with a log and of a differencing
/// disk: opening and reading everything must end, with data or with an error.
#[test]
fn seeded_mutations_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut dynamic = plain();
    let page = dynamic[2 * MB..2 * MB + 4096].to_vec();
    let e = log::entry(
        7,
        0,
        dynamic.len() as u64,
        &[log::Update::Page(2 * MB as u64, page)],
    );
    log::place(&mut dynamic, MB, MB, 0, &e);
    log::set_log(&mut dynamic, [0x99; 16], 0, MB as u32, MB as u64);
    write(dir.path(), "parent.vhdx", &plain());
    let mut bitmap = vec![0u8; MB];
    bitmap[..256].fill(0xA5);
    let child = VhdxSpec {
        virtual_size: 4 * MB as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: vec![
            Block {
                index: 0,
                state: 7,
                data: Some(common::pattern(MB, 9)),
            },
            Block {
                index: 2,
                state: 6,
                data: Some(common::pattern(MB, 10)),
            },
        ],
        bitmap: Some(bitmap),
        data_write_guid: "02020202-0202-0303-0404-050505050505".into(),
        parent: Some((
            "01010101-0202-0303-0404-050505050505".into(),
            ".\\parent.vhdx".into(),
        )),
    }
    .build();
    let mut rng = common::Rng(0x5eed_7a11_c0ff_ee00);
    let mut opened = 0;
    for (name, good) in [("dyn", &dynamic), ("diff", &child)] {
        let first = write(dir.path(), &format!("{name}.vhdx"), good);
        assert!(uncached(&first).is_ok(), "{name} before mutation");
        let meta = 3 * MB;
        let hot = [
            0,
            64 * 1024,
            128 * 1024,
            192 * 1024,
            256 * 1024,
            MB,
            MB + 4096,
            2 * MB,
            meta,
            meta + 64 * 1024,
            meta + 64 * 1024 + 64,
            good.len() - MB,
        ];
        let path = dir.path().join(format!("m-{name}.vhdx"));
        for _ in 0..200 {
            let mut m = good.clone();
            for _ in 0..1 + rng.below(6) {
                let base = hot[rng.below(hot.len() as u64) as usize];
                let at = base + rng.below(300) as usize;
                m[at] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                // Reseal what was changed, so that the damage gets past the checksums.
                reseal(&mut m, CURRENT_HEADER, 4096);
                reseal(&mut m, 192 * 1024, 64 * 1024);
            }
            std::fs::write(&path, &m).unwrap();
            if let Ok(d) = uncached(&path) {
                opened += 1;
                let mut buf = vec![0u8; 3 * MB / 2 + 7];
                let mut pos = 0;
                while pos < d.size() {
                    let n = buf.len().min((d.size() - pos) as usize);
                    let _ = d.read_at(pos, &mut buf[..n]);
                    pos += n as u64;
                }
            }
        }
    }
    assert!(opened > 60, "only {opened} of 400 mutated images opened");
}
