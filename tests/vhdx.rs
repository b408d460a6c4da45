//! VHDX containers against outside readers: qemu-img for fixed and dynamic disks and for
//! log replay, libvhdi for differencing chains; damaged files give errors, never panics.

mod common;

use common::vhdx_builder::{add_log, guid_text, Block, LogWrite, VhdxSpec};
use rehost::disk::{self, ReadAt, Subformat};
use std::path::Path;
use std::process::Command;

const MB: usize = 1 << 20;

fn qemu_raw(image: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("qemu.raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "vhdx", "-O", "raw"])
            .arg(image)
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

fn uncached(p: &Path) -> rehost::Result<disk::Disk> {
    disk::open(
        p,
        &disk::OpenOptions {
            cache_blocks: 0,
            map_raw: true,
        },
    )
}

#[test]
fn qemu_made_images_read_back_exactly() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = common::pattern(5 * MB + 3 * 512, 11);
    let raw_path = dir.path().join("d.raw");
    std::fs::write(&raw_path, &raw).unwrap();
    for (opts, sub, block) in [
        ("subformat=fixed", Subformat::Fixed, None),
        (
            "subformat=dynamic,block_size=1M",
            Subformat::Dynamic,
            Some(MB as u32),
        ),
        (
            "subformat=dynamic,block_size=32M",
            Subformat::Dynamic,
            Some(32 * MB as u32),
        ),
        (
            "subformat=dynamic,block_size=1M,log_size=2M",
            Subformat::Dynamic,
            Some(MB as u32),
        ),
    ] {
        let vhdx = dir.path().join("d.vhdx");
        common::run(
            Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "vhdx", "-o", opts])
                .arg(&raw_path)
                .arg(&vhdx),
        );
        let d = disk::open(&vhdx, &Default::default()).unwrap();
        assert_eq!(d.info().format, disk::Format::Vhdx);
        assert_eq!(d.info().subformat, sub, "{opts}");
        assert_eq!(d.info().virtual_size, raw.len() as u64, "{opts}");
        assert_eq!(d.info().logical_sector_size, 512);
        if let Some(b) = block {
            assert_eq!(d.info().block_size, Some(b), "{opts}");
        }
        let ours = common::read_all(&d);
        common::assert_same_bytes(&ours, &raw, &format!("{opts} against the source"));
        common::assert_same_bytes(
            &ours,
            &qemu_raw(&vhdx, dir.path()),
            &format!("{opts} against qemu-img"),
        );
        // Odd pieces across blocks, without the cache.
        let u = uncached(&vhdx).unwrap();
        let mut pos = 0usize;
        let mut step = 333usize;
        while pos < raw.len() {
            let n = step.min(raw.len() - pos);
            let mut b = vec![0u8; n];
            u.read_at(pos as u64, &mut b).unwrap();
            assert_eq!(b, raw[pos..pos + n], "{opts}: {n} bytes at {pos}");
            pos += n;
            step = (step * 5 + 4097) % 900_001 + 1;
        }
    }
}

/// A log entry that remaps block 0 must be replayed for reading, in memory: the file stays
/// as it was, and the content matches what qemu-img reads after it replays the log itself.
#[test]
fn log_is_replayed_in_memory_like_qemu_does_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::pattern(MB, 21);
    let b = common::pattern(MB, 22);
    let spec = VhdxSpec {
        virtual_size: 2 * MB as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: vec![
            Block {
                index: 0,
                state: 6,
                data: Some(a.clone()),
            },
            Block {
                index: 1,
                state: 6,
                data: Some(b.clone()),
            },
        ],
        bitmap: None,
        data_write_guid: "0a0a0a0a-0b0b-0c0c-0d0d-0e0e0e0e0e0e".into(),
        parent: None,
    };
    let mut f = spec.build();
    let path = dir.path().join("clean.vhdx");
    std::fs::write(&path, &f).unwrap();
    let clean = common::read_all(&disk::open(&path, &Default::default()).unwrap());
    assert_eq!(clean[..MB], a[..]);
    // The log rewrites the first BAT page so that block 0 points at block 1's data.
    let bat_at = 2 * MB;
    let mut page = f[bat_at..bat_at + 4096].to_vec();
    let block1 = page[8..16].to_vec();
    page[..8].copy_from_slice(&block1);
    add_log(
        &mut f,
        &[LogWrite {
            offset: bat_at as u64,
            page,
        }],
        1,
    );
    let dirty = dir.path().join("dirty.vhdx");
    std::fs::write(&dirty, &f).unwrap();
    let before = common::sha256_file(&dirty);
    let d = disk::open(&dirty, &Default::default()).unwrap();
    assert!(
        d.info().notes.iter().any(|n| n.contains("log replayed")),
        "{:?}",
        d.info().notes
    );
    let ours = common::read_all(&d);
    assert_eq!(ours[..MB], b[..], "block 0 after replay");
    assert_eq!(ours[MB..], b[..], "block 1");
    assert_eq!(
        common::sha256_file(&dirty),
        before,
        "reading replayed the log into the file"
    );
    if common::have_tool("qemu-img") {
        let copy = dir.path().join("replayed-by-qemu.vhdx");
        std::fs::copy(&dirty, &copy).unwrap();
        // Opening read-write makes qemu replay the log into the file.
        let _ = Command::new("qemu-img")
            .args(["check", "-r", "leaks"])
            .arg(&copy)
            .output()
            .unwrap();
        common::assert_same_bytes(
            &ours,
            &qemu_raw(&copy, dir.path()),
            "replay against qemu-img",
        );
    }
    // The same log with a broken CRC: no valid sequence, so the image is refused.
    let mut broken = f.clone();
    broken[MB + 4096 + 100] ^= 0xFF;
    std::fs::write(&dirty, &broken).unwrap();
    let e = disk::open(&dirty, &Default::default())
        .err()
        .expect("unreplayable log accepted");
    let msg = e.to_string();
    assert!(
        msg.contains("dirty.vhdx: vhdx") && msg.contains("log cannot be replayed"),
        "{msg}"
    );
}

