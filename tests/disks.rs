//! The fixture disks (bare NTFS, MBR, GPT), in every container format, read through rehost
//! and compared with outside readers: qemu-img for whole disks, mmls and sgdisk for the
//! partition tables, fls, icat and ntfsls for NTFS, mtools for FAT. The `rehost` command
//! itself is run for listings and for `cat`.

mod common;

use common::{disk_fixture, CONTAINERS};
use rehost::disk;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

const DISKS: [&str; 3] = ["bare", "mbr", "gpt"];

/// Volumes from the manifest: (disk, index, byte offset, content).
fn volumes() -> Vec<(String, u32, u64, String)> {
    std::fs::read_to_string(common::root().join("testdata/disks/MANIFEST"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("volume "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].trim_end_matches(".raw").to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].to_string(),
            )
        })
        .collect()
}

fn ntfs_volume(disk: &str) -> (u32, u64) {
    volumes()
        .into_iter()
        .find(|v| v.0 == disk && v.3 == "ntfs")
        .map(|v| (v.1, v.2))
        .unwrap()
}

fn rehost(args: &[&str]) -> Vec<u8> {
    common::run(Command::new(env!("CARGO_BIN_EXE_rehost")).args(args))
}

fn sha(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

#[test]
fn whole_disks_read_like_qemu_img() {
    let qemu = common::have_tool("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    for d in DISKS {
        let raw = std::fs::read(disk_fixture(&format!("{d}.raw"))).unwrap();
        for (c, fmt) in CONTAINERS {
            let path = disk_fixture(&format!("{d}.{c}"));
            let opened = disk::open(&path, &Default::default()).unwrap();
            let ours = common::read_all(&opened);
            common::assert_same_bytes(&ours, &raw, &format!("{d}.{c} against the raw image"));
            if qemu && c != "raw" {
                let out = dir.path().join("q.raw");
                common::run(
                    Command::new("qemu-img")
                        .args(["convert", "-f", fmt, "-O", "raw"])
                        .arg(&path)
                        .arg(&out),
                );
                common::assert_same_bytes(
                    &ours,
                    &std::fs::read(&out).unwrap(),
                    &format!("{d}.{c} against qemu-img"),
                );
            }
        }
    }
}

/// (start, length) in bytes of each partition mmls shows.
fn mmls_partitions(image: &Path) -> Vec<(u64, u64)> {
    let out = String::from_utf8(common::run(Command::new("mmls").arg(image))).unwrap();
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Partition rows have a slot of digits ("000:001" for MBR, "002" for GPT); meta
            // and unallocated rows do not.
            let slot = f
                .get(1)
                .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit() || c == ':'));
            (f.len() > 4 && slot).then(|| {
                let start: u64 = f[2].parse().unwrap();
                let len: u64 = f[4].parse().unwrap();
                (start * 512, len * 512)
            })
        })
        .collect()
}

