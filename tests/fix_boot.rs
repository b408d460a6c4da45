//! `rehost fix` of the boot configuration (`boot-config`) and drive letters
//! (`mounted-devices`), one fault image each (testdata/windows, `VARIANTS` in
//! scripts/fixtures/specs.py), by the acceptance pattern:
//!
//! - `--dry-run` plans the rule's change and leaves the image's SHA-256 as it was;
//! - after `--in-place`, `check` says the install boots on the target;
//! - outside readers read the result back as the report says: hivex (`hivexget`,
//!   `hivexregedit --export`) the BCD and SYSTEM hives, mtools and `fsck.vfat -n` the EFI
//!   system partition, ntfs-3g (`ntfscat`, `ntfsinfo`) the NTFS volumes, each volume cut
//!   out of the disk `qemu-img convert` and `sfdisk` give;
//! - `rehost undo` restores the original SHA-256.
//!
//! And the FAT writer on its own against mtools and fsck.vfat.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: [&str; 9] = [
    "qemu-img",
    "sfdisk",
    "hivexget",
    "hivexregedit",
    "mtype",
    "mdir",
    "fsck.vfat",
    "ntfscat",
    "ntfsinfo",
];

fn have_tools() -> bool {
    TOOLS.iter().all(|t| common::have_tool(t))
}

fn rehost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
}

/// The fixture `name` copied into `dir`, to be written.
fn copy(name: &str, dir: &Path) -> PathBuf {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join(format!("testdata/windows/{name}.json")))
            .unwrap(),
    )
    .unwrap();
    let file = spec["image"].as_str().unwrap();
    let src = common::fixture(&format!("windows/{file}.zst"));
    let dst = dir.join(file);
    std::fs::copy(&src, &dst).unwrap();
    dst
}

/// Runs rehost with `args` and parses its JSON output (exit codes 0 and 3 both answer).
fn json(args: &[&str], image: &Path) -> Value {
    let out = rehost().args(args).arg(image).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "rehost {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The disk as raw bytes, through qemu-img.
fn raw(image: &Path) -> Vec<u8> {
    let fmt = if image.extension().is_some_and(|e| e == "vhd") {
        "vpc"
    } else {
        "vhdx"
    };
    let out = image.with_extension("raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", fmt, "-O", "raw"])
            .arg(image)
            .arg(&out),
    );
    let b = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    b
}

/// Volume `n` (from 1) of a raw disk, by sfdisk's reading of its partition table, written
/// to a file beside `at`: (the file, its byte offset on the disk).
fn volume(disk: &[u8], n: usize, at: &Path) -> (PathBuf, u64) {
    let table = at.with_extension("table");
    std::fs::write(&table, disk).unwrap();
    let out = common::run(Command::new("sfdisk").arg("-J").arg(&table));
    std::fs::remove_file(&table).unwrap();
    let j: Value = serde_json::from_slice(&out).unwrap();
    let p = &j["partitiontable"]["partitions"][n - 1];
    let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
    let (offset, len) = (start * 512, size * 512);
    let file = at.with_extension(format!("vol{n}"));
    std::fs::write(&file, &disk[offset as usize..(offset + len) as usize]).unwrap();
    (file, offset)
}

fn ntfscat(vol: &Path, path: &str) -> Vec<u8> {
    common::run(Command::new("ntfscat").arg(vol).arg(path))
}

/// A file of a FAT volume, through mtools.
fn mtype(vol: &Path, path: &str) -> Vec<u8> {
    common::run(
        Command::new("mtype")
            .args(["-i"])
            .arg(vol)
            .arg(format!("::{path}")),
    )
}

