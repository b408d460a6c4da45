//! Growing a disk and writing outside its volumes, staged and journaled, in each container
//! rehost writes: an MBR disk as Windows 7 lays it out (System Reserved, Windows to the last
//! MiB) converted to GPT with its EFI system partition in space added at the end. The
//! container then has the new size (qemu-img info), its GPT is what `sgdisk -v` calls clean,
//! the ESP is what `fsck.vfat -n` finds nothing to repair in, the volumes' bytes are
//! unchanged, and undo gives back the original file, size and SHA-256 (raw, fixed and
//! dynamic VHD, dynamic and fixed VHDX, qcow2 version 3 and 2; `qemu-img check` also calls
//! the VHDX and qcow2 clean). A dynamic VHD whose table has no room, and a qcow2 whose L1
//! table has none, are refused with the reason and left as they were.

mod common;

use rehost::disk::{self, Ids, ReadAt};
use rehost::fs::fat::format::{format, Options};
use rehost::fs::fat::write::FatWriter;
use rehost::fs::staged::Mode;
use rehost::fs::Image;
use rehost::volume::gpt_plan::{plan, EspSource, Profile, Request};
use rehost::volume::gpt_write::build;
use rehost::{Ctx, Layer};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const MIB: u64 = 1 << 20;

/// A raw MBR disk of `size` bytes: System Reserved (100 MiB, active) and Windows, each
/// with a recognisable first sector and a pattern at its end.
fn mbr_disk(path: &Path, size: u64) {
    let end = common::sfdisk_win7_mbr(path, size);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for (lba, last) in [(2048u64, 206847u64), (206848, end - 1)] {
        let mut vbr = [0u8; 512];
        vbr[3..11].copy_from_slice(b"NTFS    ");
        vbr[510..].copy_from_slice(&[0x55, 0xAA]);
        f.write_all_at(&vbr, lba * 512).unwrap();
        f.write_all_at(&common::pattern(4096, lba), (last - 7) * 512)
            .unwrap();
    }
}

/// The disk as raw bytes, through qemu-img.
fn to_raw(image: &Path, fmt: &str, out: &Path) {
    let _ = std::fs::remove_file(out);
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", fmt, "-O", "raw"])
            .arg(image)
            .arg(out),
    );
}

