//! Ex01 (EWF version 2) evidence files: the fixtures under `testdata/ex01/` (made by a newer
//! libewf's `ewfacquire -f encase7-v2` from the sample and the Windows 7 fixture, with
//! compression none, fast and best, Windows 7 in 13 and 3 segments; see
//! `scripts/fixtures/ex01.sh`) read through rehost as the raw disks they were made from
//! (every byte and every file), `inspect` and `check` say of them what they say of the raw
//! disk, the stored MD5 and SHA-1 are the raw disk's and `volumes --verify` holds the media
//! to them (and fails on a damaged chunk), conversion and fix `--output` give what qemu-img
//! finds identical to the raw, writes in place are refused, and damaged segment files are
//! errors that name the file, the layer and the offset, never panics.

mod common;

use common::ewf::{
    bytes_of, fixed_only_into_new_images, open_error, qemu_compare, raw_disk, report, same_files,
    sums, verify,
};
use common::{have_tool, rehost_command, root, run};
use rehost::disk::{self, ReadAt};
use std::path::{Path, PathBuf};

/// The fixtures: name, raw disk, segments.
const FIXTURES: [(&str, &str, usize); 5] = [
    ("sample-none", "sample", 1),
    ("sample-fast", "sample", 1),
    ("sample-best", "sample", 1),
    ("win7-none", "win7", 13),
    ("win7-best", "win7", 3),
];

/// Whether qemu-img is here (for the raw disks; in CI it must be).
fn tools() -> bool {
    have_tool("qemu-img")
}

/// The segment files of fixture `name` decompressed into `dir`: the first one's path.
fn fixture(name: &str, dir: &Path) -> PathBuf {
    let src = root().join("testdata/ex01");
    let mut n = 0;
    for e in std::fs::read_dir(&src).unwrap() {
        let path = e.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(seg) = file
            .strip_suffix(".zst")
            .filter(|f| f.starts_with(&format!("{name}.Ex")))
        {
            let bytes = zstd::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap();
            std::fs::write(dir.join(seg), bytes).unwrap();
            n += 1;
        }
    }
    assert!(n > 0, "no segments of {name} in {}", src.display());
    dir.join(format!("{name}.Ex01"))
}

