//! A real hive on a real volume: the Windows 7 SYSTEM hive, fragmented on the fixture volume
//! as hives are on used systems (ntfs-3g's tools lay it out, as `fragmented_volume` below
//! and scripts/make-fixtures.sh do),
//! edited with rehost's hive editor, first in place (the file keeps its clusters and only
//! the changed pages are written) and then past its allocation (new clusters appended);
//! ntfs-3g must return the same bytes and hivex must read the edited keys.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use harness::Staged;
use rehost::disk::ReadAt;
use rehost::formats::regf::Editor;
use rehost::fs::ntfs::write::WriteOptions;
use std::path::Path;
use std::process::Command;

const HIVE: &str = "/Windows/System32/config/SYSTEM";
const KEY: &str = "ControlSet001\\Services\\rehost-test";
const CRASH: &str = "ControlSet001\\Control\\CrashControl";
const PPM: &str = "ControlSet001\\Services\\intelppm";

/// Lays the hive out on a copy of the fixture volume in pieces, with ntfs-3g's tools: the
/// volume filled with 512 KiB files until it is full, every other one by cluster position
/// emptied, the hive copied into the holes.
fn fragmented_volume(dir: &Path, hive: &[u8]) -> std::path::PathBuf {
    let vol = dir.join("vol.ntfs");
    std::fs::copy(common::disk_fixture("bare.raw"), &vol).unwrap();
    let filler = dir.join("filler");
    std::fs::write(&filler, common::pattern(512 << 10, 3)).unwrap();
    let content = dir.join("SYSTEM");
    std::fs::write(&content, hive).unwrap();
    let mut fillers = Vec::new();
    for i in 0..200 {
        let name = format!("/fill{i}");
        let ok = Command::new("ntfscp")
            .arg("-q")
            .arg(&vol)
            .arg(&filler)
            .arg(&name)
            .output()
            .unwrap()
            .status
            .success();
        if !ok {
            break;
        }
        fillers.push(name);
    }
    assert!(fillers.len() > 40, "only {} fillers fit", fillers.len());
    let ls = String::from_utf8(common::run(Command::new("ntfsls").arg("-i").arg(&vol))).unwrap();
    let mut placed = Vec::new();
    for name in &fillers {
        let info = String::from_utf8(common::run(
            Command::new("ntfsinfo")
                .args(["-v", "-F"])
                .arg(name)
                .arg(&vol),
        ))
        .unwrap();
        // The first run: "0x0  <lcn>  <length>".
        let lcn = info
            .lines()
            .skip_while(|l| !l.contains("Runlist:"))
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            .unwrap_or_else(|| panic!("no runs for {name}: {info}"));
        placed.push((lcn, name));
    }
    placed.sort();
    for (_, name) in placed.iter().step_by(2) {
        let inode = ls
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                let (i, n) = (f.next()?, f.next()?);
                (n == &name[1..]).then(|| i.to_string())
            })
            .unwrap();
        common::run(Command::new("ntfstruncate").arg(&vol).arg(&inode).arg("0"));
    }
    // The hive grown into the holes piece by piece, then its bytes copied over it (ntfscp
    // keeps the runs of a file it overwrites at the same size).
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    common::run(
        Command::new("ntfscp")
            .arg("-q")
            .arg("-f")
            .arg(&vol)
            .arg(&empty)
            .arg(HIVE),
    );
    for off in (0..hive.len()).step_by(512 << 10) {
        common::run(
            Command::new("ntfsfallocate")
                .args(["-o", &off.to_string(), "-l", &(512 << 10).to_string()])
                .arg(&vol)
                .arg(HIVE),
        );
    }
    common::run(
        Command::new("ntfscp")
            .arg("-q")
            .arg("-f")
            .arg(&vol)
            .arg(&content)
            .arg(HIVE),
    );
    vol
}

/// The runs of the hive as (volume offset, length), read through rehost.
fn hive_extents(staged: &Staged) -> Vec<(u64, u64)> {
    let n = staged.reader();
    let f = n.lookup(HIVE).unwrap();
    n.data(&f, "")
        .unwrap()
        .extents()
        .iter()
        .map(|e| (e.volume_offset.unwrap(), e.len))
        .collect()
}

/// Staged bytes that fall inside `extents`.
fn staged_inside(staged: &Staged, extents: &[(u64, u64)]) -> u64 {
    staged
        .overlay
        .extents()
        .iter()
        .map(|(o, b)| {
            extents
                .iter()
                .map(|(a, l)| {
                    let lo = (*o).max(*a);
                    let hi = (o + b.len() as u64).min(a + l);
                    hi.saturating_sub(lo)
                })
                .sum::<u64>()
        })
        .sum()
}

fn read_hive(staged: &Staged) -> Vec<u8> {
    let n = staged.reader();
    let f = n.lookup(HIVE).unwrap();
    let s = n.data(&f, "").unwrap();
    let mut b = vec![0u8; s.size() as usize];
    s.read_at(0, &mut b).unwrap();
    b
}

/// hivexregedit's export of a key.
fn hivex_export(hive: &Path, key: &str) -> String {
    String::from_utf8(common::run(
        Command::new("hivexregedit")
            .arg("--export")
            .arg(hive)
            .arg(format!("\\{key}")),
    ))
    .unwrap()
}

