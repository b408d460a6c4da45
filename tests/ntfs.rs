//! NTFS reading against outside readers: the Sleuth Kit (fls, icat), ntfs-3g (ntfsls) and
//! the `ntfs` crate, on a volume formatted by Windows.

mod common;

use rehost::disk::{self, ReadAt};
use rehost::fs::ntfs::Ntfs;
use rehost::fs::FileSystem;
use rehost::{Ctx, Layer};
use std::collections::BTreeMap;
use std::sync::Arc;

fn open(path: &std::path::Path) -> (disk::Disk, FileSystem) {
    let d = disk::open(path, &Default::default()).unwrap();
    let ntfs = Ntfs::open(
        d.reader(),
        Ctx::new(path.display().to_string(), Layer::Ntfs),
    )
    .unwrap();
    (d, FileSystem::Ntfs(Box::new(ntfs)))
}

fn tree(fs: &FileSystem) -> BTreeMap<String, rehost::fs::DirEntry> {
    let mut map = BTreeMap::new();
    fs.walk(
        "",
        &mut |p, e| {
            map.insert(p.to_string(), e.clone());
        },
        &mut |p, e| panic!("walk failed at {p}: {e}"),
    );
    map
}

#[test]
fn windows_volume_lists_like_fls_and_ntfsls() {
    let img = common::fixture("ntfs/testfs1.zst");
    let (_d, fs) = open(&img);
    let ours = tree(&fs);
    assert!(ours.len() > 500, "only {} entries", ours.len());
    if common::have_tool("fls") {
        let fls = common::fls_tree(&img, 0);
        let mine: BTreeMap<String, u64> = ours.iter().map(|(p, e)| (p.clone(), e.inode)).collect();
        common::assert_same_map(&mine, &fls, "names and record numbers against fls -r");
    }
    if common::have_tool("ntfsls") {
        let ntfsls = common::ntfsls_tree(&img);
        for (path, (inode, size)) in &ntfsls {
            let e = ours.get(path).unwrap_or_else(|| panic!("{path} missing"));
            assert_eq!(e.inode, *inode, "{path}");
            let exact = fs.details(e).unwrap();
            if !e.is_dir {
                assert_eq!(exact.size, *size, "{path}: size from the record");
            }
        }
        assert!(ntfsls.len() > 500);
    }
}

#[test]
fn windows_volume_contents_match_icat_and_the_ntfs_crate() {
    let img = common::fixture("ntfs/testfs1.zst");
    let (_d, fs) = open(&img);
    let files: Vec<(String, u64)> = tree(&fs)
        .into_iter()
        .filter(|(_, e)| !e.is_dir)
        .map(|(p, e)| (p, e.inode))
        .collect();
    // The ntfs crate, as an independent reader.
    let mut raw = std::fs::File::open(&img).unwrap();
    let other = ntfs::Ntfs::new(&mut raw).unwrap();
    let icat = common::have_tool("icat");
    let mut compared = 0;
    for (path, inode) in &files {
        let f = other.file(&mut raw, *inode).unwrap();
        let mut mine = Vec::new();
        if f.data(&mut raw, "").is_none() {
            // No unnamed $DATA ($Extend/$ObjId and friends): we must say so, not invent bytes.
            let e = fs.copy_to(path, "", &mut mine).unwrap_err();
            assert!(
                matches!(e.kind, rehost::ErrorKind::NotFound(_)),
                "{path}: {e}"
            );
            continue;
        }
        fs.copy_to(path, "", &mut mine).unwrap();
        // The ntfs crate reads a data run at cluster 0 as a hole, so it returns zeros for
        // $Boot (which starts at cluster 0); icat still checks $Boot below.
        let crate_can_read = path != "$Boot";
        if let Some(item) = f.data(&mut raw, "").filter(|_| crate_can_read) {
            let item = item.unwrap();
            let attr = item.to_attribute().unwrap();
            let mut theirs = Vec::new();
            let mut v = attr.value(&mut raw).unwrap().attach(&mut raw);
            std::io::Read::read_to_end(&mut v, &mut theirs).unwrap();
            common::assert_same_bytes(&mine, &theirs, &format!("{path} against the ntfs crate"));
        }
        if icat {
            let theirs = common::icat(&img, 0, &inode.to_string());
            common::assert_same_bytes(&mine, &theirs, &format!("{path} against icat"));
        }
        compared += 1;
    }
    assert!(compared >= 12, "compared {compared} files");
}

