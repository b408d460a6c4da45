//! The `rehost` command as a user meets it: exit codes, the volume it chooses, `--stats`,
//! the facts `volumes` prints (checked against ntfsinfo and minfo), and `cat` of every file.

mod common;

use common::disk_fixture;
use std::process::{Command, Output};

fn rehost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Vec<u8> {
    let out = rehost(args);
    assert!(
        out.status.success(),
        "rehost {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn exit_codes_and_messages() {
    let sample = common::root().join("testdata/sample/sample.vhd");
    let s = sample.to_str().unwrap();
    assert_eq!(rehost(&["ls", s]).status.code(), Some(0));
    let missing = rehost(&["cat", s, "/no/such/file"]);
    assert_eq!(missing.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&missing.stderr);
    assert!(
        msg.contains("sample.vhd: ntfs at \\no: no such file or directory"),
        "{msg}"
    );
    assert_eq!(
        rehost(&["cat", s, "/Windows"]).status.code(),
        Some(1),
        "cat of a directory"
    );
    assert_eq!(
        rehost(&["frobnicate"]).status.code(),
        Some(2),
        "usage error"
    );
    assert_eq!(rehost(&["ls"]).status.code(), Some(2), "missing image");
    let nofile = rehost(&["ls", "/definitely/not/here.vhdx"]);
    assert_eq!(nofile.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nofile.stderr).contains("No such file"));
    let stats = rehost(&["ls", s, "--stats"]);
    let err = String::from_utf8_lossy(&stats.stderr);
    assert!(
        err.starts_with("stats: read ") && err.contains(" bytes in "),
        "{err}"
    );
}

#[test]
fn an_ambiguous_volume_is_an_error_that_lists_the_volumes() {
    // Two NTFS volumes, neither holding \Windows.
    let vol = std::fs::read(common::fixture("ntfs/testfs1.zst")).unwrap();
    let mut disk = vec![0u8; 8 << 20];
    disk[446 + 4] = 7;
    disk[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    disk[446 + 12..446 + 16].copy_from_slice(&((vol.len() / 512) as u32).to_le_bytes());
    disk[462 + 4] = 7;
    disk[462 + 8..462 + 12].copy_from_slice(&8192u32.to_le_bytes());
    disk[462 + 12..462 + 16].copy_from_slice(&((vol.len() / 512) as u32).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk[2048 * 512..2048 * 512 + vol.len()].copy_from_slice(&vol);
    disk[8192 * 512..8192 * 512 + vol.len()].copy_from_slice(&vol);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("two.raw");
    std::fs::write(&p, &disk).unwrap();
    let out = rehost(&["ls", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("--volume")
            && msg.contains("offset      1048576")
            && msg.contains("offset      4194304"),
        "{msg}"
    );
    // Naming one works.
    let listing = String::from_utf8(ok(&["ls", "--volume", "2", p.to_str().unwrap()])).unwrap();
    assert!(listing.contains("many_subdirs"));
}

#[test]
fn volume_facts_match_ntfsinfo_and_minfo() {
    if !common::have_tool("ntfsinfo") || !common::have_tool("minfo") {
        return;
    }
    let gpt = disk_fixture("gpt.dynamic-1m.vhdx");
    let json: serde_json::Value =
        serde_json::from_slice(&ok(&["volumes", "--json", gpt.to_str().unwrap()])).unwrap();
    let fs = json["filesystems"].as_array().unwrap();
    let ntfs = &fs.iter().find(|f| f["volume"] == 3).unwrap()["facts"]["ntfs"];
    let info = String::from_utf8(common::run(
        Command::new("ntfsinfo")
            .arg("-m")
            .arg(disk_fixture("bare.raw")),
    ))
    .unwrap();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("ntfsinfo has no {name}"))
            .trim()
            .to_string()
    };
    assert_eq!(ntfs["label"], field("Volume Name"));
    assert_eq!(ntfs["version"], field("Volume Version"));
    assert_eq!(
        ntfs["cluster_size"].as_u64().unwrap().to_string(),
        field("Cluster Size")
    );
    assert_eq!(
        format!("{:#06x}", ntfs["volume_flags"].as_u64().unwrap()),
        field("Volume Flags")
    );
    assert_eq!(ntfs["dirty"], false);
    assert_eq!(ntfs["logfile"]["clean"], true);
    let fat = &fs.iter().find(|f| f["volume"] == 1).unwrap()["facts"]["fat"];
    let raw = disk_fixture("gpt.raw");
    let minfo = String::from_utf8(common::run(Command::new("minfo").args([
        "-i",
        &format!("{}@@1048576", raw.display()),
        "::",
    ])))
    .unwrap();
    let serial = minfo
        .lines()
        .find_map(|l| l.strip_prefix("serial number: "))
        .unwrap();
    assert_eq!(fat["serial"].as_str().unwrap(), serial.to_lowercase());
    let label = minfo
        .lines()
        .find_map(|l| l.strip_prefix("disk label="))
        .unwrap();
    assert_eq!(
        fat["label"].as_str().unwrap(),
        label.trim_matches('"').trim_end()
    );
    assert_eq!(fat["fat_type"], "FAT32");
}

/// `rehost cat` of every file of the NTFS volume, in one container format, against icat.
#[test]
fn rehost_cat_of_every_file_matches_icat() {
    if !common::have_tool("fls") || !common::have_tool("icat") {
        return;
    }
    let bare = disk_fixture("bare.raw");
    let image = disk_fixture("mbr.dynamic-1m.vhdx");
    let listing = String::from_utf8(common::run(
        Command::new("fls").args(["-r", "-p"]).arg(&bare),
    ))
    .unwrap();
    let mut n = 0;
    for line in listing.lines() {
        let Some((head, path)) = line.split_once(":\t") else {
            continue;
        };
        if !head.starts_with("r/r") || head.contains('*') || path.contains(':') {
            continue;
        }
        let inode = head.split_whitespace().last().unwrap();
        let want = common::icat(&bare, 0, inode);
        let out = rehost(&["cat", image.to_str().unwrap(), path]);
        if path.starts_with("$Extend/") || path == "$Secure" || path == "$Volume" && want.is_empty()
        {
            // Metafiles without an unnamed $DATA: rehost says so instead of inventing bytes.
            if !out.status.success() {
                continue;
            }
        }
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::assert_same_bytes(&out.stdout, &want, &format!("rehost cat {path}"));
        n += 1;
    }
    assert!(n > 820, "{n} files compared");
}