#[test]
fn fragmented_system_hive_edited_in_place_and_grown() {
    for t in [
        "ntfscp",
        "ntfstruncate",
        "ntfsinfo",
        "ntfsfallocate",
        "ntfsls",
        "ntfscat",
        "hivexregedit",
    ] {
        if !common::have_tool(t) {
            return;
        }
    }
    let original = std::fs::read(common::fixture("hives/regipy/SYSTEM.xz")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let vol = fragmented_volume(tmp.path(), &original);
    let staged = Staged::open(&vol, 0);
    let before = hive_extents(&staged);
    assert!(
        before.len() >= 20,
        "the hive is in only {} runs",
        before.len()
    );
    assert_eq!(read_hive(&staged), original, "the hive as laid out");
    let mut w = staged.writer(WriteOptions::default()).unwrap();

    // In place: the fixes virt-v2v makes (AutoReboot off, intelppm disabled); the hive
    // keeps its size and its clusters.
    let mut ed = Editor::open(original.clone()).unwrap();
    ed.set_value(CRASH, "AutoReboot", 4, &0u32.to_le_bytes())
        .unwrap();
    ed.set_value(PPM, "Start", 4, &4u32.to_le_bytes()).unwrap();
    let edited = ed.save();
    assert_eq!(edited.len(), original.len(), "the edit fits the hive");
    w.replace(HIVE, &edited).unwrap();
    assert_eq!(hive_extents(&staged), before, "the hive keeps its clusters");
    let changed = staged_inside(&staged, &before);
    assert!(
        changed > 0 && changed <= 64 << 10,
        "{changed} bytes of the hive's clusters staged for a small edit of an {}-byte hive",
        original.len()
    );
    eprintln!(
        "in place: {changed} bytes staged in the {} runs of the {}-byte hive",
        before.len(),
        original.len()
    );
    let out = tmp.path().join("edited.ntfs");
    staged.commit_to(&out);
    let cat = common::run(Command::new("ntfscat").arg(&out).arg(HIVE));
    common::assert_same_bytes(&cat, &edited, "ntfscat of the hive edited in place");
    let hive_file = tmp.path().join("SYSTEM.edited");
    std::fs::write(&hive_file, &cat).unwrap();
    let reg = hivex_export(&hive_file, CRASH);
    assert!(reg.contains("\"AutoReboot\"=dword:00000000"), "{reg}");
    let reg = hivex_export(&hive_file, PPM);
    assert!(reg.contains("\"Start\"=dword:00000004"), "{reg}");

    // Past its allocation: a new service key with values that need new bins; the file
    // grows into new clusters.
    let mut ed = Editor::open(edited).unwrap();
    ed.create_key(KEY).unwrap();
    ed.set_value(KEY, "Start", 4, &0u32.to_le_bytes()).unwrap();
    let image: Vec<u8> = "system32\\drivers\\rehost.sys\0"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    ed.set_value(KEY, "ImagePath", 2, &image).unwrap();
    let big = common::pattern(3 << 20, 77);
    for (i, piece) in big.chunks(600 << 10).enumerate() {
        ed.set_value(KEY, &format!("Blob{i}"), 3, piece).unwrap();
    }
    let grown = ed.save();
    let allocated = {
        let n = staged.reader();
        n.data(&n.lookup(HIVE).unwrap(), "")
            .unwrap()
            .desc()
            .allocated_size
    };
    assert!(
        grown.len() as u64 > allocated + (1 << 20),
        "{} bytes",
        grown.len()
    );
    w.replace(HIVE, &grown).unwrap();
    let after = hive_extents(&staged);
    let last = before.len() - 1;
    assert_eq!(after[..last], before[..last], "the old runs stay");
    assert!(
        after[last].0 == before[last].0 && after[last].1 >= before[last].1,
        "the last old run stays"
    );
    eprintln!(
        "grown: {} bytes in {} runs (was {} runs)",
        grown.len(),
        after.len(),
        before.len()
    );
    let out = tmp.path().join("grown.ntfs");
    staged.commit_to(&out);
    let cat = common::run(Command::new("ntfscat").arg(&out).arg(HIVE));
    common::assert_same_bytes(&cat, &grown, "ntfscat of the grown hive");
    let hive_file = tmp.path().join("SYSTEM.grown");
    std::fs::write(&hive_file, &cat).unwrap();
    let reg = hivex_export(&hive_file, CRASH);
    assert!(
        reg.contains("\"AutoReboot\"=dword:00000000"),
        "the first edit survives"
    );
    let reg = hivex_export(&hive_file, KEY);
    assert!(reg.contains("\"Start\"=dword:00000000"), "{reg}");
    assert!(reg.contains("\"ImagePath\"=hex(2):73,00,79,00"), "{reg}");
    // Every blob's bytes as hivex prints them: `"BlobN"=hex(3):0d,b3,...` on one line.
    for (i, piece) in big.chunks(600 << 10).enumerate() {
        let tag = format!("\"Blob{i}\"=hex(3):");
        let start = reg
            .find(&tag)
            .unwrap_or_else(|| panic!("Blob{i} missing from hivex's export"))
            + tag.len();
        let line = reg[start..].lines().next().unwrap();
        let bytes: Vec<u8> = line
            .split(',')
            .map(|t| u8::from_str_radix(t.trim(), 16).unwrap())
            .collect();
        assert_eq!(bytes.len(), piece.len(), "Blob{i}'s length through hivex");
        assert!(bytes == piece, "Blob{i}'s bytes through hivex");
    }
    // The whole volume through the outside readers, the hive compared by all of them.
    let mut model = harness::Model::read(staged.reader());
    model
        .touched
        .insert(HIVE.trim_start_matches('/').to_string());
    harness::check_volume(&out, &model, 5, "grown hive");
}
