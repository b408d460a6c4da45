//! Files written into images end to end: seeded sequences of put / extend / truncate /
//! rm / mv through the NTFS writer on the fixture disk in each container format (raw,
//! fixed and dynamic VHD, fixed and dynamic VHDX), committed in place behind the undo
//! journal; then qemu-img converts the image to raw and ntfs-3g (ntfsls, ntfscat, ntfsfix,
//! ntfsresize) and the Sleuth Kit (fls, icat) must read exactly the model's tree and bytes,
//! `qemu-img check` must pass on the VHDX, and `rehost undo` must bring back the image's
//! SHA-256. The same for 64 MiB files and a 5,000-entry directory on a fresh mkntfs volume
//! in each container (qemu-img has no check for VHD). The commands (`rehost put`, `rm`, `mv`, `--dry-run`, `--output`) are checked too.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use common::Rng;
use harness::{check_volume, join, Model};
use rehost::disk;
use rehost::fs::ntfs::write::WriteOptions;
use rehost::fs::staged::Mode;
use std::path::{Path, PathBuf};
use std::process::Command;

const VOLUME: u32 = 1;

fn opts() -> WriteOptions {
    WriteOptions {
        time: Some(133_500_000_000_000_000),
        ..WriteOptions::default()
    }
}

fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(common::disk_fixture(name), &to).unwrap();
    to
}

/// The NTFS volume of an image, read-only.
fn reader(image: &Path) -> rehost::fs::ntfs::Ntfs {
    let ctx = rehost::Ctx::new("x", rehost::Layer::Volume);
    let d = disk::open(image, &Default::default()).unwrap();
    let layout = rehost::volume::scan(d.reader(), 512, &ctx).unwrap();
    let v = layout.volumes.iter().find(|v| v.index == VOLUME).unwrap();
    let dev = rehost::volume::open_volume(d.reader(), v, &ctx).unwrap();
    rehost::fs::ntfs::Ntfs::open(std::sync::Arc::new(dev), ctx).unwrap()
}

/// `ops` seeded operations on the volume, the model kept in step.
fn random_ops(
    w: &mut rehost::fs::ntfs::write::Writer,
    m: &mut Model,
    rng: &mut Rng,
    ops: usize,
    big: usize,
) {
    let mut n = 0u64;
    for step in 0..ops {
        let files = m.user_files();
        let pick = |rng: &mut Rng| {
            files
                .get(rng.below(files.len().max(1) as u64) as usize)
                .cloned()
        };
        n += 1;
        match rng.below(10) {
            0..=3 => {
                let dirs = m.user_dirs();
                let dir = dirs[rng.below(dirs.len() as u64) as usize].clone();
                let path = join(&dir, &format!("put-{step}-{n}.bin"));
                let len = match rng.below(6) {
                    0 => 0,
                    1 => rng.below(700),
                    2 => rng.below(5000),
                    3 => rng.below(70_000),
                    4 => rng.below(600_000),
                    _ => big as u64,
                } as usize;
                let data = common::pattern(len, rng.next());
                let r = w
                    .create(&path, &data)
                    .unwrap_or_else(|e| panic!("step {step}: put {path}: {e}"));
                m.files.insert(path.clone(), (r, data));
                m.touched.insert(path);
            }
            4..=5 => {
                let Some(p) = pick(rng) else { continue };
                let len = m.files[&p].1.len() as u64;
                let new = if rng.below(2) == 0 {
                    len + rng.below(300_000)
                } else {
                    rng.below(len + 1)
                };
                w.set_len(&p, new)
                    .unwrap_or_else(|e| panic!("step {step}: set_len {p}: {e}"));
                m.files.get_mut(&p).unwrap().1.resize(new as usize, 0);
                m.touched.insert(p);
            }
            6..=7 => {
                let Some(p) = pick(rng) else { continue };
                if !m.touched.contains(&p) && rng.below(3) != 0 {
                    continue;
                }
                w.delete(&p)
                    .unwrap_or_else(|e| panic!("step {step}: rm {p}: {e}"));
                m.files.remove(&p);
                m.touched.remove(&p);
            }
            _ => {
                let Some(p) = pick(rng) else { continue };
                let to = format!("mv-{step}-{n}.bin");
                w.rename(&p, &to)
                    .unwrap_or_else(|e| panic!("step {step}: mv {p} {to}: {e}"));
                let v = m.files.remove(&p).unwrap();
                m.touched.remove(&p);
                m.files.insert(to.clone(), v);
                m.touched.insert(to);
            }
        }
    }
}

