//! The GPT writer against outside readers: a table written onto a sparse raw file is what
//! `sgdisk -v` calls clean, and `sgdisk -p`, `sfdisk --json` (512-byte sectors) and
//! `fdisk -b 4096` (4 KiB sectors) list exactly its partitions; rehost's own reader reads
//! them back.

mod common;

use rehost::disk::{Ids, ReadAt};
use rehost::volume::gpt_write::{build, Partition, Table};
use rehost::{Ctx, Layer};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const BASIC: &str = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
const MSR: &str = "e3c9e316-0b5c-4db8-817d-f92df00215ae";
const RECOVERY: &str = "de94bba4-06d1-4d40-a16a-bfd50179d6ac";

fn part(first: u64, last: u64, kind: &str, attributes: u64, name: &str) -> Partition {
    Partition {
        first_lba: first,
        last_lba: last,
        type_guid: kind.parse().unwrap(),
        unique_guid: None,
        attributes,
        name: name.into(),
    }
}

/// Writes `t` onto a new sparse file at `path`; returns the disk and partition GUIDs.
fn write(t: &Table, path: &Path) -> (String, Vec<String>) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(t.disk_size).unwrap();
    let s = build(
        t,
        &mut Ids::new(Some(16)),
        &Ctx::new("disk.raw", Layer::Gpt),
    )
    .unwrap();
    for (at, bytes) in &s.writes {
        f.write_all_at(bytes, *at).unwrap();
    }
    (
        s.disk_guid.to_string(),
        s.unique_guids.iter().map(|g| g.to_string()).collect(),
    )
}

/// A Windows layout: ESP, MSR, the Windows volume, a recovery partition at the end.
fn windows_table(disk_size: u64, ss: u32) -> Table {
    let mib = (1 << 20) / ss as u64;
    let last = disk_size / ss as u64 - 1 - 33;
    Table {
        disk_size,
        sector_size: ss,
        disk_guid: None,
        old_mbr: None,
        partitions: vec![
            part(mib, 101 * mib - 1, ESP, 0, "EFI system partition"),
            part(
                101 * mib,
                117 * mib - 1,
                MSR,
                0,
                "Microsoft reserved partition",
            ),
            part(
                117 * mib,
                last - 600 * mib,
                BASIC,
                0,
                "Basic data partition",
            ),
            part(
                last - 600 * mib + 1,
                last - 100 * mib,
                RECOVERY,
                1 | 1 << 63,
                "Recovery",
            ),
        ],
    }
}

#[test]
fn sgdisk_and_sfdisk_read_what_was_written() {
    if !common::have_tool("sgdisk") || !common::have_tool("sfdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.raw");
    let t = windows_table(4 << 30, 512);
    let (disk_guid, guids) = write(&t, &path);

    let v = Command::new("sgdisk")
        .arg("-v")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{text}");
    assert!(text.contains("No problems found"), "sgdisk -v: {text}");

    let p = String::from_utf8(common::run(Command::new("sgdisk").arg("-p").arg(&path))).unwrap();
    assert!(
        p.contains(&format!(
            "Disk identifier (GUID): {}",
            disk_guid.to_uppercase()
        )),
        "{p}"
    );
    let rows: Vec<Vec<&str>> = p
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{p}");
    for (row, (i, q)) in rows.iter().zip(t.partitions.iter().enumerate()) {
        assert_eq!(row[0], (i + 1).to_string());
        assert_eq!(row[1], q.first_lba.to_string());
        assert_eq!(row[2], q.last_lba.to_string());
    }

    let json: serde_json::Value = serde_json::from_slice(&common::run(
        Command::new("sfdisk").arg("--json").arg(&path),
    ))
    .unwrap();
    let pt = &json["partitiontable"];
    assert_eq!(pt["label"], "gpt");
    assert_eq!(pt["id"].as_str().unwrap().to_lowercase(), disk_guid);
    assert_eq!(pt["sectorsize"], 512);
    assert_eq!(pt["firstlba"], 34);
    assert_eq!(pt["lastlba"], (4u64 << 30) / 512 - 34);
    let parts = pt["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    for ((p, q), g) in parts.iter().zip(&t.partitions).zip(&guids) {
        assert_eq!(p["start"], q.first_lba);
        assert_eq!(p["size"], q.last_lba - q.first_lba + 1);
        assert_eq!(
            p["type"].as_str().unwrap().to_lowercase(),
            q.type_guid.to_string()
        );
        assert_eq!(p["uuid"].as_str().unwrap().to_lowercase(), *g);
        assert_eq!(p["name"], q.name.as_str());
    }
    // The recovery partition's required and no-drive-letter bits.
    let attrs = parts[3]["attrs"].as_str().unwrap();
    assert!(
        attrs.contains("RequiredPartition") && attrs.contains("GUID:63"),
        "{attrs}"
    );

    // rehost's own reader: the same partitions, found through the volume layer.
    let disk = rehost::disk::open(&path, &Default::default()).unwrap();
    let layout = rehost::volume::scan(
        disk.reader() as Arc<dyn ReadAt>,
        512,
        &Ctx::new("disk.raw", Layer::Volume),
    )
    .unwrap();
    assert_eq!(layout.disk_guid.as_deref(), Some(disk_guid.as_str()));
    let ours: Vec<(u64, u64, String)> = layout
        .volumes
        .iter()
        .map(|v| (v.offset, v.size, v.partition_guid.clone().unwrap()))
        .collect();
    let want: Vec<(u64, u64, String)> = t
        .partitions
        .iter()
        .zip(&guids)
        .map(|(q, g)| {
            (
                q.first_lba * 512,
                (q.last_lba - q.first_lba + 1) * 512,
                g.clone(),
            )
        })
        .collect();
    assert_eq!(ours, want);
}