fn virtual_size(image: &Path, fmt: &str) -> u64 {
    let out = common::run(
        Command::new("qemu-img")
            .args(["info", "--output=json", "-f", fmt])
            .arg(image),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

/// `fmt` is qemu-img's name; `opts` its creation options.
fn make(dir: &Path, fmt: &str, opts: &str, size: u64) -> PathBuf {
    let raw = dir.join("src.raw");
    mbr_disk(&raw, size);
    if fmt == "raw" {
        return raw;
    }
    let out = dir.join(format!("disk.{fmt}"));
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", fmt, "-o", opts])
            .arg(&raw)
            .arg(&out),
    );
    out
}

/// Converts the image in place to GPT with a grown ESP holding one file; returns the new
/// size and the ESP's byte offset.
fn convert(image: &Path, mode: Mode) -> rehost::Result<(u64, u64, Image)> {
    let img = Image::open_staged(image, mode)?;
    let req = Request {
        disk_size: img.disk_size(),
        esp_size: Profile::builtin().esp_size(512),
        can_grow: true,
        reuse_system_reserved: false,
        install_volumes: vec![2],
    };
    let p = plan(img.layout(), &req).unwrap();
    assert_eq!(p.esp_source, EspSource::Grown, "{}", p.esp_reason);
    let new_size = img.grow(p.grow_by)?;
    assert_eq!(new_size, p.disk_size);
    let mut sector0 = vec![0u8; 512];
    img.reader().read_at(0, &mut sector0)?;
    let ctx = Ctx::new("disk", Layer::Gpt);
    let s = build(&p.table(Some(sector0)), &mut Ids::new(Some(5)), &ctx)?;
    for (at, bytes) in &s.writes {
        img.write_outside(*at, bytes)?;
    }
    let esp = p.esp().unwrap();
    let (at, len) = (
        esp.first_lba * 512,
        (esp.last_lba - esp.first_lba + 1) * 512,
    );
    let win = Arc::new(img.outside_window(at, len, Layer::Fat)?);
    let opts = Options {
        sector_size: 512,
        label: "SYSTEM".into(),
        volume_id: 0x1234_abcd,
        hidden_sectors: esp.first_lba as u32,
    };
    format(win.clone(), &opts, &ctx)?;
    let mut w = FatWriter::open(win, ctx)?;
    w.put("EFI/Boot/bootx64.efi", &common::pattern(300_000, 9))?;
    // The staged disk scanned again: GPT, the two volumes and the ESP.
    let staged = rehost::volume::scan(img.reader(), 512, &Ctx::new("disk", Layer::Volume))?;
    assert_eq!(staged.partitioning, rehost::volume::Partitioning::Gpt);
    let got: Vec<(u64, rehost::volume::Content)> = staged
        .volumes
        .iter()
        .map(|v| (v.offset, v.content))
        .collect();
    use rehost::volume::Content::{Fat32, Ntfs};
    assert_eq!(got, [(MIB, Ntfs), (101 * MIB, Ntfs), (at, Fat32)]);
    assert_eq!(img.layout().partitioning, rehost::volume::Partitioning::Mbr);
    Ok((new_size, at, img))
}

#[test]
fn grown_gpt_disks_check_clean_and_undo_restores_them() {
    for t in ["qemu-img", "sfdisk", "sgdisk", "fsck.vfat"] {
        if !common::have_tool(t) {
            return;
        }
    }
    let size = 300 * MIB;
    for (fmt, opts) in [
        ("raw", ""),
        ("vpc", "subformat=fixed,force_size=on"),
        ("vpc", "subformat=dynamic,force_size=on"),
        ("vhdx", "subformat=dynamic"),
        ("vhdx", "subformat=dynamic,block_size=1M"),
        ("vhdx", "subformat=fixed"),
        ("qcow2", "cluster_size=65536"),
        ("qcow2", "compat=0.10"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let image = make(dir.path(), fmt, opts, size);
        let before = common::sha256_file(&image);
        let len_before = std::fs::metadata(&image).unwrap().len();
        let orig_raw = dir.path().join("orig.raw");
        to_raw(&image, fmt, &orig_raw);

        // A dry run stages it all and writes nothing.
        let (_, _, img) = convert(&image, Mode::DryRun).unwrap();
        let out = img.finish().unwrap();
        assert!(out.commit.is_none() && out.staged_bytes > 100 * MIB / 100);
        assert_eq!(out.grown_to, Some(size + 100 * MIB));
        assert_eq!(
            common::sha256_file(&image),
            before,
            "{fmt} {opts}: dry run wrote"
        );

        // Into a new image: the source stays as it was, the new one has the new size.
        let copy = dir.path().join(format!("copy.{fmt}"));
        let (_, _, img) = convert(&image, Mode::Output(copy.clone())).unwrap();
        img.finish().unwrap().commit.expect("written");
        assert_eq!(
            common::sha256_file(&image),
            before,
            "{fmt} {opts}: source written"
        );
        assert_eq!(
            virtual_size(&copy, fmt),
            size + 100 * MIB,
            "{fmt} {opts}: new image"
        );
        if fmt == "vhdx" || fmt == "qcow2" {
            common::run(
                Command::new("qemu-img")
                    .args(["check", "-f", fmt])
                    .arg(&copy),
            );
        }
        std::fs::remove_file(&copy).unwrap();

        let (new_size, esp_at, img) = convert(&image, Mode::InPlace).unwrap();
        let c = img.finish().unwrap().commit.expect("committed");
        assert!(c.notes.iter().any(|n| n.contains("grows")), "{:?}", c.notes);
        assert_eq!(virtual_size(&image, fmt), new_size, "{fmt} {opts}");
        assert_eq!(new_size, size + 100 * MIB);
        if fmt == "vhdx" || fmt == "qcow2" {
            common::run(
                Command::new("qemu-img")
                    .args(["check", "-f", fmt])
                    .arg(&image),
            );
        }
        let raw = dir.path().join("after.raw");
        to_raw(&image, fmt, &raw);
        let v = Command::new("sgdisk").arg("-v").arg(&raw).output().unwrap();
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(
            text.contains("No problems found"),
            "{fmt} {opts}: sgdisk -v: {text}"
        );
        let starts = common::sfdisk_starts(&raw);
        assert_eq!(starts, [2048, 206848, esp_at / 512]);
        // The volumes' bytes are as they were; the ESP is clean FAT32.
        let (a, b) = (
            std::fs::File::open(&orig_raw).unwrap(),
            std::fs::File::open(&raw).unwrap(),
        );
        let mut x = vec![0u8; (size - 2 * MIB) as usize];
        let mut y = vec![0u8; x.len()];
        a.read_exact_at(&mut x, MIB).unwrap();
        b.read_exact_at(&mut y, MIB).unwrap();
        assert!(x == y, "{fmt} {opts}: the volumes changed");
        let mut esp = vec![0u8; (100 * MIB) as usize];
        b.read_exact_at(&mut esp, esp_at).unwrap();
        let esp_file = dir.path().join("esp.img");
        std::fs::write(&esp_file, &esp).unwrap();
        let f = Command::new("fsck.vfat")
            .arg("-n")
            .arg(&esp_file)
            .output()
            .unwrap();
        assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stdout));
        if common::have_tool("mtype") {
            let got = common::run(
                Command::new("mtype")
                    .arg("-i")
                    .arg(&esp_file)
                    .arg("::/EFI/Boot/bootx64.efi"),
            );
            assert!(got == common::pattern(300_000, 9));
        }

        let r = disk::undo(&image, None).unwrap();
        assert_eq!(r.generations.len(), 1);
        assert_eq!(std::fs::metadata(&image).unwrap().len(), len_before);
        assert_eq!(common::sha256_file(&image), before, "{fmt} {opts}: undo");
        eprintln!(
            "{fmt} {opts}: grown {} -> {} bytes, sgdisk -v clean, fsck.vfat clean, undo restored",
            len_before, c.len_after
        );
    }
}