fn sequence_on(suffix: &str, fmt: &str, seed: u64, ops: usize, big: usize, wide_dir: usize) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("mbr.{suffix}");
    let image = copy_fixture(&name, dir.path());
    let before = common::sha256_file(&image);
    let mut model = Model::read(reader(&image));
    let s = rehost::fs::Image::open_staged(&image, Mode::InPlace).unwrap();
    let mut w = s.writer(VOLUME, opts()).unwrap();
    let mut rng = Rng(seed);
    random_ops(&mut w, &mut model, &mut rng, ops, big);
    for i in 0..wide_dir {
        let path = format!("many/entry-{i:05}-with-a-long-name.txt");
        let data = common::pattern(i % 900, i as u64);
        let r = w.create(&path, &data).unwrap();
        model.files.insert(path.clone(), (r, data));
        if i % 97 == 0 {
            model.touched.insert(path);
        }
    }
    drop(w);
    let out = s.finish().unwrap();
    let c = out.commit.expect("committed");
    assert!(c.journal_bytes > 0 && c.bytes_written > 0);
    if !common::have_tool("qemu-img") {
        return;
    }
    if fmt == "vhdx" {
        common::run(
            Command::new("qemu-img")
                .args(["check", "-f", "vhdx"])
                .arg(&image),
        );
    }
    let vol = common::partition_file(&image, 1, dir.path()).0;
    check_volume(&vol, &model, 20, &name);
    let r = disk::undo(&image, None).unwrap();
    assert_eq!(r.generations.len(), 1);
    assert_eq!(
        common::sha256_file(&image),
        before,
        "{name}: undo did not restore the image"
    );
}

#[test]
fn random_sequences_in_raw_images() {
    sequence_on("raw", "raw", 0x11, 40, 3 << 20, 0);
}

#[test]
fn random_sequences_in_fixed_vhd() {
    sequence_on("fixed.vhd", "vpc", 0x12, 40, 2 << 20, 0);
}

#[test]
fn random_sequences_in_dynamic_vhd() {
    sequence_on("dynamic.vhd", "vpc", 0x13, 40, 4 << 20, 0);
}

#[test]
fn random_sequences_in_fixed_vhdx() {
    sequence_on("fixed.vhdx", "vhdx", 0x14, 40, 2 << 20, 0);
}

#[test]
fn random_sequences_and_a_split_index_in_dynamic_vhdx() {
    // /many (the fixture's 800-entry directory) grows by 1,200 entries: its index splits.
    sequence_on("dynamic-1m.vhdx", "vhdx", 0x15, 40, 3 << 20, 1_200);
}