/// `fsck.vfat -n` finds nothing to repair.
fn fsck_clean(vol: &Path) {
    let out = Command::new("fsck.vfat")
        .arg("-n")
        .arg(vol)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck.vfat -n: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A value's data as hivexget prints it (raw bytes for binary values, text for strings).
fn hivexget(hive: &[u8], key: &str, value: &str, dir: &Path) -> Vec<u8> {
    let f = dir.join("hive.tmp");
    std::fs::write(&f, hive).unwrap();
    let out = common::run(Command::new("hivexget").arg(&f).arg(key).arg(value));
    std::fs::remove_file(&f).unwrap();
    out
}

/// The whole hive as `hivexregedit --export` writes it.
fn export(hive: &[u8], dir: &Path) -> String {
    let f = dir.join("hive.tmp");
    std::fs::write(&f, hive).unwrap();
    let out = common::run(
        Command::new("hivexregedit")
            .arg("--export")
            .arg(&f)
            .arg("\\"),
    );
    std::fs::remove_file(&f).unwrap();
    String::from_utf8(out).unwrap()
}

/// Bytes as .reg hex (`aa,bb,...`).
fn reg_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn guid(s: &str) -> [u8; 16] {
    uuid::Uuid::parse_str(s).unwrap().to_bytes_le()
}

/// The acceptance run on a copy of `name`: the dry run plans changes of `rules` and
/// writes nothing, the fix in place makes `check` say boots on `target`. Returns the
/// image, its original SHA-256 and the in-place report.
fn fix(name: &str, target: &str, rules: &[&str], dir: &Path) -> (PathBuf, String, Value) {
    let image = copy(name, dir);
    let sha = common::sha256_file(&image);
    let before = json(&["check", "--json", "-t", target], &image);
    assert_ne!(
        before["installs"][0]["verdict"], "boots",
        "{name}: {before}"
    );
    let dry = json(&["fix", "--dry-run", "--json", "-t", target], &image);
    assert_eq!(
        common::sha256_file(&image),
        sha,
        "{name}: the dry run wrote"
    );
    assert_eq!(dry["committed"], false);
    assert_eq!(dry["installs"][0]["after"], "boots", "{name}: {dry}");
    let changes = dry["installs"][0]["changes"].as_array().unwrap();
    for rule in rules {
        assert!(
            changes.iter().any(|c| c["rule"] == *rule),
            "{name}: the dry run plans nothing for {rule}: {dry}"
        );
    }
    let done = json(&["fix", "--in-place", "--json", "-t", target], &image);
    assert_eq!(done["committed"], true, "{name}: {done}");
    assert_ne!(common::sha256_file(&image), sha);
    // What the dry run planned is what was written.
    assert_eq!(
        done["installs"][0]["changes"], dry["installs"][0]["changes"],
        "{name}"
    );
    let after = json(&["check", "--json", "-t", target], &image);
    assert_eq!(after["installs"][0]["verdict"], "boots", "{name}: {after}");
    (image, sha, done)
}

fn undo_restores(image: &Path, sha: &str) {
    common::run(rehost().arg("undo").arg(image));
    assert_eq!(common::sha256_file(image), sha, "undo");
}

/// The changes of `rule` in a report.
fn changes_of<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["installs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["rule"] == rule)
        .collect()
}

#[test]
fn bcd_device_on_the_esp_names_this_disk() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = raw(&common::fixture("windows/ws2019-bcdguid.vhdx.zst"));
    let (image, sha, report) = fix("ws2019-bcdguid", "kvm-sata", &["boot-config"], dir.path());
    let c = changes_of(&report, "boot-config");
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0]["kind"].as_str(), c[0]["hive"].as_str()),
        (Some("registry"), Some("BCD"))
    );
    let disk = raw(&image);
    let (esp, _) = volume(&disk, 1, &dir.path().join("new"));
    let (esp0, _) = volume(&original, 1, &dir.path().join("old"));
    fsck_clean(&esp);
    let (bcd, bcd0) = (
        mtype(&esp, "/EFI/Microsoft/Boot/BCD"),
        mtype(&esp0, "/EFI/Microsoft/Boot/BCD"),
    );
    // Both device elements of the loader name C: (partition 3's GUID) now, nothing else moved.
    let loader = "\\Objects\\{66666666-7777-4888-8999-aaaaaaaaaaaa}\\Elements";
    let disk_guid = guid("33333333-aaaa-4bbb-8ccc-000000000000");
    let c_guid = guid("33333333-aaaa-4bbb-8ccc-000000000003");
    let mut want = vec![0u8; 88];
    want[0x10] = 6;
    want[0x18] = 0x48;
    want[0x20..0x30].copy_from_slice(&c_guid);
    want[0x38..0x48].copy_from_slice(&disk_guid);
    for e in ["11000001", "21000001"] {
        let got = hivexget(&bcd, &format!("{loader}\\{e}"), "Element", dir.path());
        assert_eq!(got, want, "{e}");
    }
    let other = reg_hex(&guid("99999999-aaaa-4bbb-8ccc-000000000009"));
    let (new, old) = (export(&bcd, dir.path()), export(&bcd0, dir.path()));
    assert_eq!(old.matches(&other).count(), 2);
    assert_eq!(new, old.replace(&other, &reg_hex(&c_guid)));
    // The rest of the ESP is as it was.
    assert_eq!(
        mtype(&esp, "/EFI/Microsoft/Boot/bootmgfw.efi"),
        mtype(&esp0, "/EFI/Microsoft/Boot/bootmgfw.efi")
    );
    undo_restores(&image, &sha);
}

