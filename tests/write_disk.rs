//! Writes into images: random staged writes committed in place and into new images, for
//! raw, VHD (fixed, dynamic, differencing) and VHDX (fixed, dynamic with 1 and 32 MiB
//! blocks, differencing), checked against a model of the virtual disk through qemu-img
//! (`convert -O raw`, `check`), libvhdi (differencing chains) and rehost's own reader;
//! `undo` restores the image byte for byte; commits killed midway are rolled back
//! (`crash`); damaged or foreign journals and held locks are refused (`journals`).

mod common;

#[path = "write_disk/crash.rs"]
mod crash;
#[path = "write_disk/images.rs"]
mod images;
#[path = "write_disk/journals.rs"]
mod journals;

use common::Rng;
use images::{Image, MB};
use rehost::disk::{self, CommitOptions, CommitReport, WriteAt, WriteOptions};
use std::path::Path;

/// Writes of the kinds a fix makes: the first byte and the last bytes of the disk, a write
/// across a block boundary, a long run over several blocks, zeros into a part never
/// written, then `n` of: a few bytes anywhere, an aligned 4 KiB page, a run of up to 20 KB
/// at any offset, and a write over part of an earlier one. With `unit` > 1 every write is
/// widened to whole units.
pub fn workload(rng: &mut Rng, size: u64, block: u64, n: usize, unit: u64) -> Vec<(u64, Vec<u8>)> {
    let mut w: Vec<(u64, Vec<u8>)> = Vec::new();
    let put = |w: &mut Vec<(u64, Vec<u8>)>, rng: &mut Rng, at: u64, len: u64, zero: bool| {
        let len = len.div_ceil(unit).max(1) * unit;
        let len = len.min(size);
        let at = (at / unit * unit).min(size - len);
        let bytes = if zero {
            vec![0; len as usize]
        } else {
            rng.bytes(len as usize)
        };
        w.push((at, bytes));
    };
    put(&mut w, rng, 0, 1, false);
    put(&mut w, rng, size - 700, 700, false);
    let k = 1 + rng.below((size / block).saturating_sub(1));
    put(&mut w, rng, k * block - 100, 300, false);
    let long = (3 * MB as u64 / 2 + 77).min(size / 2);
    let at = rng.below(size - long);
    put(&mut w, rng, at, long, false);
    put(&mut w, rng, size / 2 + 4096, 8192, true);
    for _ in 0..n {
        match rng.below(4) {
            0 => {
                let (at, len) = (rng.below(size), 1 + rng.below(64));
                put(&mut w, rng, at, len, false)
            }
            1 => {
                let at = rng.below(size / 4096) * 4096;
                put(&mut w, rng, at, 4096, false)
            }
            2 => {
                let (at, len) = (rng.below(size), 512 + rng.below(20_000));
                put(&mut w, rng, at, len, false)
            }
            _ => {
                let i = rng.below(w.len() as u64) as usize;
                let (at, len) = (w[i].0 + rng.below(w[i].1.len() as u64), 1 + rng.below(5000));
                put(&mut w, rng, at, len, false)
            }
        }
    }
    w
}

/// The model after `writes`, in order.
pub fn apply(model: &mut [u8], writes: &[(u64, Vec<u8>)]) {
    for (at, b) in writes {
        model[*at as usize..*at as usize + b.len()].copy_from_slice(b);
    }
}

/// Opens `path` for writing and stages `writes` into its overlay.
pub fn stage(path: &Path, in_place: bool, writes: &[(u64, Vec<u8>)]) -> disk::WriteSession {
    let opts = if in_place {
        WriteOptions::in_place()
    } else {
        WriteOptions::new_image()
    };
    let s = disk::open_for_write(path, &opts).unwrap();
    let o = s.overlay();
    for (at, b) in writes {
        o.write_at(*at, b).unwrap();
    }
    s
}

/// The image at `path` reads as `model` through rehost, qemu-img (when it reads the format)
/// and libvhdi (for differencing images), and passes the container check.
pub fn check_result(path: &Path, qemu: Option<&str>, libvhdi: bool, model: &[u8], what: &str) {
    let d = disk::open(path, &Default::default()).unwrap();
    common::assert_same_bytes(&common::read_all(&d), model, &format!("{what}: rehost"));
    let diff = d.info().subformat == disk::Subformat::Differencing;
    if let Some(fmt) = qemu {
        if common::have_tool("qemu-img") {
            common::assert_same_bytes(
                &images::qemu_raw(path, fmt),
                model,
                &format!("{what}: qemu-img convert"),
            );
            images::check_container(path, fmt);
        }
    } else if path.extension().is_some_and(|e| e == "vhd") {
        images::vhd_structure(path);
    }
    if diff && libvhdi && common::have_python_module("pyvhdi") {
        common::assert_same_bytes(
            &common::libvhdi_read(path),
            model,
            &format!("{what}: libvhdi"),
        );
    }
}