/// A chain base <- mid <- top of crafted differencing disks (sector bitmaps, not-present
/// and partially present blocks), checked against a model and libvhdi; 4 KiB logical sectors.
#[test]
fn differencing_chains_read_the_newest_sectors() {
    for lss in [512u32, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let bs = MB;
        let size = 3 * MB;
        let sectors = bs / lss as usize;
        let mut model = vec![0u8; size];
        let mut parent: Option<(String, String)> = None;
        let names = ["base.vhdx", "mid.vhdx", "top.vhdx"];
        for (level, name) in names.iter().enumerate() {
            let dwg = format!("{:08x}-0000-0000-0000-00000000000{level}", level + 1);
            let mut blocks = Vec::new();
            let mut bitmap = vec![0u8; MB];
            for blk in 0..3usize {
                let data = common::pattern(bs, (lss as usize + level * 10 + blk) as u64);
                if level == 0 {
                    blocks.push(Block {
                        index: blk as u64,
                        state: 6,
                        data: Some(data.clone()),
                    });
                    model[blk * bs..(blk + 1) * bs].copy_from_slice(&data);
                    continue;
                }
                match (blk + level) % 3 {
                    0 => {} // not present: the parent's block shows through
                    1 => {
                        blocks.push(Block {
                            index: blk as u64,
                            state: 6,
                            data: Some(data.clone()),
                        });
                        model[blk * bs..(blk + 1) * bs].copy_from_slice(&data);
                    }
                    _ => {
                        // Partially present: every other run of 8 sectors (whole bitmap bytes).
                        for s in 0..sectors {
                            if (s / 8 + level) % 2 == 0 {
                                let n = blk * sectors + s;
                                bitmap[n / 8] |= 1 << (n % 8);
                                let at = blk * bs + s * lss as usize;
                                model[at..at + lss as usize].copy_from_slice(
                                    &data[s * lss as usize..(s + 1) * lss as usize],
                                );
                            }
                        }
                        blocks.push(Block {
                            index: blk as u64,
                            state: 7,
                            data: Some(data),
                        });
                    }
                }
            }
            let spec = VhdxSpec {
                virtual_size: size as u64,
                block_size: bs as u32,
                logical_sector: lss,
                blocks,
                bitmap: (level > 0).then_some(bitmap),
                data_write_guid: dwg.clone(),
                parent: parent.clone(),
            };
            std::fs::write(dir.path().join(name), spec.build()).unwrap();
            parent = Some((dwg, format!(".\\{name}")));
        }
        let top = dir.path().join("top.vhdx");
        let d = disk::open(&top, &Default::default()).unwrap();
        assert_eq!(d.info().subformat, Subformat::Differencing);
        assert_eq!(d.info().logical_sector_size, lss);
        let depth = std::iter::successors(Some(d.info()), |i| i.parent.as_deref()).count();
        assert_eq!(depth, 3);
        common::assert_same_bytes(
            &common::read_all(&d),
            &model,
            &format!("chain ({lss}-byte sectors) against the model"),
        );
        if lss == 512 && common::have_python_module("pyvhdi") {
            common::assert_same_bytes(
                &common::libvhdi_read(&top),
                &model,
                "libvhdi against the model",
            );
        }
        // Identity: a parent with another DataWriteGuid is refused, naming both.
        let mid = dir.path().join("mid.vhdx");
        let mut bytes = std::fs::read(&mid).unwrap();
        let h = &mut bytes[128 * 1024..128 * 1024 + 4096];
        h[32..48].copy_from_slice(&[0x77; 16]);
        h[4..8].fill(0);
        let c = crc32c::crc32c(h);
        h[4..8].copy_from_slice(&c.to_le_bytes());
        std::fs::write(&mid, &bytes).unwrap();
        let e = disk::open(&top, &Default::default())
            .err()
            .expect("wrong parent accepted");
        assert!(e.to_string().contains(&guid_text(&[0x77; 16])), "{e}");
    }
}