#[test]
fn winload_follows_the_firmware() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (image, sha, _) = fix("ws2019-winload", "kvm-sata", &["boot-config"], dir.path());
    let (esp, _) = volume(&raw(&image), 1, &dir.path().join("new"));
    fsck_clean(&esp);
    let bcd = mtype(&esp, "/EFI/Microsoft/Boot/BCD");
    let path = hivexget(
        &bcd,
        "\\Objects\\{66666666-7777-4888-8999-aaaaaaaaaaaa}\\Elements\\12000002",
        "Element",
        dir.path(),
    );
    assert_eq!(
        String::from_utf8_lossy(&path).trim_end(),
        "\\Windows\\system32\\winload.efi"
    );
    undo_restores(&image, &sha);
}

#[test]
fn the_fallback_loader_is_a_copy_of_the_boot_manager() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (image, sha, report) = fix(
        "ws2019-nofallback",
        "kvm-sata",
        &["boot-config"],
        dir.path(),
    );
    let (esp, _) = volume(&raw(&image), 1, &dir.path().join("new"));
    fsck_clean(&esp);
    let fallback = mtype(&esp, "/EFI/Boot/bootx64.efi");
    assert_eq!(fallback, mtype(&esp, "/EFI/Microsoft/Boot/bootmgfw.efi"));
    let put = changes_of(&report, "boot-config");
    assert_eq!(put[0]["kind"], "put");
    assert_eq!(put[0]["file"], "EFI/Boot/bootx64.efi");
    assert_eq!(put[0]["bytes"], fallback.len() as u64);
    let f = dir.path().join("fallback");
    std::fs::write(&f, &fallback).unwrap();
    assert_eq!(put[0]["sha256"].as_str().unwrap(), common::sha256_file(&f));
    // The directory was created: mdir lists it under \EFI.
    let listing = common::run(
        Command::new("mdir")
            .args(["-b", "-i"])
            .arg(&esp)
            .arg("::/EFI"),
    );
    assert!(String::from_utf8_lossy(&listing).contains("/EFI/Boot"));
    undo_restores(&image, &sha);
}

/// The 88-byte device element of an MBR partition.
fn mbr_device(signature: u32, offset: u64) -> Vec<u8> {
    let mut b = vec![0u8; 88];
    b[0x10] = 6;
    b[0x18] = 0x48;
    b[0x20..0x28].copy_from_slice(&offset.to_le_bytes());
    b[0x34] = 1;
    b[0x38..0x3C].copy_from_slice(&signature.to_le_bytes());
    b
}