fn summary(r: &CommitReport) -> String {
    format!(
        "{} extents, {} staged bytes -> {} host writes, {} bytes; file {} -> {}; journal {} bytes",
        r.staged_extents,
        r.staged_bytes,
        r.host_writes,
        r.bytes_written,
        r.len_before,
        r.len_after,
        r.journal_bytes
    )
}

/// In place, twice (the second commit writes into blocks the first allocated and adds a
/// generation to the journal), then undo: byte for byte the image of before.
fn in_place_then_undo(img: &Image, writes: [&[(u64, Vec<u8>)]; 2]) {
    let before = common::sha256_file(&img.path);
    let dwg = |p: &Path| {
        disk::open(p, &Default::default())
            .unwrap()
            .info()
            .data_write_guid
            .clone()
    };
    let first_dwg = dwg(&img.path);
    let mut model = img.disk.clone();
    for (round, w) in writes.iter().enumerate() {
        // A VHDX gets a new DataWriteGuid with every commit that changes its data.
        let was = dwg(&img.path);
        let r = stage(&img.path, true, w)
            .commit(&CommitOptions::default())
            .unwrap();
        eprintln!("{} in place, commit {round}: {}", img.name(), summary(&r));
        assert!(
            r.journal_bytes < 2 * r.staged_bytes + 64 * 1024,
            "{}",
            summary(&r)
        );
        apply(&mut model, w);
        assert!(
            was.is_none() || dwg(&img.path) != was,
            "{}: DataWriteGuid kept",
            img.name()
        );
        check_result(
            &img.path,
            img.qemu,
            img.libvhdi,
            &model,
            &format!("{} commit {round}", img.name()),
        );
    }
    let j = disk::journal::read(&img.path).unwrap().expect("a journal");
    assert_eq!(j.generations.len(), 2);
    let u = disk::undo(&img.path, None).unwrap();
    assert_eq!(u.generations, vec![1, 0]);
    assert_eq!(
        common::sha256_file(&img.path),
        before,
        "{}: undo",
        img.name()
    );
    assert_eq!(dwg(&img.path), first_dwg);
    assert!(!disk::journal::journal_path(&img.path).exists());
}

/// Into a new image: the source untouched, no journal, the new image as sparse as the
/// source (within the blocks the writes add).
fn to_new_image(img: &Image, writes: &[(u64, Vec<u8>)], new: &Path) {
    let before = common::sha256_file(&img.path);
    let r = stage(&img.path, false, writes)
        .commit_to(new, &CommitOptions::default())
        .unwrap();
    eprintln!("{} into a new image: {}", img.name(), summary(&r));
    assert_eq!(common::sha256_file(&img.path), before, "the source changed");
    assert!(!disk::journal::journal_path(&img.path).exists());
    let mut model = img.disk.clone();
    apply(&mut model, writes);
    check_result(
        new,
        img.qemu,
        img.libvhdi,
        &model,
        &format!("{} -> new image", img.name()),
    );
    use std::os::unix::fs::MetadataExt;
    let used = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
    let (src, out) = (used(&img.path), used(new));
    assert!(
        out <= src + r.bytes_written + 4 * MB as u64,
        "{}: the new image uses {out} bytes, the source {src}",
        img.name()
    );
}

#[test]
fn every_container_takes_writes_in_place_and_into_new_images() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (variant, fmt)) in common::CONTAINERS.iter().enumerate() {
        let img = images::fixture(dir.path(), variant, fmt);
        let size = img.disk.len() as u64;
        let mut rng = Rng(0x5eed_0000 + i as u64);
        let a = workload(&mut rng, size, img.block, 40, 1);
        let b = workload(&mut rng, size, img.block, 40, 1);
        to_new_image(&img, &a, &dir.path().join(format!("new.{variant}")));
        in_place_then_undo(&img, [&a, &b]);
    }
}