/// A 192 MiB MBR disk whose one NTFS volume mkntfs made, in container `fmt` (through
/// qemu-img): room for the 64 MiB files the fixture disk is too small for.
fn large_disk(dir: &Path, fmt: &str, qemu_opts: &str, name: &str) -> PathBuf {
    const START: u64 = 2048;
    let vol = dir.join("fresh.ntfs");
    let sectors: u64 = 192 * 2048 - START;
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(sectors * 512)
        .unwrap();
    common::run(
        Command::new("mkntfs")
            .args(["-F", "-Q", "-q", "-s", "512", "-c", "4096", "-p", "2048"])
            .args(["-H", "255", "-S", "63", "-L", "LARGE"])
            .arg(&vol),
    );
    let mut disk = vec![0u8; (START * 512) as usize];
    let e = &mut disk[446..462];
    e[0] = 0x80;
    e[4] = 0x07;
    e[8..12].copy_from_slice(&(START as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    disk[440..444].copy_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xaa;
    disk.extend(std::fs::read(&vol).unwrap());
    std::fs::remove_file(&vol).unwrap();
    let raw = dir.join("large.raw");
    std::fs::write(&raw, &disk).unwrap();
    if fmt == "raw" {
        return raw;
    }
    let out = dir.join(name);
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", fmt, "-o", qemu_opts])
            .arg(&raw)
            .arg(&out),
    );
    std::fs::remove_file(&raw).unwrap();
    out
}

/// 64 MiB files (one extended past its allocation, one truncated), an empty one, and 5,000
/// entries in the root directory (its index split many times, some entries then removed
/// and renamed), committed in place into a fresh volume in container `fmt`; ntfs-3g and
/// the Sleuth Kit read exactly the model; `qemu-img check` passes on VHDX; undo restores.
fn large_files_on(fmt: &str, qemu_opts: &str, name: &str) {
    for tool in ["mkntfs", "qemu-img"] {
        if !common::have_tool(tool) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let image = large_disk(dir.path(), fmt, qemu_opts, name);
    let before = common::sha256_file(&image);
    let mut model = Model::read(reader(&image));
    let s = rehost::fs::Image::open_staged(&image, Mode::InPlace).unwrap();
    let mut w = s.writer(VOLUME, opts()).unwrap();
    let put = |w: &mut rehost::fs::ntfs::write::Writer, m: &mut Model, p: &str, d: Vec<u8>| {
        let r = w
            .create(p, &d)
            .unwrap_or_else(|e| panic!("{name}: put {p}: {e}"));
        m.files.insert(p.to_string(), (r, d));
        m.touched.insert(p.to_string());
    };
    put(&mut w, &mut model, "big.bin", common::pattern(64 << 20, 1));
    put(
        &mut w,
        &mut model,
        "second.bin",
        common::pattern(64 << 20, 2),
    );
    put(&mut w, &mut model, "empty.bin", Vec::new());
    let grown = (64 << 20) + 300_001;
    w.set_len("big.bin", grown as u64).unwrap();
    model.files.get_mut("big.bin").unwrap().1.resize(grown, 0);
    w.set_len("second.bin", 7_000_003).unwrap();
    model
        .files
        .get_mut("second.bin")
        .unwrap()
        .1
        .truncate(7_000_003);
    for i in 0..5_000usize {
        let path = format!("entry-{i:05}-in-a-wide-directory.txt");
        let r = w
            .create(&path, &common::pattern(i % 1_300, i as u64))
            .unwrap();
        model
            .files
            .insert(path.clone(), (r, common::pattern(i % 1_300, i as u64)));
        if i % 7 == 0 {
            w.delete(&path).unwrap();
            model.files.remove(&path);
        } else if i % 11 == 0 {
            let to = format!("renamed-{i:05}.txt");
            w.rename(&path, &to).unwrap();
            let v = model.files.remove(&path).unwrap();
            model.files.insert(to.clone(), v);
            model.touched.insert(to);
        } else if i % 499 == 0 {
            model.touched.insert(path);
        }
    }
    drop(w);
    let c = s.finish().unwrap().commit.expect("committed");
    assert!(
        c.bytes_written > 128 << 20,
        "{name}: {} bytes",
        c.bytes_written
    );
    if fmt == "vhdx" {
        common::run(
            Command::new("qemu-img")
                .args(["check", "-f", "vhdx"])
                .arg(&image),
        );
    }
    let vol = common::partition_file(&image, 1, dir.path()).0;
    check_volume(&vol, &model, 30, name);
    disk::undo(&image, None).unwrap();
    assert_eq!(
        common::sha256_file(&image),
        before,
        "{name}: undo did not restore the image"
    );
}

#[test]
fn large_files_and_a_wide_directory_in_a_raw_image() {
    large_files_on("raw", "", "large.raw");
}

#[test]
fn large_files_and_a_wide_directory_in_a_fixed_vhd() {
    large_files_on("vpc", "subformat=fixed,force_size=on", "large.vhd");
}

#[test]
fn large_files_and_a_wide_directory_in_a_dynamic_vhd() {
    large_files_on("vpc", "subformat=dynamic,force_size=on", "large.vhd");
}

#[test]
fn large_files_and_a_wide_directory_in_a_fixed_vhdx() {
    large_files_on("vhdx", "subformat=fixed", "large.vhdx");
}

#[test]
fn large_files_and_a_wide_directory_in_a_dynamic_vhdx() {
    large_files_on("vhdx", "subformat=dynamic,block_size=1M", "large.vhdx");
}

fn rehost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_write_commands_stage_show_commit_and_undo() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("mbr.dynamic.vhd", dir.path());
    let img = image.to_str().unwrap();
    let before = common::sha256_file(&image);
    let local = dir.path().join("viostor.sys");
    std::fs::write(&local, common::pattern(40_000, 7)).unwrap();
    let l = local.to_str().unwrap();
    // No mode: refused as a usage error, and told which to choose.
    let out = rehost(&["put", img, l, "/viostor.sys"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dry-run"));
    // A dry run stages and says so, and writes nothing.
    let out = rehost(&["put", img, l, "/viostor.sys", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dry run: nothing written"));
    assert_eq!(common::sha256_file(&image), before);
    // --output: a new image with the file; the source untouched.
    let new = dir.path().join("new.vhd");
    assert!(rehost(&[
        "put",
        img,
        l,
        "/viostor.sys",
        "--output",
        new.to_str().unwrap()
    ])
    .status
    .success());
    assert_eq!(common::sha256_file(&image), before);
    let got = rehost(&["cat", new.to_str().unwrap(), "/viostor.sys"]).stdout;
    assert!(got == std::fs::read(&local).unwrap());
    // In place: put, mv, rm, each behind the journal; undo restores every byte.
    for args in [
        vec!["put", img, l, "/viostor.sys", "--in-place"],
        vec![
            "mv",
            img,
            "/viostor.sys",
            "/viostor.sys.rehost-orig",
            "--in-place",
        ],
        vec!["rm", img, "/frag.bin", "--in-place"],
    ] {
        let out = rehost(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("written in place"));
    }
    assert!(
        rehost(&["cat", img, "/viostor.sys.rehost-orig"]).stdout == std::fs::read(&local).unwrap()
    );
    assert_eq!(rehost(&["cat", img, "/frag.bin"]).status.code(), Some(1));
    if common::have_tool("qemu-img") && common::have_tool("fls") {
        let vol = common::partition_file(&image, 1, dir.path()).0;
        let listing = String::from_utf8(common::run(
            Command::new("fls").args(["-r", "-u"]).arg(&vol),
        ))
        .unwrap();
        assert!(listing.contains("viostor.sys.rehost-orig") && !listing.contains("frag.bin"));
    }
    let out = rehost(&["undo", img]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 commits undone"));
    assert_eq!(common::sha256_file(&image), before);
}