#[test]
fn fdisk_reads_a_4k_sector_table() {
    if !common::have_tool("fdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk4k.raw");
    let t = windows_table(2 << 30, 4096);
    let (disk_guid, _) = write(&t, &path);
    let out = String::from_utf8(common::run(
        Command::new("fdisk").args(["-b", "4096", "-l"]).arg(&path),
    ))
    .unwrap();
    assert!(out.contains("Disklabel type: gpt"), "{out}");
    assert!(
        out.contains(&format!("Disk identifier: {}", disk_guid.to_uppercase())),
        "{out}"
    );
    assert!(
        !out.contains("corrupt") && !out.contains("does not"),
        "{out}"
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with(path.to_str().unwrap()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    for (row, q) in rows.iter().zip(&t.partitions) {
        assert_eq!(row[1], q.first_lba.to_string(), "{out}");
        assert_eq!(row[2], q.last_lba.to_string(), "{out}");
    }
}

/// An MBR disk as Windows 7 setup lays it out (System Reserved, then Windows to the end
/// but the last MiB), made by sfdisk; its volumes' first sectors say NTFS.
fn win7_mbr(path: &Path, size: u64) {
    common::sfdisk_win7_mbr(path, size);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for lba in [2048u64, 206848] {
        let mut vbr = [0u8; 512];
        vbr[3..11].copy_from_slice(b"NTFS    ");
        vbr[510..].copy_from_slice(&[0x55, 0xAA]);
        f.write_all_at(&vbr, lba * 512).unwrap();
    }
}

/// MBR to GPT on a file: scan, plan (System Reserved taken over; then growing the file),
/// write; sgdisk calls it clean and lists the partitions at their old offsets.
#[test]
fn an_mbr_disk_planned_and_written_is_clean_gpt() {
    use rehost::volume::gpt_plan::{plan, EspSource, Profile, Request};
    if !common::have_tool("sgdisk") || !common::have_tool("sfdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for reuse in [true, false] {
        let path = dir.path().join(format!("win7-{reuse}.raw"));
        let size = 2u64 << 30;
        win7_mbr(&path, size);
        let disk = rehost::disk::open(&path, &Default::default()).unwrap();
        let ctx = Ctx::new("win7.raw", Layer::Volume);
        let layout = rehost::volume::scan(disk.reader(), 512, &ctx).unwrap();
        let req = Request {
            disk_size: size,
            esp_size: Profile::builtin().esp_size(512),
            can_grow: true,
            reuse_system_reserved: reuse,
            install_volumes: vec![2],
        };
        let p = plan(&layout, &req).unwrap();
        let want = if reuse {
            EspSource::SystemReserved { volume: 1 }
        } else {
            EspSource::Grown
        };
        assert_eq!(p.esp_source, want, "{}", p.esp_reason);
        drop(disk);
        let mut sector0 = vec![0u8; 512];
        let f = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .open(&path)
            .unwrap();
        f.read_exact_at(&mut sector0, 0).unwrap();
        f.set_len(p.disk_size).unwrap();
        let s = build(
            &p.table(Some(sector0.clone())),
            &mut Ids::new(Some(3)),
            &ctx,
        )
        .unwrap();
        for (at, bytes) in &s.writes {
            f.write_all_at(bytes, *at).unwrap();
        }
        let v = Command::new("sgdisk")
            .arg("-v")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(text.contains("No problems found"), "sgdisk -v: {text}");
        let starts = common::sfdisk_starts(&path);
        if reuse {
            assert_eq!(starts, [2048, 206848]);
        } else {
            assert_eq!(starts, [2048, 206848, size / 512 - 2048]);
        }
        let mut now = vec![0u8; 512];
        f.read_exact_at(&mut now, 0).unwrap();
        assert_eq!(
            now[..444],
            sector0[..444],
            "boot code and disk signature kept"
        );
    }
}
