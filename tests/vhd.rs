//! VHD containers against outside readers: qemu-img for fixed and dynamic disks, libvhdi
//! for differencing chains; damaged files give errors, never panics.

mod common;

use rehost::disk::{self, ReadAt, Subformat};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn qemu_raw(image: &Path, format: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("qemu.raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", format, "-O", "raw"])
            .arg(image)
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

/// Reads in odd-sized pieces at odd offsets, to cross block and sector boundaries.
fn read_in_pieces(dev: &dyn ReadAt) -> Vec<u8> {
    let mut out = vec![0u8; dev.size() as usize];
    let mut pos = 0usize;
    let mut step = 1usize;
    while pos < out.len() {
        let n = step.min(out.len() - pos);
        dev.read_at(pos as u64, &mut out[pos..pos + n]).unwrap();
        pos += n;
        step = (step * 7 + 333) % 700_001 + 1;
    }
    out
}

#[test]
fn fixed_and_dynamic_match_qemu() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tmp();
    let raw = common::pattern(5 * 1024 * 1024 + 3 * 512, 7);
    let raw_path = dir.path().join("d.raw");
    std::fs::write(&raw_path, &raw).unwrap();
    for sub in ["fixed", "dynamic"] {
        let vhd = dir.path().join(format!("{sub}.vhd"));
        common::run(
            Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "vpc", "-o"])
                .arg(format!("subformat={sub},force_size=on"))
                .arg(&raw_path)
                .arg(&vhd),
        );
        let d = disk::open(&vhd, &Default::default()).unwrap();
        assert_eq!(d.info().format, disk::Format::Vhd);
        assert_eq!(
            d.info().virtual_size,
            raw.len() as u64,
            "{sub}: current size"
        );
        assert_eq!(
            d.info().subformat,
            if sub == "fixed" {
                Subformat::Fixed
            } else {
                Subformat::Dynamic
            }
        );
        let ours = common::read_all(&d);
        common::assert_same_bytes(&ours, &raw, &format!("{sub} VHD against the raw source"));
        common::assert_same_bytes(
            &ours,
            &qemu_raw(&vhd, "vpc", dir.path()),
            &format!("{sub} VHD against qemu-img"),
        );
        let uncached = disk::open(
            &vhd,
            &disk::OpenOptions {
                cache_blocks: 0,
                map_raw: true,
                ..Default::default()
            },
        )
        .unwrap();
        common::assert_same_bytes(
            &read_in_pieces(&uncached),
            &raw,
            &format!("{sub} VHD read in pieces"),
        );
    }
}

#[test]
fn real_differencing_pair_matches_libvhdi() {
    let dir = tmp();
    let parent = dir.path().join("image.vhd");
    let child = dir.path().join("image-differential.vhd");
    std::fs::copy(common::fixture("vhd/image.vhd.zst"), &parent).unwrap();
    std::fs::copy(common::fixture("vhd/image-differential.vhd.zst"), &child).unwrap();
    let d = disk::open(&child, &Default::default()).unwrap();
    assert_eq!(d.info().subformat, Subformat::Differencing);
    let p = d.info().parent.as_ref().expect("parent info");
    assert_eq!(p.subformat, Subformat::Dynamic);
    assert!(p.path.ends_with("image.vhd"), "{}", p.path);
    assert_eq!(d.info().virtual_size, 104_448);
    let ours = common::read_all(&d);
    if common::have_python_module("pyvhdi") {
        common::assert_same_bytes(
            &ours,
            &common::libvhdi_read(&child),
            "differencing VHD against libvhdi",
        );
        common::assert_same_bytes(
            &common::read_all(&disk::open(&parent, &Default::default()).unwrap()),
            &common::libvhdi_read(&parent),
            "parent against libvhdi",
        );
    }
}

/// A small VHD writer for building differencing chains the tools cannot make.
struct Builder {
    size: u64,
    block: u32,
    /// Block index -> (sector bitmap, data).
    blocks: Vec<(u32, Vec<u8>, Vec<u8>)>,
    id: [u8; 16],
    parent: Option<([u8; 16], String)>,
}

fn checksum(b: &[u8]) -> u32 {
    !b.iter().fold(0u32, |s, v| s.wrapping_add(*v as u32))
}