#[test]
fn a_new_disk_signature_is_written_into_every_bcd_blob_and_the_drive_letter() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = raw(&common::fixture("windows/ws2019-newsig.vhdx.zst"));
    let (image, sha, report) = fix(
        "ws2019-newsig",
        "kvm-sata",
        &["boot-config", "mounted-devices"],
        dir.path(),
    );
    assert!(report["installs"][0]["not_fixed"]
        .as_array()
        .unwrap()
        .is_empty());
    let disk = raw(&image);
    let (c, c_at) = volume(&disk, 1, &dir.path().join("new"));
    let (r, r_at) = volume(&disk, 2, &dir.path().join("new"));
    let (r0, _) = volume(&original, 2, &dir.path().join("old"));
    let (old_sig, new_sig) = (0x2019_b105u32, 0x2019_c10eu32);
    let bcd = ntfscat(&r, "/Boot/BCD");
    let get = |obj: &str, e: &str| {
        hivexget(
            &bcd,
            &format!("\\Objects\\{obj}\\Elements\\{e}"),
            "Element",
            dir.path(),
        )
    };
    let (loader, resume, winre) = (
        "{11111111-2222-4333-8444-555555555555}",
        "{77777777-1111-4222-8333-444444444444}",
        "{77777777-1111-4222-8333-555555555555}",
    );
    assert_eq!(
        get("{9dea862c-5cdd-4e70-acc1-f32b344d4795}", "11000001"),
        mbr_device(new_sig, r_at)
    );
    assert_eq!(
        get("{b2721d73-1db4-4c62-bf78-c548a880142d}", "11000001"),
        mbr_device(new_sig, r_at)
    );
    for obj in [loader, resume] {
        for e in ["11000001", "21000001"] {
            assert_eq!(get(obj, e), mbr_device(new_sig, c_at), "{obj} {e}");
        }
    }
    assert_eq!(
        get("{ae5534e0-a924-466c-b836-758539a3ee3a}", "31000003"),
        mbr_device(new_sig, c_at)
    );
    // WinRE's RAM disk nests C:'s descriptor before the image's path.
    let ram = get(winre, "11000001");
    let nested = &mbr_device(new_sig, c_at)[0x10..0x58];
    let at = ram.windows(nested.len()).position(|w| w == nested).unwrap();
    let path: Vec<u8> = "\\Recovery\\WindowsRE\\Winre.wim"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(&ram[at + 0x48..at + 0x48 + path.len()], &path[..]);
    // Everything else in the store is as it was: the old signature, wherever it was, is
    // the new one, and nothing more changed.
    let (old, new) = (
        export(&ntfscat(&r0, "/Boot/BCD"), dir.path()),
        export(&bcd, dir.path()),
    );
    let (o, n) = (
        reg_hex(&old_sig.to_le_bytes()),
        reg_hex(&new_sig.to_le_bytes()),
    );
    assert_eq!(old.matches(&o).count(), 9);
    assert_eq!(new, old.replace(&o, &n));
    // SYSTEM gives C: to this disk's signature and C:'s start.
    let system = ntfscat(&c, "/Windows/System32/config/SYSTEM");
    let mut letter = new_sig.to_le_bytes().to_vec();
    letter.extend_from_slice(&c_at.to_le_bytes());
    assert_eq!(
        hivexget(&system, "\\MountedDevices", "\\DosDevices\\C:", dir.path()),
        letter
    );
    undo_restores(&image, &sha);
}

/// ws2019-letter: C: names another partition; ws2019-letterd: that, and the install's
/// volume holds D:, which the fix drops.
#[test]
fn the_system_letter_names_the_gpt_partition() {
    if !have_tools() {
        return;
    }
    for name in ["ws2019-letter", "ws2019-letterd"] {
        let dir = tempfile::tempdir().unwrap();
        let (image, sha, report) = fix(name, "kvm-sata", &["mounted-devices"], dir.path());
        let diff = changes_of(&report, "mounted-devices")[0]["diff"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            diff.contains("[HKEY_LOCAL_MACHINE\\SYSTEM\\MountedDevices]"),
            "{diff}"
        );
        let (c, _) = volume(&raw(&image), 3, &dir.path().join("new"));
        let system = ntfscat(&c, "/Windows/System32/config/SYSTEM");
        let mut want = b"DMIO:ID:".to_vec();
        want.extend_from_slice(&guid("33333333-aaaa-4bbb-8ccc-000000000003"));
        assert_eq!(
            hivexget(&system, "\\MountedDevices", "\\DosDevices\\C:", dir.path()),
            want,
            "{name}"
        );
        // The report's diff is the change hivex sees: the new data as .reg hex.
        assert!(diff.contains(&format!(
            "+\"\\\\DosDevices\\\\C:\"=hex:{}",
            &reg_hex(&want)[..36]
        )));
        // One letter names the install's volume: C:.
        let exported = export(&system, dir.path());
        let letters = exported
            .split("\n\n")
            .find(|k| k.starts_with("[\\MountedDevices]"))
            .unwrap();
        assert_eq!(
            letters.matches("DosDevices").count(),
            1,
            "{name}: {letters}"
        );
        if name == "ws2019-letterd" {
            assert!(diff.contains("-\"\\\\DosDevices\\\\D:\""), "{diff}");
        }
        undo_restores(&image, &sha);
    }
}