/// The segment files of the evidence file `ex01`, in order.
fn segments(ex01: &Path) -> Vec<PathBuf> {
    (1..)
        .map_while(|n| disk::ewf::segment_path_v2(ex01, n).filter(|s| s.is_file()))
        .collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// One section of a segment file, as the specification lays it out: its descriptor's
/// offset, its type and where its data starts.
#[derive(Debug, Clone, Copy)]
struct Section {
    descriptor: usize,
    kind: u32,
    data: usize,
}

/// The sections of a segment file, read back from the descriptor at its end.
fn sections(seg: &[u8]) -> Vec<Section> {
    let mut out = Vec::new();
    let mut at = seg.len() - 64;
    loop {
        let size = u64_at(seg, at + 16) as usize;
        out.push(Section {
            descriptor: at,
            kind: u32_at(seg, at),
            data: at - size,
        });
        let previous = u64_at(seg, at + 8) as usize;
        if previous == 0 {
            break;
        }
        at = previous;
    }
    out.reverse();
    out
}

/// The first section of type `kind`.
fn section(seg: &[u8], kind: u32) -> Section {
    *sections(seg).iter().find(|s| s.kind == kind).unwrap()
}

/// The entries of the first sector table: where each entry is, the chunk's offset, its
/// size and its flags.
fn entries(seg: &[u8]) -> Vec<(usize, u64, u32, u32)> {
    let t = section(seg, 4);
    let count = u32_at(seg, t.data + 8) as usize;
    (0..count)
        .map(|i| {
            let e = t.data + 32 + 16 * i;
            (e, u64_at(seg, e), u32_at(seg, e + 8), u32_at(seg, e + 12))
        })
        .collect()
}

/// Makes the first sector table's entries' checksum right again.
fn reseal_table(seg: &mut [u8]) {
    let t = section(seg, 4);
    let count = u32_at(seg, t.data + 8) as usize;
    let (from, to) = (t.data + 32, t.data + 32 + 16 * count);
    let sum = disk::ewf::adler32(&seg[from..to]);
    seg[to..to + 4].copy_from_slice(&sum.to_le_bytes());
}

/// Makes the descriptor at `at` checksum right again.
fn reseal_descriptor(seg: &mut [u8], at: usize) {
    let sum = disk::ewf::adler32(&seg[at..at + 60]);
    seg[at + 60..at + 64].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn every_ex01_fixture_reads_as_its_raw_disk() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raws = [
        ("sample", raw_disk("sample", d)),
        ("win7", raw_disk("win7", d)),
    ];
    for (name, disk_name, count) in FIXTURES {
        let raw = &raws.iter().find(|r| r.0 == disk_name).unwrap().1;
        let original = std::fs::read(raw).unwrap();
        let (md5, sha1) = sums(raw);
        let ex01 = fixture(name, d);
        assert_eq!(segments(&ex01).len(), count, "{name}");
        let disk = disk::open(&ex01, &Default::default()).unwrap_or_else(|e| panic!("{e:#}"));
        let info = disk.info();
        assert_eq!(info.format, disk::Format::E01);
        let variant = info.variant.clone().unwrap();
        let compression = if name.ends_with("none") {
            "no compression"
        } else {
            "zlib compression"
        };
        assert_eq!(
            variant,
            format!(
                "Ex01, {count} segment{}, {compression}",
                if count == 1 { "" } else { "s" }
            )
        );
        let stored: Vec<(String, String)> = info
            .stored_hashes
            .iter()
            .map(|h| {
                let v = serde_json::to_value(h).unwrap();
                (
                    v["algorithm"].as_str().unwrap().to_string(),
                    v["hex"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            stored,
            [("MD5".to_string(), md5), ("SHA-1".to_string(), sha1)],
            "{name}"
        );
        assert_eq!(disk.size(), original.len() as u64);
        // In odd pieces, across chunk and segment boundaries.
        let mut ours = vec![0u8; original.len()];
        let mut at = 0usize;
        let mut step = 1usize;
        while at < ours.len() {
            let n = (7919 * step % 150_000 + 1).min(ours.len() - at);
            disk.read_at(at as u64, &mut ours[at..at + n]).unwrap();
            at += n;
            step += 1;
        }
        assert!(
            ours == original,
            "{name} reads other bytes than the raw disk"
        );
        let files = same_files(&ex01, raw);
        assert!(files > 10, "{name}: {files} files compared");
        eprintln!("{name}: {count} segments, every byte and {files} files equal");
    }
}

#[test]
fn inspect_and_check_say_of_the_ex01_what_they_say_of_the_raw_disk() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk("win7", dir.path());
    let ex01 = fixture("win7-best", dir.path());
    let check = [
        "check",
        "-t",
        "hyperv-gen1",
        "-t",
        "kvm-sata",
        "-t",
        "kvm-virtio-blk",
    ];
    assert_eq!(report(&["inspect"], &ex01), report(&["inspect"], &raw));
    let ours = report(&check, &ex01);
    assert_eq!(ours, report(&check, &raw));
    assert!(ours.contains("msahci"), "{ours}");
}

#[test]
fn stored_hashes_are_verified_and_a_damaged_chunk_or_hash_fails_the_verification() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk("sample", d);
    let (md5, sha1) = sums(&raw);
    for (name, flags) in [("sample-none", 2), ("sample-best", 1)] {
        let ex01 = fixture(name, d);
        let (r, code) = verify(&ex01);
        assert_eq!(code, 0, "{r}");
        assert_eq!(r["verify"]["verified"], true, "{r}");
        assert_eq!(r["verify"]["computed"]["md5"], md5.as_str());
        assert_eq!(r["verify"]["computed"]["sha1"], sha1.as_str());
        let text = String::from_utf8(run(rehost_command()
            .args(["volumes", "--verify"])
            .arg(&ex01)))
        .unwrap();
        assert!(text.contains("(Ex01, 1 segment"), "{text}");
        assert!(text.contains(&format!("stored MD5: {md5}")), "{text}");
        assert!(
            text.contains(&format!("verify: SHA-1 {sha1} match")),
            "{text}"
        );

        // One byte in the middle of a stored chunk (checksummed, or compressed) changed: the
        // last such chunk, which `volumes` does not read before the verification.
        let mut seg = std::fs::read(&ex01).unwrap();
        let (_, offset, size, _) = *entries(&seg)
            .iter()
            .rfind(|e| e.3 == flags && e.2 > 64)
            .unwrap();
        seg[offset as usize + size as usize / 2] ^= 0x5a;
        std::fs::write(&ex01, &seg).unwrap();
        let (r, code) = verify(&ex01);
        assert_eq!(code, 1, "{r}");
        assert_eq!(r["verify"]["verified"], false, "{r}");
        let error = r["verify"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("chunk") && error.contains("ewf") && error.contains(name),
            "{r}"
        );
        eprintln!("{name}, damaged: {error}");
    }

    // A stored MD5 that is not the media's (its checksum kept right): MISMATCH.
    let ex01 = fixture("sample-fast", d);
    let mut seg = std::fs::read(&ex01).unwrap();
    let h = section(&seg, 8).data;
    seg[h] ^= 1;
    let sum = disk::ewf::adler32(&seg[h..h + 16]);
    seg[h + 16..h + 20].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&ex01, &seg).unwrap();
    let (r, code) = verify(&ex01);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["verify"]["checks"][0]["matches"], false, "{r}");
    assert_eq!(r["verify"]["checks"][1]["matches"], true, "{r}");
}