impl Builder {
    fn footer(&self, data_offset: u64) -> Vec<u8> {
        let mut f = vec![0u8; 512];
        f[..8].copy_from_slice(b"conectix");
        f[8..12].copy_from_slice(&2u32.to_be_bytes());
        f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        f[16..24].copy_from_slice(&data_offset.to_be_bytes());
        f[28..32].copy_from_slice(b"test");
        f[40..48].copy_from_slice(&self.size.to_be_bytes());
        f[48..56].copy_from_slice(&self.size.to_be_bytes());
        let kind: u32 = if self.parent.is_some() { 4 } else { 3 };
        f[60..64].copy_from_slice(&kind.to_be_bytes());
        f[68..84].copy_from_slice(&self.id);
        let c = checksum(&f);
        f[64..68].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn build(&self) -> Vec<u8> {
        let entries = self.size.div_ceil(self.block as u64) as u32;
        let bitmap_len = ((self.block / 512) as usize).div_ceil(8).div_ceil(512) * 512;
        let table_at = 512 + 1024u64;
        let locator_at = table_at + (entries as u64 * 4).div_ceil(512) * 512;
        let mut out = self.footer(512);
        let mut h = vec![0u8; 1024];
        h[..8].copy_from_slice(b"cxsparse");
        h[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        h[16..24].copy_from_slice(&table_at.to_be_bytes());
        h[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        h[28..32].copy_from_slice(&entries.to_be_bytes());
        h[32..36].copy_from_slice(&self.block.to_be_bytes());
        let mut locator = Vec::new();
        if let Some((pid, path)) = &self.parent {
            h[40..56].copy_from_slice(pid);
            let name = path.rsplit('\\').next().unwrap_or(path);
            for (i, u) in name.encode_utf16().enumerate().take(256) {
                h[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
            }
            locator = path.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            h[576..580].copy_from_slice(b"W2ru");
            h[580..584].copy_from_slice(&512u32.to_be_bytes());
            h[584..588].copy_from_slice(&(locator.len() as u32).to_be_bytes());
            h[592..600].copy_from_slice(&locator_at.to_be_bytes());
        }
        let c = checksum(&h);
        h[36..40].copy_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&h);
        let mut bat = vec![0xFFu8; entries as usize * 4];
        let mut blocks = Vec::new();
        let mut next = locator_at + 512;
        for (idx, bitmap, data) in &self.blocks {
            let at = (next / 512) as u32;
            bat[*idx as usize * 4..*idx as usize * 4 + 4].copy_from_slice(&at.to_be_bytes());
            let mut b = bitmap.clone();
            b.resize(bitmap_len, 0);
            b.extend_from_slice(data);
            next += b.len() as u64;
            blocks.push(b);
        }
        out.extend_from_slice(&bat);
        out.resize(locator_at as usize, 0);
        locator.resize(512, 0);
        out.extend_from_slice(&locator);
        for b in blocks {
            out.extend_from_slice(&b);
        }
        out.extend_from_slice(&self.footer(512));
        out
    }
}

/// Builds base <- mid <- top in `dir`, each level overriding some sectors (single sectors
/// when `fine`, whole bitmap bytes of 8 sectors otherwise); returns the paths and a model of
/// the flattened disk.
fn build_chain(dir: &Path, fine: bool) -> (Vec<PathBuf>, Vec<u8>) {
    let size = 3 * 8192u64; // three blocks of 8 KiB (16 sectors each)
    let block = 8192u32;
    let mut model = vec![0u8; size as usize];
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut parent: Option<([u8; 16], String)> = None;
    for (level, name) in ["base.vhd", "mid.vhd", "top.vhd"].iter().enumerate() {
        let mut blocks = Vec::new();
        for b in 0..3u32 {
            if (b as usize + level) % 3 == 2 {
                continue; // this block is not allocated at this level
            }
            let mut bitmap = vec![0u8; 2];
            let data = common::pattern(block as usize, (level * 10 + b as usize) as u64 + 1);
            for s in 0..16u32 {
                let take = if fine {
                    (s + level as u32 + b) % 3 == 0
                } else {
                    (s / 8 + level as u32 + b) % 2 == 0
                };
                if level == 0 || take {
                    bitmap[(s / 8) as usize] |= 0x80 >> (s % 8);
                    let at = (b * block + s * 512) as usize;
                    model[at..at + 512]
                        .copy_from_slice(&data[(s * 512) as usize..(s * 512 + 512) as usize]);
                }
            }
            blocks.push((b, bitmap, data));
        }
        let id = [level as u8 + 1; 16];
        let bytes = Builder {
            size,
            block,
            blocks,
            id,
            parent: parent.clone(),
        }
        .build();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.push(path);
        parent = Some((id, format!(".\\{name}")));
    }
    (paths, model)
}

/// Reads through a three-level chain and checks every byte against a model of the flattened
/// disk, and against libvhdi where libvhdi reads bitmaps right: whole bytes of the bitmap
/// (8 sectors). For single-sector runs libvhdi returns sectors of the child whose bits are
/// clear (seen with libvhdi 20260901: bitmap 0x10 reads sectors 3 to 5 from the child);
/// there the model alone is the reference.
#[test]
fn chain_of_three_reads_the_newest_sector() {
    let dir = tmp();
    let size = 3 * 8192u64;
    let block = 8192u32;
    let coarse = dir.path().join("coarse");
    std::fs::create_dir(&coarse).unwrap();
    let (paths, model) = build_chain(&coarse, false);
    let d = disk::open(paths.last().unwrap(), &Default::default()).unwrap();
    common::assert_same_bytes(
        &common::read_all(&d),
        &model,
        "coarse chain against the model",
    );
    if common::have_python_module("pyvhdi") {
        let theirs = common::libvhdi_read(paths.last().unwrap());
        common::assert_same_bytes(&theirs, &model, "libvhdi against the model");
    }
    let (paths, model) = build_chain(dir.path(), true);
    let top = paths.last().unwrap();
    let d = disk::open(top, &Default::default()).unwrap();
    assert!(d.info().notes.is_empty(), "{:?}", d.info().notes);
    let chain_depth = std::iter::successors(Some(d.info()), |i| i.parent.as_deref()).count();
    assert_eq!(chain_depth, 3);
    common::assert_same_bytes(
        &common::read_all(&d),
        &model,
        "three-level chain against the model",
    );
    common::assert_same_bytes(&read_in_pieces(&d), &model, "three-level chain in pieces");
    // The wrong parent: mid.vhd replaced by a disk with another id.
    let impostor = Builder {
        size,
        block,
        blocks: Vec::new(),
        id: [9; 16],
        parent: Some(([1; 16], ".\\base.vhd".into())),
    };
    std::fs::write(&paths[1], impostor.build()).unwrap();
    let e = disk::open(top, &Default::default())
        .err()
        .expect("wrong parent accepted");
    let msg = e.to_string();
    assert!(
        msg.contains("top.vhd: vhd") && msg.contains("09090909-0909"),
        "{msg}"
    );

    // A loop: a child that names itself as its parent.
    let selfish = Builder {
        size,
        block,
        blocks: Vec::new(),
        id: [5; 16],
        parent: Some(([5; 16], ".\\loop.vhd".into())),
    };
    let loop_path = dir.path().join("loop.vhd");
    std::fs::write(&loop_path, selfish.build()).unwrap();
    let e = disk::open(&loop_path, &Default::default())
        .err()
        .expect("loop accepted");
    assert!(e.to_string().contains("loops"), "{e}");
}

#[test]
fn damaged_files_give_errors_that_name_the_offset() {
    if common::bounded::reran_in_child("damaged_files_give_errors_that_name_the_offset") {
        return;
    }
    let dir = tmp();
    let size = 4 * 8192u64;
    let good = Builder {
        size,
        block: 8192,
        blocks: vec![(1, vec![0xFF, 0xFF], common::pattern(8192, 3))],
        id: [1; 16],
        parent: None,
    }
    .build();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // A BAT entry past the end of the file: the error names the entry's offset.
    let mut bad = good.clone();
    bad[512 + 1024 + 4..512 + 1024 + 8].copy_from_slice(&0x00FF_0000u32.to_be_bytes());
    let p = write("bat.vhd", &bad);
    let d = disk::open(
        &p,
        &disk::OpenOptions {
            cache_blocks: 0,
            map_raw: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let e = d.read_at(8192, &mut buf).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("bat.vhd: vhd at offset 0x604") && msg.contains("BAT entry 1"),
        "{msg}"
    );
    // Zeroed footers, the dynamic header left: a damaged VHD, not a raw disk of no volumes.
    let mut zeroed = good.clone();
    let n = zeroed.len();
    zeroed[..512].fill(0);
    zeroed[n - 512..].fill(0);
    let p = write("zeroed.vhd", &zeroed);
    let e = disk::open(&p, &Default::default())
        .err()
        .expect("zeroed footers accepted");
    assert!(
        e.to_string()
            .contains("vhd at offset 0x200: a damaged dynamic"),
        "{e}"
    );
    // And the header zeroed too: nothing says VHD any more (read as raw).
    zeroed[512..1024].fill(0);
    let p = write("blank.vhd", &zeroed);
    assert_eq!(
        disk::open(&p, &Default::default()).unwrap().info().format,
        disk::Format::Raw
    );
    // Both footers with a broken cookie-less header: a clear error.
    let mut nohdr = good.clone();
    nohdr[512..520].fill(0);
    let p = write("nohdr.vhd", &nohdr);
    let e = disk::open(&p, &Default::default())
        .err()
        .expect("no header accepted");
    assert!(e.to_string().contains("cxsparse"), "{e}");
    // A fixed VHD cut short.
    let mut fixed = vec![0u8; 65536];
    let mut f = Builder {
        size: 65536,
        block: 8192,
        blocks: vec![],
        id: [2; 16],
        parent: None,
    }
    .footer(u64::MAX);
    f[60..64].copy_from_slice(&2u32.to_be_bytes());
    f[64..68].fill(0);
    let c = checksum(&f);
    f[64..68].copy_from_slice(&c.to_be_bytes());
    fixed.extend_from_slice(&f);
    let p = write("cut.vhd", &fixed[4096..]);
    let e = disk::open(&p, &Default::default())
        .err()
        .expect("truncated fixed VHD accepted");
    assert!(e.to_string().contains("truncated"), "{e}");
    // Block size and table size that do not fit.
    let mut huge = good.clone();
    huge[512 + 32..512 + 36].copy_from_slice(&(1u32 << 30).to_be_bytes());
    let p = write("block.vhd", &huge);
    assert!(disk::open(&p, &Default::default()).is_err());
    let mut table = good.clone();
    table[512 + 28..512 + 32].copy_from_slice(&u32::MAX.to_be_bytes());
    let p = write("table.vhd", &table);
    let e = disk::open(&p, &Default::default())
        .err()
        .expect("huge table accepted");
    assert!(e.to_string().contains("past the end of the file"), "{e}");
}

#[test]
fn seeded_mutations_never_panic() {
    if common::bounded::reran_in_child("seeded_mutations_never_panic") {
        return;
    }
    let dir = tmp();
    let good = Builder {
        size: 4 * 8192,
        block: 8192,
        blocks: vec![
            (0, vec![0xF0, 0x0F], common::pattern(8192, 5)),
            (3, vec![0xFF, 0xFF], common::pattern(8192, 6)),
        ],
        id: [3; 16],
        parent: None,
    }
    .build();
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let path = dir.path().join("m.vhd");
    let mut opened = 0;
    for _ in 0..400 {
        let mut m = good.clone();
        for _ in 0..1 + rnd() % 8 {
            // Mostly the metadata: footers, header, BAT, bitmaps.
            let at = match rnd() % 3 {
                0 => (rnd() % 2048) as usize,
                1 => m.len() - 1 - (rnd() % 512) as usize,
                _ => (rnd() % m.len() as u64) as usize,
            };
            m[at] = rnd() as u8;
        }
        std::fs::write(&path, &m).unwrap();
        if let Ok(d) = disk::open(
            &path,
            &disk::OpenOptions {
                cache_blocks: 0,
                map_raw: true,
                ..Default::default()
            },
        ) {
            opened += 1;
            let mut buf = vec![0u8; 4096];
            let mut pos = 0;
            while pos + 4096 <= d.size().min(1 << 24) {
                let _ = d.read_at(pos, &mut buf);
                pos += 4096;
            }
        }
    }
    assert!(opened > 100, "only {opened} mutated images opened");
}
