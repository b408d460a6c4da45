//! `rehost ls` shows each file's size from its own record, not the copy in the directory
//! index (which Windows updates lazily: `$LogFile`, `$Boot` and open hives show 0 there).
//! Every file of two volumes Windows formatted, listed with `ls -r --json`, against
//! `ntfsls -R -l` and, where the Sleuth Kit reads the volume, `fls -r -l`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `rehost ls -r --json` of a volume: path to (record, size, is a directory).
fn rehost_ls(vol: &Path) -> BTreeMap<String, (u64, u64, bool)> {
    let out = common::run(
        Command::new(env!("CARGO_BIN_EXE_rehost"))
            .args(["ls", "-r", "--json"])
            .arg(vol),
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                (
                    r["inode"].as_u64().unwrap(),
                    r["size"].as_u64().unwrap(),
                    r["is_dir"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

/// The cluster size of a bare volume, from its boot sector.
fn cluster_size(vol: &Path) -> u64 {
    let mut s = [0u8; 512];
    use std::io::Read;
    std::fs::File::open(vol)
        .unwrap()
        .read_exact(&mut s)
        .unwrap();
    let bps = u16::from_le_bytes([s[0x0B], s[0x0C]]) as u64;
    match s[0x0D] {
        spc @ 0xF4..=0xFF => bps << (256 - spc as u32),
        spc => bps * spc as u64,
    }
}

/// `fls -r -p -l`: path to (record, size) for files; named streams (`name:stream`) are left
/// out, and a file fls shows only by its named streams (`$Secure:$SDS`) maps to `None`.
fn fls_sizes(vol: &Path) -> BTreeMap<String, Option<(u64, u64)>> {
    let out = common::run(Command::new("fls").args(["-r", "-p", "-l"]).arg(vol));
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(head), Some(path)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        let leaf = path.rsplit('/').next().unwrap_or(path);
        if !head.starts_with("r/r") || head.contains('*') || path.starts_with("$OrphanFiles") {
            continue;
        }
        if let Some((base, _)) = leaf.split_once(':') {
            let base = format!("{}{base}", &path[..path.len() - leaf.len()]);
            map.entry(base).or_insert(None);
            continue;
        }
        let inode = head
            .split_whitespace()
            .last()
            .and_then(|i| i.split('-').next())
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("fls line {line:?}"));
        let size = fields[6]
            .parse()
            .unwrap_or_else(|_| panic!("fls line {line:?}"));
        map.insert(path.to_string(), Some((inode, size)));
    }
    map
}

fn compare(vol: &Path, what: &str) {
    let all = rehost_ls(vol);
    let ours: BTreeMap<String, (u64, u64)> = all
        .iter()
        .map(|(p, (r, s, _))| (p.clone(), (*r, *s)))
        .collect();
    assert!(
        all.values().any(|(_, s, d)| !d && *s > 0),
        "{what}: rehost ls -r lists no file with bytes"
    );
    if common::have_tool("ntfsls") {
        let theirs = common::ntfsls_tree(vol);
        common::assert_same_map(&ours, &theirs, &format!("{what}: rehost ls against ntfsls"));
    }
    let cluster = cluster_size(vol);
    if cluster > 65536 {
        eprintln!(
            "SKIP: {what}: the Sleuth Kit does not read {cluster}-byte clusters; fls did not run"
        );
    } else if common::have_tool("fls") {
        let listed = fls_sizes(vol);
        let fls: BTreeMap<String, (u64, u64)> = listed
            .iter()
            .filter_map(|(p, v)| v.map(|v| (p.clone(), v)))
            .collect();
        let files: BTreeMap<String, (u64, u64)> = all
            .into_iter()
            .filter(|(p, (_, _, d))| !d && listed.get(p) != Some(&None))
            .map(|(p, (r, s, _))| (p, (r, s)))
            .collect();
        common::assert_same_map(&files, &fls, &format!("{what}: rehost ls against fls -l"));
    }
}

#[test]
fn sizes_from_the_record_on_a_windows_volume_with_2_mib_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = common::sparse_partition("ntfs/win10-2m.raw.zst", tmp.path());
    compare(&vol, "Windows 10, 2 MiB clusters");
}

#[test]
fn sizes_from_the_record_on_the_windows_formatted_testfs1() {
    compare(&common::fixture("ntfs/testfs1.zst"), "testfs1");
}