/// What cannot be fixed is not written: a BIOS layout (MBR) on a UEFI-only target.
#[test]
fn an_unfixable_layout_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy("ws2019-bios", dir.path());
    let sha = common::sha256_file(&image);
    let r = json(
        &["fix", "--in-place", "--json", "-t", "hyperv-gen2"],
        &image,
    );
    assert_eq!(r["committed"], false);
    assert_eq!(r["installs"][0]["after"], "no-boot");
    assert!(r["not_committed"]
        .as_str()
        .unwrap()
        .contains("still does not boot"));
    assert_eq!(common::sha256_file(&image), sha);
}

#[test]
fn boot_ini_names_the_install_partition() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = raw(&common::fixture("windows/xp-bootini.vhd.zst"));
    let (image, sha, report) = fix("xp-bootini", "hyperv-gen1", &["boot-config"], dir.path());
    let (vol, _) = volume(&raw(&image), 1, &dir.path().join("new"));
    let (vol0, _) = volume(&original, 1, &dir.path().join("old"));
    let ini = String::from_utf8(ntfscat(&vol, "/boot.ini")).unwrap();
    let ini0 = String::from_utf8(ntfscat(&vol0, "/boot.ini")).unwrap();
    assert_eq!(ini0.matches("partition(2)").count(), 2);
    assert_eq!(ini, ini0.replace("partition(2)", "partition(1)"));
    assert!(ini.contains("C:\\CMDCONS\\BOOTSECT.DAT") && ini.contains("\r\n"));
    let c = changes_of(&report, "boot-config");
    assert_eq!(c[0]["kind"], "boot.ini");
    let f = dir.path().join("ini");
    std::fs::write(&f, &ini).unwrap();
    assert_eq!(c[0]["sha256"].as_str().unwrap(), common::sha256_file(&f));
    undo_restores(&image, &sha);
}

#[test]
fn xp_ntfs_heads_follow_the_disk_size() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = raw(&common::fixture("windows/xp-heads.vhd.zst"));
    let (image, sha, report) = fix("xp-heads", "hyperv-gen1", &["boot-config"], dir.path());
    let disk = raw(&image);
    let (vol, at) = volume(&disk, 1, &dir.path().join("new"));
    let (_, at0) = volume(&original, 1, &dir.path().join("old"));
    assert_eq!(at, at0);
    // ntfs-3g opens the volume with the new boot sector.
    let info = common::run(Command::new("ntfsinfo").arg("-m").arg(&vol));
    assert!(String::from_utf8_lossy(&info).contains("Volume Name"));
    // The boot sector and its backup (the volume's last sector) differ from before in the
    // head count only, which is 0x40 for this 64 MiB disk (virt-v2v's table).
    let len = std::fs::metadata(&vol).unwrap().len();
    for sector in [at, at + len - 512] {
        let (old, new) = (
            &original[sector as usize..sector as usize + 512],
            &disk[sector as usize..sector as usize + 512],
        );
        assert_eq!(&old[3..11], b"NTFS    ");
        assert_eq!(u16::from_le_bytes([old[0x1A], old[0x1B]]), 16);
        assert_eq!(u16::from_le_bytes([new[0x1A], new[0x1B]]), 0x40);
        let mut expect = old.to_vec();
        expect[0x1A] = 0x40;
        assert_eq!(new, &expect[..], "sector at {sector:#x}");
    }
    let bytes: Vec<&Value> = changes_of(&report, "boot-config");
    assert_eq!(bytes.len(), 2);
    assert!(bytes.iter().all(|c| c["kind"] == "bytes"));
    undo_restores(&image, &sha);
}

/// The FAT writer on volumes mkfs.vfat made (FAT16 and FAT32) and mtools filled: files
/// created in new directories (in the root too), shrunk, grown, moved; a write that does
/// not fit fails and passes nothing on. fsck.vfat finds nothing to repair and mtools reads
/// what was written.
#[test]
fn the_fat_writer_against_mtools() {
    for t in ["mkfs.vfat", "mmd", "mcopy", "mtype", "mdir", "fsck.vfat"] {
        if !common::have_tool(t) {
            return;
        }
    }
    // FAT16 with 2 KiB clusters; FAT32 with 512-byte ones (as the fixtures' ESPs).
    fat_writer_on("16", "4", 16 << 20);
    fat_writer_on("32", "1", 40 << 20);
}

