//! Differencing chains: crafted children (not-present, fully and partially present blocks,
//! sector bitmaps) over crafted and qemu-made parents, checked against a model and
//! libvhdi; parent identity, the order in which the locator's paths are tried, loops and
//! chains that are too deep.

use super::*;
use crate::common;
use uuid::Uuid;

const LOCATOR_ITEM: &str = "a8d35f2d-b30b-454d-abf7-d3d84834ab0c";
const METADATA_REGION: &str = "8b7ca206-4790-4b9a-b8fe-575f050f886e";

fn guid_at(b: &[u8], o: usize) -> Uuid {
    Uuid::from_bytes_le(b[o..o + 16].try_into().unwrap())
}

/// A differencing disk of `size` bytes whose parent has DataWriteGuid `linkage` at `rel`.
fn child(size: usize, dwg: &str, linkage: &str, rel: &str, blocks: Vec<Block>) -> Vec<u8> {
    VhdxSpec {
        virtual_size: size as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks,
        bitmap: None,
        data_write_guid: dwg.into(),
        parent: Some((linkage.into(), rel.into())),
    }
    .build()
}

/// Replaces the parent locator of a built differencing disk by `pairs`.
fn set_locator(f: &mut [u8], pairs: &[(&str, &str)]) {
    let meta = (0..2047)
        .map(|i| 192 * 1024 + 16 + 32 * i)
        .find(|&o| guid_at(f, o).to_string() == METADATA_REGION)
        .map(|o| u64_at(f, o + 16) as usize)
        .unwrap();
    let entry = (0..u16::from_le_bytes([f[meta + 10], f[meta + 11]]) as usize)
        .map(|i| meta + 32 + 32 * i)
        .find(|&o| guid_at(f, o).to_string() == LOCATOR_ITEM)
        .unwrap();
    let mut v = vec![0u8; 20 + 12 * pairs.len()];
    let kind = Uuid::parse_str("b04aefb7-d19e-4a81-b789-25b8e9445913").unwrap();
    v[..16].copy_from_slice(&kind.to_bytes_le());
    v[18..20].copy_from_slice(&(pairs.len() as u16).to_le_bytes());
    for (i, (k, val)) in pairs.iter().enumerate() {
        let kb: Vec<u8> = k.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let vb: Vec<u8> = val.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let o = 20 + 12 * i;
        let (ko, vo) = (v.len(), v.len() + kb.len());
        put32(&mut v, o, ko as u32);
        put32(&mut v, o + 4, vo as u32);
        v[o + 8..o + 10].copy_from_slice(&(kb.len() as u16).to_le_bytes());
        v[o + 10..o + 12].copy_from_slice(&(vb.len() as u16).to_le_bytes());
        v.extend_from_slice(&kb);
        v.extend_from_slice(&vb);
    }
    let at = 512 * 1024;
    f[meta + at..meta + at + v.len()].copy_from_slice(&v);
    put32(f, entry + 16, at as u32);
    put32(f, entry + 20, v.len() as u32);
}