#[test]
fn sparse_file_reads_zeros_in_its_holes_and_names_its_extents() {
    let img = common::fixture("ntfs/testfs1.zst");
    let d = disk::open(&img, &Default::default()).unwrap();
    let n = Ntfs::open(d.reader(), Ctx::new("testfs1", Layer::Ntfs)).unwrap();
    let f = n.lookup("\\SPARSE-FILE").unwrap();
    let s = n.data(&f, "").unwrap();
    assert_eq!(s.size(), 500005);
    let ext = s.extents();
    assert!(
        ext.iter().any(|e| e.volume_offset.is_none()),
        "no hole in {ext:?}"
    );
    let covered: u64 = ext.iter().map(|e| e.len).sum();
    assert_eq!(covered, 500005);
    let facts = n.facts().unwrap();
    assert_eq!(facts.label.as_deref(), Some("mylabel"));
    assert_eq!(facts.version.as_deref(), Some("3.1"));
    assert_eq!(facts.cluster_size, 512);
    assert!(!facts.dirty);
    assert!(facts.hibernation.is_none());
}

#[test]
fn lookups_ignore_case_and_take_either_separator() {
    let img = common::fixture("ntfs/testfs1.zst");
    let (_d, fs) = open(&img);
    let a = fs.stat("many_subdirs/1").unwrap();
    let b = fs.stat("\\MANY_SUBDIRS\\1").unwrap();
    assert_eq!(a, b);
    assert!(a.is_dir);
    let e = fs.stat("many_subdirs/nope").unwrap_err();
    assert!(matches!(e.kind, rehost::ErrorKind::NotFound(_)), "{e}");
    assert!(e.to_string().contains("ntfs"), "{e}");
    let dev: Arc<dyn ReadAt> = Arc::new(disk::open(&img, &Default::default()).unwrap());
    assert!(dev.size() > 0);
}

/// A compression unit written by Windows 10 (one stored cluster for a 16-cluster unit, the
/// rest sparse) decompresses, through the stream reader, to what icat read from the original
/// volume.
#[test]
fn windows_lznt1_unit_reads_back_through_the_stream() {
    use rehost::fs::ntfs::record::ATTR_COMPRESSED;
    use rehost::fs::ntfs::runlist::Run;
    use rehost::fs::ntfs::stream::{Stream, StreamDesc};
    let packed = std::fs::read(common::root().join("testdata/lznt1/win10-unit.lznt1")).unwrap();
    let expected =
        std::fs::read(common::root().join("testdata/lznt1/win10-unit.expected")).unwrap();
    assert_eq!(packed.len(), 4096);
    // Cluster 0 is padding, the stored cluster is cluster 1 of a 4 KiB-cluster device.
    let mut dev = vec![0xAB; 4096];
    dev.extend_from_slice(&packed);
    let desc = StreamDesc {
        ty: 0x80,
        name: String::new(),
        flags: ATTR_COMPRESSED,
        resident: None,
        runs: vec![
            Run {
                vcn: 0,
                lcn: Some(1),
                len: 1,
            },
            Run {
                vcn: 1,
                lcn: None,
                len: 15,
            },
        ],
        compression_unit: 4,
        data_size: expected.len() as u64,
        allocated_size: 65536,
        initialized_size: expected.len() as u64,
    };
    let s = Stream::new(
        Arc::new(disk::Memory::new("unit", dev)),
        desc,
        4096,
        Ctx::new("unit", Layer::Ntfs),
        "1.txt".into(),
    )
    .unwrap();
    let mut all = vec![0u8; expected.len()];
    s.read_at(0, &mut all).unwrap();
    common::assert_same_bytes(&all, &expected, "whole file");
    // A read inside the second 4 KiB chunk, across its start.
    let mut part = vec![0u8; 1000];
    s.read_at(4000, &mut part).unwrap();
    common::assert_same_bytes(&part, &expected[4000..5000], "piece across chunks");
    // Damaged compressed data gives an error naming the stream, never wrong bytes.
    let mut bad = vec![0xAB; 4096];
    let mut broken = packed.clone();
    // The first chunk header claims 4096 bytes of data: more than the unit holds.
    broken[0] = 0xFF;
    broken[1] = 0xBF;
    bad.extend_from_slice(&broken);
    let desc = s.desc().clone();
    let s = Stream::new(
        Arc::new(disk::Memory::new("bad", bad)),
        desc,
        4096,
        Ctx::new("bad", Layer::Ntfs),
        "1.txt".into(),
    )
    .unwrap();
    match s.read_at(0, &mut all) {
        Err(e) => assert!(e.to_string().contains("1.txt"), "{e}"),
        Ok(()) => assert_ne!(
            all, expected,
            "a damaged unit cannot decode to the original"
        ),
    }
}