fn fat_writer_on(fat: &str, sectors_per_cluster: &str, size: u64) {
    use rehost::disk::{Memory, Overlay};
    use rehost::fs::fat::write::FatWriter;
    use rehost::{Ctx, Layer};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fat.img");
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    common::run(
        Command::new("mkfs.vfat")
            .args(["-F", fat, "-s", sectors_per_cluster, "-n", "TEST"])
            .arg(&img),
    );
    let (small, big) = (common::pattern(10_000, 7), common::pattern(200_000, 8));
    for (name, bytes) in [("small", &small), ("big", &big)] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    common::run(Command::new("mmd").arg("-i").arg(&img).arg("::/A"));
    common::run(
        Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(dir.path().join("small"))
            .arg("::/A/old.bin"),
    );
    common::run(
        Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(dir.path().join("big"))
            .arg("::/big.bin"),
    );
    let base = std::fs::read(&img).unwrap();
    let ov = Arc::new(Overlay::new(
        Arc::new(Memory::new("fat.img", base.clone())),
        Ctx::new("fat.img", Layer::Raw),
    ));
    let mut w = FatWriter::open(ov.clone(), Ctx::new("fat.img", Layer::Fat)).unwrap();
    let new = common::pattern(50_000, 1);
    let shrunk = common::pattern(3_000, 2);
    let grown = common::pattern(300_000, 3);
    w.put("A/B/C/new file.bin", &new).unwrap();
    w.put("BIG.BIN", &shrunk).unwrap();
    w.replace("a\\old.bin", &grown).unwrap();
    w.rename("A/old.bin", "D/moved.bin").unwrap();
    assert!(w.replace("nothere.bin", b"x").is_err());
    assert!(w.rename("A/B/C/new file.bin", "D/moved.bin").is_err());
    assert_eq!(w.changes(), 4);
    let staged = ov.extents();
    let e = w
        .put("huge.bin", &vec![1u8; size as usize + (1 << 20)])
        .unwrap_err();
    assert!(e.to_string().contains("huge.bin"), "{e}");
    assert_eq!(ov.extents(), staged, "a failed put passed bytes on");
    let mut out = base;
    for (at, b) in staged {
        out[at as usize..at as usize + b.len()].copy_from_slice(&b);
    }
    std::fs::write(&img, &out).unwrap();
    fsck_clean(&img);
    eprintln!("FAT{fat}: fsck.vfat -n clean");
    assert_eq!(mtype(&img, "/A/B/C/new file.bin"), new);
    assert_eq!(mtype(&img, "/big.bin"), shrunk);
    assert_eq!(mtype(&img, "/D/moved.bin"), grown);
    let listing = common::run(
        Command::new("mdir")
            .args(["-b", "-/", "-i"])
            .arg(&img)
            .arg("::/"),
    );
    let listing = String::from_utf8_lossy(&listing);
    assert!(!listing.contains("old.bin"), "{listing}");
    assert!(!listing.contains("huge"), "{listing}");
}

type FatOp = dyn Fn(&mut rehost::fs::fat::write::FatWriter) -> rehost::Result<()>;