#[test]
fn ex01_is_converted_and_fixed_into_new_images_never_in_place() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk("win7", d);
    let ex01 = fixture("win7-none", d);
    let before = bytes_of(&segments(&ex01));
    let out = d.join("converted.vhdx");
    let said =
        String::from_utf8(run(rehost_command().arg("convert").arg(&ex01).arg(&out))).unwrap();
    assert!(said.contains("read back and compared"), "{said}");
    qemu_compare(&raw, "raw", &out, "vhdx");

    // In place: refused, pointing at --output; fix --output equals the raw disk fixed in
    // place; the evidence unchanged.
    fixed_only_into_new_images(
        &ex01,
        &segments(&ex01),
        &before,
        &raw,
        "an Ex01 evidence file is read-only by design",
        d,
    );
}

#[test]
fn damaged_ex01_files_are_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fresh = |name: &str, sub: &str| {
        let here = d.join(sub);
        std::fs::create_dir_all(&here).unwrap();
        let ex01 = fixture(name, &here);
        let segs = segments(&ex01);
        (ex01, segs)
    };

    // A missing segment: named.
    let (ex01, segs) = fresh("win7-none", "missing");
    std::fs::remove_file(&segs[2]).unwrap();
    let e = open_error(&ex01);
    assert!(
        e.contains("win7-none.Ex03") && e.contains("is missing") && e.contains("segment 3"),
        "{e}"
    );

    // A truncated segment.
    let (ex01, segs) = fresh("win7-none", "truncated");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    let e = open_error(&ex01);
    assert!(
        e.contains("win7-none.Ex02") && e.contains("ewf") && e.contains("truncated"),
        "{e}"
    );

    // A table entry putting its chunk past the end of the file (the entries' checksum made
    // right).
    let (ex01, _) = fresh("sample-fast", "past");
    let mut seg = std::fs::read(&ex01).unwrap();
    let (e, _, _, _) = *entries(&seg).iter().find(|e| e.3 == 1).unwrap();
    let past = seg.len() as u64 + 4096;
    seg[e..e + 8].copy_from_slice(&past.to_le_bytes());
    reseal_table(&mut seg);
    std::fs::write(&ex01, &seg).unwrap();
    let e = open_error(&ex01);
    assert!(
        e.contains("ewf")
            && e.contains("sector table entry")
            && e.contains(&format!("{past:#x}"))
            && e.contains("not inside the sector data"),
        "{e}"
    );

    // A chunk that inflates beyond the chunk's size: a zlib stream of 64 KiB of zeros (a
    // few dozen bytes) put over the start of a compressed chunk that takes more room.
    let (ex01, _) = fresh("sample-best", "bomb");
    let mut seg = std::fs::read(&ex01).unwrap();
    let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![0u8; 65536], 9);
    let (_, offset, _, _) = *entries(&seg)
        .iter()
        .find(|e| e.3 == 1 && e.2 as usize >= bomb.len())
        .expect("a compressed chunk with room");
    let offset = offset as usize;
    seg[offset..offset + bomb.len()].copy_from_slice(&bomb);
    std::fs::write(&ex01, &seg).unwrap();
    let e = open_error(&ex01);
    assert!(
        e.contains("inflates to more than") && e.contains("ewf"),
        "{e}"
    );

    // A descriptor whose checksum is wrong: its offset named.
    let (ex01, _) = fresh("sample-none", "descriptor");
    let mut seg = std::fs::read(&ex01).unwrap();
    let case = section(&seg, 2).descriptor;
    seg[case + 28] ^= 1;
    std::fs::write(&ex01, &seg).unwrap();
    let e = open_error(&ex01);
    assert!(
        e.contains(&format!("section descriptor at {case:#x}: checksum")) && e.contains("ewf"),
        "{e}"
    );

    // An encrypted section (the flag set, the descriptor's checksum right): refused.
    let (ex01, _) = fresh("sample-none", "encrypted");
    let mut seg = std::fs::read(&ex01).unwrap();
    let table = section(&seg, 4).descriptor;
    seg[table + 4] |= 2;
    reseal_descriptor(&mut seg, table);
    std::fs::write(&ex01, &seg).unwrap();
    let e = open_error(&ex01);
    assert!(e.contains("encrypted") && e.contains("unsupported"), "{e}");

    // A sector table that starts at another chunk than the next.
    let (ex01, _) = fresh("sample-none", "first");
    let mut seg = std::fs::read(&ex01).unwrap();
    let t = section(&seg, 4).data;
    seg[t] = 5;
    let sum = disk::ewf::adler32(&seg[t..t + 16]);
    seg[t + 16..t + 20].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&ex01, &seg).unwrap();
    let e = open_error(&ex01);
    assert!(e.contains("starts at chunk 5"), "{e}");

    // bzip2 named in the file header: refused by name.
    let (ex01, _) = fresh("sample-best", "bzip2");
    let mut seg = std::fs::read(&ex01).unwrap();
    seg[10] = 2;
    std::fs::write(&ex01, &seg).unwrap();
    let e = open_error(&ex01);
    assert!(e.contains("bzip2"), "{e}");

    // A later segment given alone: said which is first.
    let (_, segs) = fresh("win7-best", "later");
    let e = open_error(&segs[1]);
    assert!(
        e.contains("segment 2") && e.contains("win7-best.Ex01"),
        "{e}"
    );
}