/// A chain base <- mid <- top (sector bitmaps, not-present and partially present blocks),
/// with 512 and 4096-byte logical sectors, against a model and libvhdi.
#[test]
fn chains_read_the_newest_sectors() {
    for lss in [512u32, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let (bs, size) = (MB, 3 * MB);
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
                let whole = |blocks: &mut Vec<Block>, model: &mut Vec<u8>| {
                    model[blk * bs..(blk + 1) * bs].copy_from_slice(&data);
                    blocks.push(Block {
                        index: blk as u64,
                        state: 6,
                        data: Some(data.clone()),
                    });
                };
                if level == 0 {
                    whole(&mut blocks, &mut model);
                    continue;
                }
                match (blk + level) % 3 {
                    0 => {} // not present: the parent shows through
                    1 => whole(&mut blocks, &mut model),
                    _ => {
                        // Partially present: runs of sectors of changing lengths.
                        for s in 0..sectors {
                            if (s / (level + 2) + level) % 2 == 0 {
                                let n = blk * sectors + s;
                                bitmap[n / 8] |= 1 << (n % 8);
                                let at = blk * bs + s * lss as usize;
                                let l = lss as usize;
                                model[at..at + l].copy_from_slice(&data[s * l..(s + 1) * l]);
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
        let info = d.info();
        assert_eq!(info.subformat, Subformat::Differencing);
        assert_eq!(info.logical_sector_size, lss);
        assert_eq!(info.physical_sector_size, 4096);
        assert_eq!(info.block_size, Some(MB as u32));
        assert_eq!(
            info.data_write_guid.as_deref(),
            Some("00000003-0000-0000-0000-000000000002")
        );
        let chain: Vec<_> = std::iter::successors(Some(info), |i| i.parent.as_deref()).collect();
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[2].subformat, Subformat::Dynamic);
        let what = format!("chain with {lss}-byte sectors");
        common::assert_same_bytes(&common::read_all(&d), &model, &what);
        let u = uncached(&top).unwrap();
        common::assert_same_bytes(&read_in_odd_pieces(&u), &model, &what);
        if lss == 512 && common::have_python_module("pyvhdi") {
            common::assert_same_bytes(&common::libvhdi_read(&top), &model, "libvhdi");
            let (id, _, _, parent) = libvhdi_facts(&top);
            assert_eq!(info.data_write_guid.as_deref(), Some(id.as_str()));
            assert_eq!(chain[1].data_write_guid.as_deref(), Some(parent.as_str()));
        }
        // Another DataWriteGuid in the parent: refused, naming both GUIDs.
        let mid = dir.path().join("mid.vhdx");
        let mut bytes = std::fs::read(&mid).unwrap();
        bytes[CURRENT_HEADER + 32..CURRENT_HEADER + 48].copy_from_slice(&[0x77; 16]);
        reseal(&mut bytes, CURRENT_HEADER, 4096);
        std::fs::write(&mid, &bytes).unwrap();
        let e = disk::open(&top, &Default::default())
            .err()
            .expect("wrong parent");
        let msg = e.to_string();
        assert!(
            msg.contains("77777777-7777-7777-7777-777777777777")
                && msg.contains("00000002-0000-0000-0000-000000000001")
                && msg.starts_with(&format!("{}: vhdx", top.display())),
            "{msg}"
        );
    }
}

/// A crafted child over a dynamic parent made by qemu-img: the child's blocks where it has
/// them, qemu's content elsewhere.
#[test]
fn a_child_of_a_qemu_made_parent() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = common::pattern(4 * MB, 100);
    let raw_path = write(dir.path(), "p.raw", &raw);
    let parent = dir.path().join("parent.vhdx");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vhdx", "-o"])
            .arg("subformat=dynamic,block_size=1M")
            .arg(&raw_path)
            .arg(&parent),
    );
    let dwg = disk::open(&parent, &Default::default())
        .unwrap()
        .info()
        .data_write_guid
        .clone()
        .unwrap();
    let mine = common::pattern(MB, 101);
    let f = child(
        4 * MB,
        "c0c0c0c0-0000-0000-0000-000000000000",
        &dwg,
        ".\\parent.vhdx",
        vec![Block {
            index: 2,
            state: 6,
            data: Some(mine.clone()),
        }],
    );
    let p = write(dir.path(), "child.vhdx", &f);
    let mut model = raw.clone();
    model[2 * MB..3 * MB].copy_from_slice(&mine);
    let d = disk::open(&p, &Default::default()).unwrap();
    common::assert_same_bytes(&common::read_all(&d), &model, "child of a qemu parent");
}

/// The locator's paths are tried in the order relative, absolute, volume; a candidate with
/// another identity is passed over; parent_linkage2 is accepted. Three parents share one
/// DataWriteGuid with different contents, so the content read tells which was taken.
#[test]
fn the_parent_is_found_by_path_and_identity() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let (right_dwg, wrong_dwg) = (
        "aaaaaaaa-0000-0000-0000-000000000001",
        "bbbbbbbb-0000-0000-0000-000000000002",
    );
    let base = |dwg: &str, seed: u64| {
        VhdxSpec {
            virtual_size: 2 * MB as u64,
            block_size: MB as u32,
            logical_sector: 512,
            blocks: vec![Block {
                index: 0,
                state: 6,
                data: Some(common::pattern(MB, seed)),
            }],
            bitmap: None,
            data_write_guid: dwg.into(),
            parent: None,
        }
        .build()
    };
    write(&sub, "right.vhdx", &base(right_dwg, 1));
    write(dir.path(), "twin.vhdx", &base(right_dwg, 3));
    write(dir.path(), "right2.vhdx", &base(right_dwg, 4));
    write(dir.path(), "wrong.vhdx", &base(wrong_dwg, 2));
    let linkage = format!("{{{right_dwg}}}");
    let (rel, abs, vol) = (
        ("relative_path", ".\\sub\\right.vhdx"),
        ("absolute_win32_path", "C:\\VMs\\twin.vhdx"),
        ("volume_path", "\\\\?\\Volume{1234}\\right2.vhdx"),
    );
    let link = ("parent_linkage", linkage.as_str());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<u64>);
    let cases: Vec<Case> = vec![
        ("relative-first", vec![vol, abs, link, rel], Some(1)),
        (
            "absolute-second",
            vec![vol, abs, link, ("relative_path", "gone\\x.vhdx")],
            Some(3),
        ),
        (
            "past-a-stranger",
            vec![link, ("relative_path", ".\\wrong.vhdx"), vol],
            Some(4),
        ),
        (
            "linkage2",
            vec![
                ("parent_linkage", "{00000000-1111-2222-3333-444444444444}"),
                ("parent_linkage2", &linkage),
                rel,
            ],
            Some(1),
        ),
        (
            "stranger-only",
            vec![link, ("relative_path", "wrong.vhdx")],
            None,
        ),
    ];
    for (name, pairs, seed) in cases {
        let mut f = child(
            2 * MB,
            "cccccccc-0000-0000-0000-000000000003",
            right_dwg,
            "x",
            vec![],
        );
        set_locator(&mut f, &pairs);
        let p = write(dir.path(), &format!("{name}.vhdx"), &f);
        match (disk::open(&p, &Default::default()), seed) {
            (Ok(d), Some(seed)) => {
                let data = common::read_all(&d);
                assert!(
                    data[..MB] == common::pattern(MB, seed)[..],
                    "{name}: wrong parent"
                );
                assert!(data[MB..].iter().all(|&b| b == 0), "{name}");
            }
            (Err(e), None) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(wrong_dwg) && msg.contains(right_dwg),
                    "{name}: {msg}"
                );
            }
            (Ok(_), None) => panic!("{name}: a parent with another identity was taken"),
            (Err(e), Some(_)) => panic!("{name}: {e}"),
        }
    }
    // No candidate exists at all: not found, naming what was looked for.
    let mut f = child(
        2 * MB,
        "cccccccc-0000-0000-0000-000000000004",
        right_dwg,
        "x",
        vec![],
    );
    set_locator(&mut f, &[link, ("relative_path", "nowhere.vhdx")]);
    let e = disk::open(&write(dir.path(), "orphan.vhdx", &f), &Default::default())
        .err()
        .expect("orphan opened");
    assert!(e.to_string().contains("nowhere.vhdx"), "{e}");
}