/// The FAT writer on damaged volumes: random bytes over the FATs, the root directory and
/// the first clusters of a filled FAT16 volume. Every operation succeeds or fails with an
/// error, never panics or hangs, and one that fails passes no byte on.
#[test]
fn the_fat_writer_on_damaged_volumes() {
    if common::bounded::reran_in_child("the_fat_writer_on_damaged_volumes") {
        return;
    }
    use rehost::disk::{Memory, Overlay, ReadAt};
    use rehost::fs::fat::write::FatWriter;
    use rehost::{Ctx, Layer};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    for t in ["mkfs.vfat", "mmd", "mcopy"] {
        if !common::have_tool(t) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fat.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    common::run(
        Command::new("mkfs.vfat")
            .args(["-F", "16", "-s", "1"])
            .arg(&img),
    );
    common::run(Command::new("mmd").arg("-i").arg(&img).args([
        "::/EFI",
        "::/EFI/Microsoft",
        "::/EFI/Microsoft/Boot",
        "::/EFI/Boot",
    ]));
    for (n, (path, len)) in [
        ("/EFI/Microsoft/Boot/BCD", 12288),
        ("/EFI/Boot/bootx64.efi", 7000),
    ]
    .into_iter()
    .enumerate()
    {
        let f = dir.path().join(format!("f{n}"));
        std::fs::write(&f, common::pattern(len, n as u64 + 1)).unwrap();
        common::run(
            Command::new("mcopy")
                .arg("-i")
                .arg(&img)
                .arg(&f)
                .arg(format!("::{path}")),
        );
    }
    let bytes = std::fs::read(&img).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as u64;
    // Where the damage goes: the start of each FAT, of the root directory and of the data
    // (the clusters in use), the region's size.
    let fat1 = u16_at(14) * 512;
    let fat2 = fat1 + u16_at(22) * 512;
    let root = fat2 + u16_at(22) * 512;
    let data = root + u16_at(17) * 32;
    let hot = [(fat1, 256), (fat2, 256), (root, 512), (data, 32 << 10)];
    let base: Arc<dyn ReadAt> = Arc::new(Memory::new("fat.img", bytes));
    let mut rng = common::Rng(0x5eed_fa75);
    let (mut opened, mut done, mut failed) = (0, 0, 0);
    for round in 0..300 {
        let damaged = Arc::new(Overlay::new(base.clone(), Ctx::new("fat.img", Layer::Raw)));
        for _ in 0..1 + rng.below(8) {
            let (start, len) = hot[rng.below(hot.len() as u64) as usize];
            let at = start + rng.below(len);
            let n = 1 + rng.below(32) as usize;
            rehost::disk::WriteAt::write_at(&*damaged, at, &rng.bytes(n)).unwrap();
        }
        let started = Instant::now();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let Ok(mut w) = FatWriter::open(damaged.clone(), Ctx::new("fat.img", Layer::Fat))
            else {
                return (0, 0, 0);
            };
            let (mut ok, mut err) = (0, 0);
            let ops: [&FatOp; 3] = [
                &|w| w.put("EFI/Boot/bootx64.efi", &[7u8; 3000]),
                &|w| w.put("EFI/New/dir/file.bin", &[9u8; 5000]),
                &|w| w.replace("EFI/Microsoft/Boot/BCD", &[1u8; 20000]),
            ];
            for op in ops {
                let before = damaged.extents();
                match op(&mut w) {
                    Ok(()) => ok += 1,
                    Err(_) => {
                        err += 1;
                        assert_eq!(damaged.extents(), before, "a failed operation wrote");
                    }
                }
            }
            (1, ok, err)
        }));
        let (o, ok, err) = ran.unwrap_or_else(|_| panic!("round {round} panicked"));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "round {round} took {:?}",
            started.elapsed()
        );
        opened += o;
        done += ok;
        failed += err;
    }
    eprintln!("300 damaged volumes: {opened} opened, {done} operations done, {failed} refused");
    assert!(opened > 0 && done > 0 && failed > 0);
}

#[test]
fn a_bcd_fix_goes_to_the_store_it_was_found_in_when_there_are_two() {
    // The Server 2019 image whose ESP BCD names another partition, with a copy of that BCD
    // put on C: as \Boot\BCD: two stores. The fix rewrites the one the findings name.
    let dir = tempfile::tempdir().unwrap();
    let image = copy("ws2019-bcdguid", dir.path());
    let bcd = dir.path().join("bcd.copy");
    let out = rehost()
        .args(["cat", "--volume", "1"])
        .arg(&image)
        .arg("/EFI/Microsoft/Boot/BCD")
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&bcd, &out.stdout).unwrap();
    let put = rehost()
        .arg("put")
        .arg(&image)
        .arg(&bcd)
        .args(["\\Boot\\BCD", "--volume", "3", "--in-place"])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    std::fs::remove_file(format!("{}.rehost-undo", image.display())).unwrap();
    let r = json(
        &["fix", "-t", "hyperv-gen2", "--in-place", "--json"],
        &image,
    );
    assert_eq!(r["committed"], true, "{r:#}");
    assert!(
        changes_of(&r, "boot-config")
            .iter()
            .any(|c| c["hive"] == "BCD"),
        "{r:#}"
    );
    let check = json(&["check", "-t", "hyperv-gen2", "--json"], &image);
    assert_eq!(check["installs"][0]["verdict"], "boots", "{check:#}");
    // The copy on C: is as it was put there.
    let after = rehost()
        .args(["cat", "--volume", "3"])
        .arg(&image)
        .arg("/Boot/BCD")
        .output()
        .unwrap();
    assert!(after.stdout == std::fs::read(&bcd).unwrap());
}