#[test]
fn partition_tables_match_mmls_and_sgdisk() {
    if !common::have_tool("mmls") || !common::have_tool("sgdisk") {
        return;
    }
    for d in ["mbr", "gpt"] {
        let raw = disk_fixture(&format!("{d}.raw"));
        let mut theirs = mmls_partitions(&raw);
        theirs.sort();
        for (c, _) in CONTAINERS {
            let path = disk_fixture(&format!("{d}.{c}"));
            let json: serde_json::Value =
                serde_json::from_slice(&rehost(&["volumes", "--json", path.to_str().unwrap()]))
                    .unwrap();
            let layout = &json["layout"];
            let mut ours: Vec<(u64, u64)> = layout["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["offset"].as_u64().unwrap(), v["size"].as_u64().unwrap()))
                .collect();
            ours.sort();
            assert_eq!(ours, theirs, "{d}.{c}: partitions against mmls");
            assert!(
                layout["errors"].as_array().unwrap().is_empty(),
                "{d}.{c}: {}",
                layout["errors"]
            );
            if d == "mbr" {
                assert_eq!(layout["mbr_signature"], "5cbea03e");
                let vols = layout["volumes"].as_array().unwrap();
                assert_eq!(vols[0]["bootable"], true);
                assert_eq!(vols.iter().filter(|v| v["logical"] == true).count(), 2);
                let contents: Vec<&str> = vols
                    .iter()
                    .map(|v| v["content"].as_str().unwrap())
                    .collect();
                assert_eq!(contents, ["ntfs", "fat16", "fat12"], "{d}.{c}");
            } else {
                let p = String::from_utf8(common::run(Command::new("sgdisk").arg("-p").arg(&raw)))
                    .unwrap();
                let disk_guid = p
                    .lines()
                    .find_map(|l| l.strip_prefix("Disk identifier (GUID): "))
                    .unwrap();
                assert_eq!(
                    layout["disk_guid"].as_str().unwrap(),
                    disk_guid.to_lowercase()
                );
                for v in layout["volumes"].as_array().unwrap() {
                    let n = v["index"].as_u64().unwrap().to_string();
                    let info = String::from_utf8(common::run(
                        Command::new("sgdisk").args(["-i", &n]).arg(&raw),
                    ))
                    .unwrap();
                    let unique = info
                        .lines()
                        .find_map(|l| l.strip_prefix("Partition unique GUID: "))
                        .unwrap();
                    assert_eq!(
                        v["partition_guid"].as_str().unwrap(),
                        unique.to_lowercase(),
                        "{d}.{c} partition {n}"
                    );
                }
                let contents: Vec<&str> = layout["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["content"].as_str().unwrap())
                    .collect();
                assert_eq!(contents, ["fat32", "microsoft-reserved", "ntfs"], "{d}.{c}");
            }
        }
    }
}

/// What the Sleuth Kit and ntfs-3g say of the fixture NTFS volume (the same volume sits in
/// every disk): names with record numbers, the hash of every file's data, sizes.
struct NtfsOracle {
    tree: BTreeMap<String, u64>,
    hashes: HashMap<String, String>,
    sizes: BTreeMap<String, (u64, u64)>,
    streams: HashMap<String, String>,
}

fn ntfs_oracle() -> Option<NtfsOracle> {
    if !common::have_tool("fls") || !common::have_tool("icat") || !common::have_tool("ntfsls") {
        return None;
    }
    let bare = disk_fixture("bare.raw");
    let tree = common::fls_tree(&bare, 0);
    let listing = String::from_utf8(common::run(
        Command::new("fls").args(["-r", "-p"]).arg(&bare),
    ))
    .unwrap();
    let mut hashes = HashMap::new();
    let mut streams = HashMap::new();
    for line in listing.lines() {
        let Some((head, path)) = line.split_once(":\t") else {
            continue;
        };
        if !head.starts_with("r/r") || head.contains('*') || path.starts_with('$') {
            continue;
        }
        let inode = head.split_whitespace().last().unwrap();
        let data = common::icat(&bare, 0, inode);
        match path.split_once(':') {
            Some((file, stream)) => {
                streams.insert(format!("{file}:{stream}"), sha(&data));
            }
            None => {
                hashes.insert(path.to_string(), sha(&data));
            }
        }
    }
    let sizes = common::ntfsls_tree(&bare);
    Some(NtfsOracle {
        tree,
        hashes,
        sizes,
        streams,
    })
}

#[test]
fn ntfs_volumes_list_and_read_like_the_sleuth_kit() {
    let Some(oracle) = ntfs_oracle() else { return };
    assert!(oracle.hashes.len() > 800, "{} files", oracle.hashes.len());
    assert!(oracle.streams.len() >= 2, "{:?}", oracle.streams.keys());
    for d in DISKS {
        let (index, _) = ntfs_volume(d);
        for (c, _) in CONTAINERS {
            let path = disk_fixture(&format!("{d}.{c}"));
            let p = path.to_str().unwrap();
            // `rehost ls -r` (the NTFS volume is chosen without --volume).
            let json: Vec<serde_json::Value> =
                serde_json::from_slice(&rehost(&["ls", "-r", "--json", p])).unwrap();
            let ours: BTreeMap<String, u64> = json
                .iter()
                .map(|e| {
                    (
                        e["path"].as_str().unwrap().to_string(),
                        e["inode"].as_u64().unwrap(),
                    )
                })
                .collect();
            common::assert_same_map(
                &ours,
                &oracle.tree,
                &format!("{d}.{c}: ls -r against fls -r"),
            );
            for e in &json {
                let name = e["path"].as_str().unwrap();
                if let Some((inode, size)) = oracle.sizes.get(name) {
                    assert_eq!(
                        e["inode"].as_u64().unwrap(),
                        *inode,
                        "{d}.{c}: {name} inode against ntfsls"
                    );
                    if !e["is_dir"].as_bool().unwrap() && !name.starts_with('$') {
                        assert_eq!(
                            e["size"].as_u64().unwrap(),
                            *size,
                            "{d}.{c}: {name} size against ntfsls"
                        );
                    }
                }
            }
            // Every file's bytes, through the library, against icat.
            let opened = disk::open(&path, &Default::default()).unwrap();
            let ctx = rehost::Ctx::new(p, rehost::Layer::Volume);
            let layout = rehost::volume::scan(opened.reader(), 512, &ctx).unwrap();
            let v = layout.volumes.iter().find(|v| v.index == index).unwrap();
            let dev =
                std::sync::Arc::new(rehost::volume::open_volume(opened.reader(), v, &ctx).unwrap());
            let fs = rehost::fs::FileSystem::open(dev, v.content, &ctx).unwrap();
            for (file, want) in &oracle.hashes {
                let mut data = Vec::new();
                fs.copy_to(file, "", &mut data)
                    .unwrap_or_else(|e| panic!("{d}.{c}: {file}: {e}"));
                assert_eq!(&sha(&data), want, "{d}.{c}: {file} against icat");
            }
        }
    }
}

#[test]
fn rehost_cat_matches_icat_for_the_hard_cases() {
    let Some(oracle) = ntfs_oracle() else { return };
    let cases = [
        "frag.bin",
        "sparse.bin",
        "sizes/0.bin",
        "sizes/700.bin",
        "sizes/4097.bin",
        "sizes/1m5.bin",
        "names/日本語/ファイル.txt",
        "names/emoji-😀.txt",
        "Windows/System32/config/SYSTEM",
    ];
    for d in DISKS {
        for (c, _) in CONTAINERS {
            let path = disk_fixture(&format!("{d}.{c}"));
            let p = path.to_str().unwrap();
            for file in cases {
                // Either separator, any case.
                let asked = file.replace('/', "\\").to_uppercase();
                let data = rehost(&["cat", p, &asked]);
                assert_eq!(
                    &sha(&data),
                    &oracle.hashes[file],
                    "{d}.{c}: rehost cat {asked}"
                );
            }
            for (key, want) in &oracle.streams {
                let (file, stream) = key.split_once(':').unwrap();
                let data = rehost(&["cat", p, file, "--stream", stream]);
                assert_eq!(
                    &sha(&data),
                    want,
                    "{d}.{c}: rehost cat {file} --stream {stream}"
                );
            }
        }
    }
}

#[test]
fn fat_volumes_match_mtools() {
    if !common::have_tool("mdir") || !common::have_tool("mtype") {
        return;
    }
    for (d, index, offset, content) in volumes().into_iter().filter(|v| v.3.starts_with("fat")) {
        let raw = disk_fixture(&format!("{d}.raw"));
        let img = format!("{}@@{offset}", raw.display());
        // mdir fails on a volume with no files at all; that is an empty listing.
        let out = Command::new("mdir")
            .args(["-/", "-b", "-i", &img, "::/"])
            .output()
            .unwrap();
        let listing = String::from_utf8(out.stdout).unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(why.contains("not found"), "mdir failed on {img}: {why}");
        }
        let mut theirs: Vec<String> = listing
            .lines()
            .map(|l| {
                l.trim_start_matches("::/")
                    .trim_end_matches('/')
                    .to_string()
            })
            .filter(|l| !l.is_empty())
            .collect();
        theirs.sort();
        for (c, _) in CONTAINERS {
            let path = disk_fixture(&format!("{d}.{c}"));
            let p = path.to_str().unwrap();
            let n = index.to_string();
            let json: Vec<serde_json::Value> =
                serde_json::from_slice(&rehost(&["ls", "-r", "--json", "--volume", &n, p]))
                    .unwrap();
            let mut ours: Vec<String> = json
                .iter()
                .map(|e| e["path"].as_str().unwrap().to_string())
                .collect();
            ours.sort();
            assert_eq!(ours, theirs, "{d}.{c} volume {n} ({content}) against mdir");
            for e in json.iter().filter(|e| !e["is_dir"].as_bool().unwrap()) {
                let file = e["path"].as_str().unwrap();
                let want = common::run(
                    Command::new("mtype")
                        .args(["-i", &img])
                        .arg(format!("::/{file}")),
                );
                let got = rehost(&["cat", "--volume", &n, p, file]);
                common::assert_same_bytes(&got, &want, &format!("{d}.{c}: {file} against mtype"));
                assert_eq!(
                    e["size"].as_u64().unwrap(),
                    want.len() as u64,
                    "{file} size"
                );
            }
        }
    }
}