#[test]
fn containers_that_cannot_grow_are_refused_and_untouched() {
    if !common::have_tool("qemu-img") || !common::have_tool("sfdisk") {
        return;
    }
    for (fmt, opts, size, why) in [
        // 256 MiB of 2 MiB blocks: a BAT of 128 entries fills its one sector.
        (
            "vpc",
            "subformat=dynamic,force_size=on",
            256 * MIB,
            "room for 128 entries",
        ),
        // 512-byte clusters: an L1 entry maps 32 KiB, and 256 MiB fill the L1 table's
        // clusters exactly.
        (
            "qcow2",
            "cluster_size=512",
            256 * MIB,
            "rehost does not move the table",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let image = make(dir.path(), fmt, opts, size);
        let before = common::sha256_file(&image);
        for mode in [Mode::DryRun, Mode::InPlace] {
            let e = match convert(&image, mode) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{fmt}: grown"),
            };
            assert!(e.contains("cannot grow") && e.contains(why), "{e}");
        }
        assert_eq!(common::sha256_file(&image), before);
        assert!(!disk::journal::journal_path(&image).exists());
    }
    let dir = tempfile::tempdir().unwrap();
    let image = make(dir.path(), "raw", "", 128 * MIB);
    let img = Image::open_staged(&image, Mode::InPlace).unwrap();
    let e = img.grow(1000).unwrap_err().to_string();
    assert!(e.contains("not a whole number of sectors"), "{e}");
    assert_eq!(img.disk_size(), 128 * MIB);
    let e = img.write_outside(MIB, &[0; 512]).unwrap_err().to_string();
    assert!(e.contains("reach into volume 1"), "{e}");
    let e = img
        .write_outside(128 * MIB, &[0; 512])
        .unwrap_err()
        .to_string();
    assert!(e.contains("past the end"), "{e}");
    // Growth alone, nothing written: still committed, and undone.
    let before = common::sha256_file(&image);
    assert_eq!(img.grow(MIB).unwrap(), 129 * MIB);
    let c = img
        .finish()
        .unwrap()
        .commit
        .expect("the growth is committed");
    assert_eq!((c.len_before, c.len_after), (128 * MIB, 129 * MIB));
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 129 * MIB);
    disk::undo(&image, None).unwrap();
    assert_eq!(common::sha256_file(&image), before);
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 128 * MIB);
}