#[test]
fn loops_and_deep_chains_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = |i: usize| format!("{i:08x}-0000-0000-0000-000000000000");
    // A disk that is its own parent; two disks that are each other's parent.
    let own = child(MB, &g(1), &g(1), ".\\self.vhdx", vec![]);
    let e = disk::open(&write(dir.path(), "self.vhdx", &own), &Default::default())
        .err()
        .expect("self loop");
    assert!(e.to_string().contains("loops"), "{e}");
    write(
        dir.path(),
        "a.vhdx",
        &child(MB, &g(2), &g(3), ".\\b.vhdx", vec![]),
    );
    write(
        dir.path(),
        "b.vhdx",
        &child(MB, &g(3), &g(2), ".\\a.vhdx", vec![]),
    );
    let e = disk::open(&dir.path().join("a.vhdx"), &Default::default())
        .err()
        .expect("two-disk loop");
    assert!(e.to_string().contains("loops"), "{e}");
    // 70 disks in a chain: deeper than rehost follows.
    let spec = VhdxSpec {
        virtual_size: MB as u64,
        block_size: MB as u32,
        logical_sector: 512,
        blocks: vec![],
        bitmap: None,
        data_write_guid: g(100),
        parent: None,
    };
    write(dir.path(), "d0.vhdx", &spec.build());
    for i in 1..70 {
        let f = child(
            MB,
            &g(100 + i),
            &g(100 + i - 1),
            &format!(".\\d{}.vhdx", i - 1),
            vec![],
        );
        write(dir.path(), &format!("d{i}.vhdx"), &f);
    }
    let e = disk::open(&dir.path().join("d69.vhdx"), &Default::default())
        .err()
        .expect("deep chain");
    assert!(e.to_string().contains("deeper"), "{e}");
    // 60 levels are fine, and read the base through all of them.
    let d = disk::open(&dir.path().join("d60.vhdx"), &Default::default()).unwrap();
    assert!(common::read_all(&d).iter().all(|&b| b == 0));
}