#[test]
fn a_parent_loop_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = VhdxSpec {
        virtual_size: MB as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: vec![],
        bitmap: None,
        data_write_guid: "12121212-3434-5656-7878-909090909090".into(),
        parent: Some((
            "12121212-3434-5656-7878-909090909090".into(),
            ".\\self.vhdx".into(),
        )),
    };
    let p = dir.path().join("self.vhdx");
    std::fs::write(&p, spec.build()).unwrap();
    let e = disk::open(&p, &Default::default())
        .err()
        .expect("loop accepted");
    assert!(e.to_string().contains("loops"), "{e}");
}

fn plain() -> Vec<u8> {
    VhdxSpec {
        virtual_size: 4 * MB as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: vec![Block {
            index: 1,
            state: 6,
            data: Some(common::pattern(MB, 3)),
        }],
        bitmap: None,
        data_write_guid: "01010101-0202-0303-0404-050505050505".into(),
        parent: None,
    }
    .build()
}

#[test]
fn damaged_files_give_errors_that_name_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let good = plain();
    // One bad header: the other is used, with a note. Both bad: refused.
    let mut one = good.clone();
    one[128 * 1024 + 200] ^= 1;
    let d = disk::open(&write("one.vhdx", &one), &Default::default()).unwrap();
    assert!(
        d.info()
            .notes
            .iter()
            .any(|n| n.contains("header is damaged")),
        "{:?}",
        d.info().notes
    );
    let mut both = one.clone();
    both[64 * 1024 + 200] ^= 1;
    let e = disk::open(&write("both.vhdx", &both), &Default::default())
        .err()
        .expect("two bad headers");
    assert!(e.to_string().contains("CRC-32C"), "{e}");
    // Zeroed headers.
    let mut zero = good.clone();
    zero[64 * 1024..192 * 1024].fill(0);
    let e = disk::open(&write("zero.vhdx", &zero), &Default::default())
        .err()
        .expect("zeroed headers");
    assert!(
        e.to_string().contains("zero.vhdx: vhdx at offset 0x"),
        "{e}"
    );
    // Both region tables damaged.
    let mut regions = good.clone();
    regions[192 * 1024 + 40] ^= 1;
    regions[256 * 1024 + 40] ^= 1;
    let e = disk::open(&write("regions.vhdx", &regions), &Default::default())
        .err()
        .expect("bad region tables");
    assert!(e.to_string().contains("region table"), "{e}");
    // A BAT entry past the end of the file: an error naming the entry's offset, when read.
    let mut bat = good.clone();
    bat[2 * MB + 8..2 * MB + 16].copy_from_slice(&(6u64 | (4096u64 << 20)).to_le_bytes());
    let d = uncached(&write("bat.vhdx", &bat)).unwrap();
    let mut buf = [0u8; 512];
    d.read_at(0, &mut buf).unwrap();
    let e = d.read_at(MB as u64, &mut buf).unwrap_err();
    assert!(
        e.to_string().contains("bat.vhdx: vhdx at offset 0x200008")
            && e.to_string().contains("BAT entry 1"),
        "{e}"
    );
    // A block size that is not a power of two.
    let mut bs = good.clone();
    let meta = 3 * MB;
    bs[meta + 64 * 1024..meta + 64 * 1024 + 4].copy_from_slice(&(3 * MB as u32).to_le_bytes());
    let e = disk::open(&write("bs.vhdx", &bs), &Default::default())
        .err()
        .expect("bad block size");
    assert!(e.to_string().contains("block size"), "{e}");
    // Truncated in the middle of the metadata.
    let e = disk::open(
        &write("cut.vhdx", &good[..3 * MB + 1000]),
        &Default::default(),
    )
    .err()
    .expect("truncated");
    assert!(e.to_string().contains("cut.vhdx"), "{e}");
}

#[test]
fn seeded_mutations_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut good = plain();
    // A log too, so that mutations reach the replay code.
    let page = good[2 * MB..2 * MB + 4096].to_vec();
    add_log(
        &mut good,
        &[LogWrite {
            offset: 2 * MB as u64,
            page,
        }],
        7,
    );
    assert!(disk::open(
        &{
            let p = dir.path().join("base.vhdx");
            std::fs::write(&p, &good).unwrap();
            p
        },
        &Default::default()
    )
    .is_ok());
    let mut x = 0xdead_beef_cafe_f00du64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let hot = [
        0usize,
        64 * 1024,
        128 * 1024,
        192 * 1024,
        256 * 1024,
        MB,
        MB + 4096,
        2 * MB,
        3 * MB,
        3 * MB + 64 * 1024,
    ];
    let path = dir.path().join("m.vhdx");
    let mut opened = 0;
    for _ in 0..300 {
        let mut m = good.clone();
        for _ in 0..1 + rnd() % 6 {
            let base = hot[(rnd() % hot.len() as u64) as usize];
            let at = base + (rnd() % 256) as usize;
            m[at] = rnd() as u8;
        }
        std::fs::write(&path, &m).unwrap();
        if let Ok(d) = uncached(&path) {
            opened += 1;
            let mut buf = vec![0u8; 65536];
            let mut pos = 0;
            while pos + 65536 <= d.size().min(8 << 20) {
                let _ = d.read_at(pos, &mut buf);
                pos += 65536;
            }
        }
    }
    assert!(opened > 30, "only {opened} mutated images opened");
}
