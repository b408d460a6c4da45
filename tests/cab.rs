//! Cabinets against cabextract: every member of MSZIP and LZX cabinets (libmspack's test
//! cabinets and one written by gcab) extracts to cabextract's bytes; malformed cabinets
//! that once crashed or hung decompressors give errors.

mod common;

use rehost::disk::Memory;
use rehost::formats::cab::Cab;
use rehost::{Ctx, Layer};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn open(path: &Path) -> rehost::Result<Cab<Memory>> {
    let bytes = std::fs::read(path).unwrap();
    let name = path.display().to_string();
    Cab::open(
        Memory::new(&name, bytes),
        Ctx::new(name.clone(), Layer::Cab),
    )
}

/// Members and bytes as cabextract extracts them.
fn cabextract(path: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    common::run(
        Command::new("cabextract")
            .arg("-q")
            .arg("-d")
            .arg(dir.path())
            .arg(path),
    );
    let mut out = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .replace('/', "\\");
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn members_extract_as_cabextract_extracts_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cabs = vec![common::root().join("testdata/cab/large-files-cab.cab")];
    if common::have_tool("gcab") {
        let files = ["halmacpi.dll", "ntkrnlmp.exe", "README.TXT"];
        for (i, f) in files.iter().enumerate() {
            std::fs::write(
                dir.path().join(f),
                common::pattern(40_000 + i * 70_001, i as u64),
            )
            .unwrap();
        }
        let cab = dir.path().join("sp2.cab");
        common::run(
            Command::new("gcab")
                .current_dir(dir.path())
                .arg("-c")
                .arg("-z")
                .arg(&cab)
                .args(files),
        );
        cabs.push(cab);
    }
    if !common::have_tool("cabextract") {
        return;
    }
    for path in cabs {
        let mut cab = open(&path).unwrap();
        let theirs = cabextract(&path);
        assert!(!theirs.is_empty());
        let mut names: Vec<String> = cab.members().iter().map(|m| m.name.clone()).collect();
        names.sort();
        assert_eq!(
            names,
            theirs.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
            "{}",
            path.display()
        );
        for (name, bytes) in &theirs {
            let ours = cab.read(&name.to_uppercase()).unwrap();
            common::assert_same_bytes(&ours, bytes, name);
        }
    }
}

#[test]
fn quantum_and_malformed_cabinets_give_errors_in_bounded_time() {
    let mixed = common::root().join("testdata/cab/mszip_lzx_qtm.cab");
    let mut cab = open(&mixed).unwrap();
    let members = cab.members();
    let kinds: Vec<&str> = members.iter().map(|m| m.compression).collect();
    assert!(
        kinds.contains(&"mszip") && kinds.contains(&"lzx") && kinds.contains(&"quantum"),
        "{kinds:?}"
    );
    for m in &members {
        let r = cab.read(&m.name);
        if m.compression == "quantum" {
            assert!(r.unwrap_err().to_string().contains("Quantum"));
        } else {
            assert_eq!(r.unwrap().len(), m.size as usize, "{}", m.name);
        }
    }
    for bad in [
        "bad_signature.cab",
        "cve-2010-2800-mszip-infinite-loop.cab",
        "cve-2015-4470-mszip-over-read.cab",
        "cve-2015-4471-lzx-under-read.cab",
        "lzx-main-tree-no-lengths.cab",
        "lzx-premature-matches.cab",
    ] {
        let started = Instant::now();
        let path = common::root().join("testdata/cab").join(bad);
        let failed = match open(&path) {
            Err(e) => e.to_string().contains(bad),
            Ok(mut c) => c
                .members()
                .iter()
                .any(|m| c.read(&m.name).is_err_and(|e| e.to_string().contains(bad))),
        };
        assert!(failed, "{bad}: no error naming it");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{bad} took {:?}",
            started.elapsed()
        );
    }
    // Seeded mutations of a good cabinet never panic.
    let good = std::fs::read(common::root().join("testdata/cab/large-files-cab.cab")).unwrap();
    let mut rng = common::Rng(0xcab0_5eed);
    for _ in 0..300 {
        let mut m = good.clone();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(m.len() as u64) as usize;
            m[at] = rng.next() as u8;
        }
        if let Ok(mut c) = Cab::open(Memory::new("m", m), Ctx::new("m", Layer::Cab)) {
            for member in c.members() {
                let _ = c.read(&member.name);
            }
        }
    }
}

/// A cabinet of stored (uncompressed) members, written by the `cab` crate.
fn stored_cabinet(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = cab::CabinetBuilder::new();
    let folder = b.add_folder(cab::CompressionType::None);
    for (name, _) in members {
        folder.add_file(*name);
    }
    let mut w = b.build(std::io::Cursor::new(Vec::new())).unwrap();
    let mut data = members.iter();
    while let Some(mut f) = w.next_file().unwrap() {
        std::io::Write::write_all(&mut f, data.next().unwrap().1).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn members_whose_names_leave_their_folder_are_listed_but_never_found_or_read() {
    let bytes = stored_cabinet(&[
        (r"..\evil", b"evil"),
        (r"..\..\halmacpi.dll", b"not this one"),
        (r"C:\Windows\ntkrnlmp.exe", b"nor this"),
        (r"i386\NUL.dll", b"a device"),
        (r"i386\kernel32.dll", b"this one"),
    ]);
    let ctx = Ctx::new("crafted.cab", Layer::Cab);
    let mut cab = Cab::open(Memory::new("crafted.cab", bytes), ctx).unwrap();
    let listed: Vec<String> = cab.members().into_iter().map(|m| m.name).collect();
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert!(listed.contains(&r"..\evil".to_string()), "{listed:?}");
    // A name asked for by its last part (as the HAL and kernel sources ask) finds only a
    // member that stays inside its folder.
    for name in [
        "evil",
        "halmacpi.dll",
        "ntkrnlmp.exe",
        "NUL.dll",
        r"..\evil",
    ] {
        assert_eq!(cab.find(name), None, "{name}");
    }
    assert_eq!(cab.find("kernel32.dll").unwrap().name, r"i386\kernel32.dll");
    assert_eq!(cab.read("KERNEL32.DLL").unwrap(), b"this one");
    let e = cab.read(r"..\evil").unwrap_err().to_string();
    assert!(
        e.contains(r"`..\evil` climbs out of its directory") && e.contains("crafted.cab"),
        "{e}"
    );
    let e = cab.read("halmacpi.dll").unwrap_err().to_string();
    assert!(e.contains("halmacpi.dll in the cabinet"), "{e}");
}
