//! The images the write tests start from: fixture disks in every container, differencing
//! children (VHD and VHDX) over qemu-made parents, and small disks for the crash tests.

use crate::common::{self, vhdx_builder};
use rehost::disk::{self, ReadAt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MB: usize = 1 << 20;

/// A test image: its path, its qemu-img format name (`None`: qemu cannot read it), and the
/// virtual disk as it reads before any write.
pub struct Image {
    pub path: PathBuf,
    pub qemu: Option<&'static str>,
    pub disk: Vec<u8>,
    /// Block size of the container, where it has blocks.
    pub block: u64,
    /// Whether libvhdi is to read it (differencing images).
    pub libvhdi: bool,
}

impl Image {
    /// Reads an image and takes its virtual disk as the model's starting point.
    pub fn at(path: PathBuf, qemu: Option<&'static str>) -> Image {
        let d = disk::open(&path, &Default::default()).unwrap();
        let block = d.info().block_size.map_or(1 << 20, u64::from);
        let disk = common::read_all(&d);
        Image {
            path,
            qemu,
            disk,
            block,
            libvhdi: true,
        }
    }

    /// The container's file name (for messages).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

/// The MBR fixture disk in container `variant` (a suffix of `common::CONTAINERS`), copied
/// into `dir`.
pub fn fixture(dir: &Path, variant: &str, qemu: &'static str) -> Image {
    let name = format!("mbr.{variant}");
    let dst = dir.join(&name);
    std::fs::copy(common::disk_fixture(&name), &dst).unwrap();
    Image::at(dst, Some(qemu))
}

fn qemu_img(args: &[&str], paths: &[&Path]) {
    let mut c = Command::new("qemu-img");
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    common::run(&mut c);
}

/// Converts `raw` bytes into a `dir/name` image of qemu format `fmt` with options `opts`.
pub fn convert(dir: &Path, raw: &[u8], name: &str, fmt: &str, opts: &str) -> PathBuf {
    let src = dir.join(format!("{name}.src.raw"));
    std::fs::write(&src, raw).unwrap();
    let dst = dir.join(name);
    if fmt == "raw" {
        std::fs::rename(&src, &dst).unwrap();
        return dst;
    }
    qemu_img(
        &["convert", "-f", "raw", "-O", fmt, "-o", opts],
        &[&src, &dst],
    );
    std::fs::remove_file(src).unwrap();
    dst
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn vhd_checksum(b: &[u8], skip: usize) -> u32 {
    !b.iter()
        .enumerate()
        .filter(|(i, _)| !(skip..skip + 4).contains(i))
        .fold(0u32, |s, (_, v)| s.wrapping_add(u32::from(*v)))
}

/// A differencing VHD `child.vhd` over `parent` (a dynamic VHD in the same directory), made
/// from an empty dynamic VHD of qemu's by turning it into a child: disk type 4 in both
/// footers, the parent's unique id and file name in the dynamic header.
pub fn vhd_child(parent: &Path) -> PathBuf {
    let dir = parent.parent().unwrap();
    let child = dir.join("child.vhd");
    let size = disk::open(parent, &Default::default()).unwrap().size();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "subformat=dynamic,force_size=on",
        ],
        &[&child, Path::new(&size.to_string())],
    );
    let pf = std::fs::read(parent).unwrap();
    let parent_id = pf[pf.len() - 512 + 68..pf.len() - 512 + 84].to_vec();
    let mut f = std::fs::read(&child).unwrap();
    let n = f.len();
    for at in [0, n - 512] {
        let footer = &mut f[at..at + 512];
        footer[60..64].copy_from_slice(&be32(4));
        let c = vhd_checksum(footer, 64);
        footer[64..68].copy_from_slice(&be32(c));
    }
    let h = &mut f[512..1536];
    h[40..56].copy_from_slice(&parent_id);
    let name = parent.file_name().unwrap().to_string_lossy();
    for (i, u) in name.encode_utf16().enumerate() {
        h[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
    }
    let c = vhd_checksum(h, 36);
    h[36..40].copy_from_slice(&be32(c));
    std::fs::write(&child, f).unwrap();
    child
}

/// A differencing VHDX `child.vhdx` over `parent` (a dynamic VHDX with 1 MiB blocks in the
/// same directory): block 0 fully present, block 1 partially present (every third sector),
/// block 3 zero, the rest not present.
pub fn vhdx_child(parent: &Path) -> PathBuf {
    let dir = parent.parent().unwrap();
    let p = disk::open(parent, &Default::default()).unwrap();
    let dwg = p.info().data_write_guid.clone().unwrap();
    let size = p.size();
    let blocks = size.div_ceil(MB as u64);
    let chunk_ratio = (1u64 << 23) * 512 / MB as u64;
    let mut bitmap = vec![0u8; (chunk_ratio * (MB as u64 / 512) / 8) as usize];
    for s in (MB / 512..2 * MB / 512).step_by(3) {
        bitmap[s / 8] |= 1 << (s % 8);
    }
    let spec = vhdx_builder::VhdxSpec {
        virtual_size: size,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: vec![
            vhdx_builder::Block {
                index: 0,
                state: 6,
                data: Some(common::pattern(MB, 71)),
            },
            vhdx_builder::Block {
                index: 1,
                state: 7,
                data: Some(common::pattern(MB, 72)),
            },
            vhdx_builder::Block {
                index: 3.min(blocks - 1),
                state: 2,
                data: None,
            },
        ],
        bitmap: Some(bitmap),
        data_write_guid: "c0c0c0c0-1111-2222-3333-444444444444".into(),
        parent: Some((
            dwg,
            format!(".\\{}", parent.file_name().unwrap().to_string_lossy()),
        )),
    };
    let child = dir.join("child.vhdx");
    std::fs::write(&child, spec.build()).unwrap();
    child
}

/// A dynamic VHDX `parent.vhdx` and a differencing `child.vhdx` over it in `dir`, both with
/// 4096-byte logical sectors (which no tool here makes): the parent's six 1 MiB blocks
/// fully present; the child's block 2 fully present, block 4 partially present (every
/// other sector), the rest not present. Returns the child.
pub fn vhdx_4k_pair(dir: &Path) -> PathBuf {
    let blocks = 6u64;
    let parent = vhdx_builder::VhdxSpec {
        virtual_size: blocks * MB as u64,
        block_size: MB as u32,
        logical_sector: 4096,
        blocks: (0..blocks)
            .map(|i| vhdx_builder::Block {
                index: i,
                state: 6,
                data: Some(common::pattern(MB, 80 + i)),
            })
            .collect(),
        bitmap: None,
        data_write_guid: "dddddddd-4444-4444-4444-000000000001".into(),
        parent: None,
    };
    std::fs::write(dir.join("parent.vhdx"), parent.build()).unwrap();
    let chunk_ratio = (1u64 << 23) * 4096 / MB as u64;
    let per_block = MB / 4096;
    let mut bitmap = vec![0u8; (chunk_ratio * per_block as u64 / 8) as usize];
    for s in (4 * per_block..5 * per_block).step_by(2) {
        bitmap[s / 8] |= 1 << (s % 8);
    }
    let child = vhdx_builder::VhdxSpec {
        virtual_size: blocks * MB as u64,
        block_size: MB as u32,
        logical_sector: 4096,
        blocks: vec![
            vhdx_builder::Block {
                index: 2,
                state: 6,
                data: Some(common::pattern(MB, 90)),
            },
            vhdx_builder::Block {
                index: 4,
                state: 7,
                data: Some(common::pattern(MB, 91)),
            },
        ],
        bitmap: Some(bitmap),
        data_write_guid: "dddddddd-4444-4444-4444-000000000002".into(),
        parent: Some((parent.data_write_guid.clone(), ".\\parent.vhdx".into())),
    };
    let path = dir.join("child.vhdx");
    std::fs::write(&path, child.build()).unwrap();
    path
}

/// The whole virtual disk of `image` as qemu-img converts it to raw.
pub fn qemu_raw(image: &Path, fmt: &str) -> Vec<u8> {
    let out = image.with_extension("qemu.raw");
    qemu_img(&["convert", "-f", fmt, "-O", "raw"], &[image, &out]);
    let b = std::fs::read(&out).unwrap();
    std::fs::remove_file(out).unwrap();
    b
}

/// `qemu-img check` of a VHDX passes; for VHD, which qemu cannot check, a structural check
/// of our own (`vhd_structure`) stands in, and says so.
pub fn check_container(image: &Path, fmt: &str) {
    if fmt == "vpc" {
        let out = Command::new("qemu-img")
            .args(["check", "-f", "vpc"])
            .arg(image)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("does not support checks"),
            "qemu-img learnt to check VHD: use it ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        vhd_structure(image);
        return;
    }
    if fmt != "raw" {
        let out = Command::new("qemu-img")
            .args(["check", "-f", fmt])
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "qemu-img check {}: {}{}",
            image.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A dynamic or differencing VHD is well formed: the footer at the end equals its copy at
/// offset 0 (when the image is dynamic), every BAT entry points inside the file before the
/// footer, sector aligned, and no two blocks overlap.
pub fn vhd_structure(image: &Path) {
    let f = std::fs::read(image).unwrap();
    let n = f.len();
    let footer = &f[n - 512..];
    assert_eq!(&footer[..8], b"conectix", "no footer at the end");
    let kind = u32::from_be_bytes(footer[60..64].try_into().unwrap());
    if kind == 2 {
        return;
    }
    assert_eq!(
        &f[..512],
        footer,
        "the footer's copy at offset 0 differs from the footer"
    );
    let h = &f[512..1536];
    let table = u64::from_be_bytes(h[16..24].try_into().unwrap()) as usize;
    let entries = u32::from_be_bytes(h[28..32].try_into().unwrap()) as usize;
    let block = u32::from_be_bytes(h[32..36].try_into().unwrap()) as usize;
    let bitmap = (block / 512).div_ceil(8).div_ceil(512) * 512;
    let mut spans: Vec<(usize, usize)> = (0..entries)
        .map(|i| u32::from_be_bytes(f[table + 4 * i..table + 4 * i + 4].try_into().unwrap()))
        .filter(|e| *e != u32::MAX)
        .map(|e| (e as usize * 512, e as usize * 512 + bitmap + block))
        .collect();
    spans.sort();
    for (s, e) in &spans {
        assert!(
            *s >= table + entries * 4,
            "a block inside the header or BAT"
        );
        assert!(
            *e <= n - 512,
            "block {s:#x}..{e:#x} reaches into the footer ({:#x})",
            n - 512
        );
    }
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "blocks at {:#x} and {:#x} overlap",
            w[0].0,
            w[1].0
        );
    }
}