#[test]
fn differencing_children_take_writes_and_leave_their_parents_alone() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = common::pattern(6 * MB, 31);
    let vp = images::convert(
        dir.path(),
        &raw,
        "parent.vhd",
        "vpc",
        "subformat=dynamic,force_size=on",
    );
    let xp = images::convert(
        dir.path(),
        &raw,
        "parent.vhdx",
        "vhdx",
        "subformat=dynamic,block_size=1M",
    );
    let k4 = dir.path().join("4k");
    std::fs::create_dir(&k4).unwrap();
    let k4_child = images::vhdx_4k_pair(&k4);
    let parents = [&vp, &xp, &k4.join("parent.vhdx")].map(|p| common::sha256_file(p));
    // VHD: libvhdi misreads bitmap bytes with only some bits set (see tests/vhd.rs), so it
    // checks writes of whole 4 KiB (8-sector) units, one bitmap byte each; writes of any
    // byte are checked against the model and rehost's reader alone.
    let vhd = Image::at(images::vhd_child(&vp), None);
    let mut vhd_any = Image::at(vhd.path.clone(), None);
    vhd_any.libvhdi = false;
    let cases = [
        (vhd, 4096u64),
        (vhd_any, 1),
        (Image::at(images::vhdx_child(&xp), None), 1),
        (Image::at(k4_child, None), 1),
    ];
    for (i, (img, unit)) in cases.into_iter().enumerate() {
        let size = img.disk.len() as u64;
        let mut rng = Rng(0xd1ff + i as u64);
        let a = workload(&mut rng, size, img.block, 30, unit);
        let b = workload(&mut rng, size, img.block, 30, unit);
        let new = img.path.with_file_name(format!("new{i}-{}", img.name()));
        to_new_image(&img, &a, &new);
        in_place_then_undo(&img, [&a, &b]);
    }
    let now = [&vp, &xp, &k4.join("parent.vhdx")].map(|p| common::sha256_file(p));
    assert_eq!(now, parents);
    // A parent written in place gets a new DataWriteGuid: its child no longer links to it
    // (as MS-VHDX means it), until the parent is undone.
    let child = xp.with_file_name("child.vhdx");
    stage(&xp, true, &[(4096, vec![9; 4096])])
        .commit(&CommitOptions::default())
        .unwrap();
    let e = disk::open(&child, &Default::default())
        .err()
        .expect("the child opened");
    assert!(e.to_string().contains("parent"), "{e}");
    disk::undo(&xp, None).unwrap();
    assert!(disk::open(&child, &Default::default()).is_ok());
}

/// A commit with nothing staged writes nothing and makes no journal; a read-only open of
/// an image with a journal says so.
#[test]
fn nothing_staged_writes_nothing_and_readers_see_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let img = images::fixture(dir.path(), "dynamic.vhd", "vpc");
    let before = common::sha256_file(&img.path);
    let r = stage(&img.path, true, &[])
        .commit(&CommitOptions::default())
        .unwrap();
    assert_eq!((r.host_writes, r.journal_bytes), (0, 0));
    assert_eq!(common::sha256_file(&img.path), before);
    assert!(!disk::journal::journal_path(&img.path).exists());
    stage(&img.path, true, &[(4096, vec![7; 10])])
        .commit(&CommitOptions::default())
        .unwrap();
    let d = disk::open(&img.path, &Default::default()).unwrap();
    assert!(
        d.info().notes.iter().any(|n| n.contains("rehost undo")),
        "{:?}",
        d.info().notes
    );
}

/// `rehost undo IMAGE` restores the image and says what it did; without a journal it fails
/// and says there is nothing to undo.
#[test]
fn the_undo_command_restores_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.raw");
    std::fs::write(&p, common::pattern(2 * MB, 3)).unwrap();
    let before = common::sha256_file(&p);
    stage(&p, true, &[(1000, vec![1; 5000])])
        .commit(&CommitOptions::default())
        .unwrap();
    assert_ne!(common::sha256_file(&p), before);
    let undo = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rehost"))
            .arg("undo")
            .arg(&p)
            .output()
            .unwrap()
    };
    let out = undo();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 commit undone, 5000 bytes restored")
            && text.contains("rehost-undo removed"),
        "{text}"
    );
    assert_eq!(common::sha256_file(&p), before);
    let out = undo();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to undo"));
}

/// The byte ranges of an image's metadata: for VHD the footer, its copy, the dynamic header
/// and the BAT; for VHDX the headers, the region tables, the BAT and the metadata table.
fn metadata_ranges(f: &[u8], vhdx: bool) -> Vec<(usize, usize)> {
    let be = |o: usize| u32::from_be_bytes(f[o..o + 4].try_into().unwrap()) as usize;
    let le = |o: usize| u64::from_le_bytes(f[o..o + 8].try_into().unwrap()) as usize;
    if !vhdx {
        let entries = be(512 + 28);
        return vec![
            (0, 512),
            (512, 1536),
            (1536, 1536 + 4 * entries),
            (f.len() - 512, f.len()),
        ];
    }
    let mut r = vec![
        (0, 8),
        (65536, 65536 + 80),
        (131072, 131072 + 80),
        (196608, 196608 + 80),
    ];
    for i in 0..2 {
        let (offset, len) = (le(196608 + 16 + 32 * i + 16), 4096);
        r.push((offset, offset + len));
    }
    r
}