/// A commit that grows the disk, stopped before each of its steps (a panic from the commit's
/// observer, in this process): opening the image for writing again leaves it with its old
/// bytes and length (rolled back) or those of the complete commit (stopped after its journal
/// said so, and then undone to the old ones), in every container that grows.
#[test]
fn a_growth_interrupted_at_any_step_rolls_back() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let size = 16 * MIB;
    // The stops are panics of this test's own: not worth a message each.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"stopped") {
            quiet(info);
        }
    }));
    for (fmt, opts) in [
        ("raw", ""),
        ("vpc", "subformat=fixed,force_size=on"),
        ("vpc", "subformat=dynamic,force_size=on"),
        ("vhdx", "subformat=dynamic,block_size=1M"),
        ("vhdx", "subformat=fixed,block_size=1M"),
        ("qcow2", "cluster_size=65536"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("src.raw");
        std::fs::write(&raw, common::pattern(size as usize, 3)).unwrap();
        let image = if fmt == "raw" {
            raw
        } else {
            let out = dir.path().join(format!("disk.{fmt}"));
            common::run(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", fmt, "-o", opts])
                    .arg(&raw)
                    .arg(&out),
            );
            out
        };
        let before = common::sha256_file(&image);
        let len = std::fs::metadata(&image).unwrap().len();
        let new = common::pattern(70_000, 4);
        let stage = |path: &Path| {
            let s = disk::open_for_write(path, &disk::WriteOptions::in_place()).unwrap();
            s.grow(size + 3 * MIB).unwrap();
            use rehost::disk::WriteAt;
            s.overlay().write_at(size + MIB + 512, &new).unwrap();
            s.overlay().write_at(4096, &new[..512]).unwrap();
            s
        };
        // The complete commit, on a copy.
        let done = dir.path().join(format!("done.{fmt}"));
        std::fs::copy(&image, &done).unwrap();
        let commit = disk::CommitOptions {
            observer: None,
            seed: Some(1),
            vmdk_adapter: None,
        };
        stage(&done).commit(&commit).unwrap();
        let after = (
            std::fs::metadata(&done).unwrap().len(),
            common::sha256_file(&done),
        );
        let (mut stopped, mut rolled_back) = (0, 0);
        for at in 0.. {
            let s = stage(&image);
            let observer = move |step: &disk::Step| {
                if step.number == at {
                    panic!("stopped");
                }
            };
            let commit = disk::CommitOptions {
                observer: Some(&observer),
                seed: Some(1),
                vmdk_adapter: None,
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.commit(&commit)));
            match r {
                Ok(done) => {
                    done.unwrap();
                    break;
                }
                Err(_) => stopped += 1,
            }
            // Opening for writing rolls an interrupted commit back; one stopped after its
            // journal said complete stays committed.
            drop(disk::open_for_write(&image, &disk::WriteOptions::in_place()).unwrap());
            let now = (
                std::fs::metadata(&image).unwrap().len(),
                common::sha256_file(&image),
            );
            if now == (len, before.clone()) {
                rolled_back += 1;
                continue;
            }
            assert_eq!(now, after, "{fmt} {opts}: step {at} left neither image");
            disk::undo(&image, None).unwrap();
            assert_eq!(common::sha256_file(&image), before, "{fmt} {opts}: undo");
        }
        assert_eq!(
            (
                std::fs::metadata(&image).unwrap().len(),
                common::sha256_file(&image)
            ),
            after
        );
        assert!(
            rolled_back > 3,
            "{fmt}: {rolled_back} of {stopped} stops rolled back"
        );
        let d = disk::open(&image, &Default::default()).unwrap();
        assert_eq!(d.size(), size + 3 * MIB);
        let mut got = vec![0u8; new.len()];
        d.reader().read_at(size + MIB + 512, &mut got).unwrap();
        assert!(got == new);
        eprintln!(
            "{fmt} {opts}: stopped at each of {stopped} steps: {rolled_back} rolled back, \
             the others complete (and undone)"
        );
    }
}