/// Seeded mutations of the metadata of small VHD and VHDX images (headers, BAT, region
/// tables, metadata): whatever still opens is planned without a panic, and one in four
/// committed into a new image, which reads back as staged (the commit's own check) or
/// is refused.
#[test]
fn mutated_images_never_panic_the_writers() {
    if common::bounded::reran_in_child("mutated_images_never_panic_the_writers") {
        return;
    }
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut raw = common::pattern(4 * MB, 61);
    raw[2 * MB..3 * MB].fill(0);
    let images = [
        images::convert(
            dir.path(),
            &raw,
            "m.vhd",
            "vpc",
            "subformat=dynamic,force_size=on",
        ),
        images::convert(
            dir.path(),
            &raw,
            "m.vhdx",
            "vhdx",
            "subformat=dynamic,block_size=1M",
        ),
    ];
    let bytes = images.clone().map(|p| std::fs::read(p).unwrap());
    let ranges = [
        metadata_ranges(&bytes[0], false),
        metadata_ranges(&bytes[1], true),
    ];
    let mut rng = Rng(0x3a7e);
    let (mut opened, mut planned, mut committed) = (0, 0, 0);
    for round in 0..120 {
        let kind = round % 2;
        let mut f = bytes[kind].clone();
        for _ in 0..1 + rng.below(4) {
            let (a, b) = ranges[kind][rng.below(ranges[kind].len() as u64) as usize];
            let i = a + rng.below((b - a) as u64) as usize;
            f[i] = rng.next() as u8;
        }
        let p = dir.path().join(format!("mut.{}", ["vhd", "vhdx"][kind]));
        std::fs::write(&p, &f).unwrap();
        let Ok(s) = disk::open_for_write(&p, &WriteOptions::new_image()) else {
            continue;
        };
        opened += 1;
        let size = disk::ReadAt::size(&*s.overlay());
        for (at, b) in workload(&mut rng, size, MB as u64, 4, 1) {
            let _ = s.overlay().write_at(at, &b);
        }
        if s.plan(&CommitOptions::default()).is_ok() {
            planned += 1;
        }
        if round % 8 < 2 {
            let out = p.with_extension("out");
            if s.commit_to(&out, &CommitOptions::default()).is_ok() {
                committed += 1;
            }
            let _ = std::fs::remove_file(&out);
        }
    }
    eprintln!("120 mutated images: {opened} opened, {planned} planned, {committed} committed");
    assert!(
        planned < opened && committed > 5,
        "{opened} {planned} {committed}"
    );
}

/// A commit that changes more BAT pages than half the log holds (130 pages of a 72 GiB
/// VHDX with 1 MiB blocks, one block allocated in each) goes through the log in rounds;
/// qemu-io reads every write back, and qemu-img check passes.
#[test]
fn many_metadata_pages_go_through_the_log_in_rounds() {
    if !common::have_tool("qemu-img") || !common::have_tool("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.vhdx");
    common::run(
        std::process::Command::new("qemu-img")
            .args([
                "create",
                "-q",
                "-f",
                "vhdx",
                "-o",
                "subformat=dynamic,block_size=1M",
            ])
            .arg(&p)
            .arg("72G"),
    );
    let writes: Vec<(u64, Vec<u8>)> = (0..130u64)
        .map(|i| {
            (
                i * 512 * MB as u64 + (i * 4096) % MB as u64,
                vec![(i % 250) as u8 + 1; 4096],
            )
        })
        .collect();
    let s = stage(&p, true, &writes);
    let plan = s.plan(&CommitOptions::default()).unwrap();
    let rounds = plan.phases.iter().filter(|ph| ph.name == "log").count();
    assert_eq!(rounds, 2, "{:?}", plan.notes);
    s.commit(&CommitOptions::default()).unwrap();
    images::check_container(&p, "vhdx");
    let mut io = std::process::Command::new("qemu-io");
    io.args(["-r", "-f", "vhdx"]);
    for (at, b) in &writes {
        io.arg("-c").arg(format!("read -P {} {at} 4096", b[0]));
    }
    let out = String::from_utf8(common::run(io.arg(&p))).unwrap();
    assert!(!out.contains("verification failed"), "{out}");
    assert_eq!(out.matches("read 4096/4096 bytes").count(), 130, "{out}");
    let d = disk::open(&p, &Default::default()).unwrap();
    for (at, b) in &writes {
        let mut got = vec![0u8; 4096];
        disk::ReadAt::read_at(&d, *at, &mut got).unwrap();
        assert!(got == *b, "at {at:#x}");
    }
    disk::undo(&p, None).unwrap();
}
