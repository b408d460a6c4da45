//! The NTFS writer against a model: seeded random sequences of put / replace / extend /
//! truncate / write / rm / mv (files of 0 bytes to megabytes, a directory grown to hundreds
//! of entries and emptied again so its index splits and merges) on the fixture volume and
//! on the Windows-formatted testfs1; then ntfsls -R and fls -r must list exactly the
//! model's tree, ntfscat, icat and the `ntfs` crate return the model's bytes, ntfsfix -n
//! and ntfsresize's cluster accounting find nothing wrong.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use common::Rng;
use harness::{check_volume, join, Model, Staged};
use rehost::disk::ReadAt;
use rehost::fs::ntfs::write::{WriteOptions, Writer};

/// Fixed time stamps, so runs are reproducible.
fn opts() -> WriteOptions {
    WriteOptions {
        time: Some(133_500_000_000_000_000),
        ..WriteOptions::default()
    }
}

/// A size: mostly small, sometimes around the resident limit or a few clusters, rarely up
/// to `max`.
fn size(rng: &mut Rng, max: u64) -> usize {
    let s = match rng.below(20) {
        0..=5 => rng.below(1200),
        6..=11 => rng.below(16 << 10),
        12..=17 => rng.below(200 << 10),
        _ => rng.below(max + 1),
    };
    s.min(max) as usize
}

fn name(rng: &mut Rng, n: u64) -> String {
    let stems = [
        "file",
        "Driver",
        "hal",
        "NTOSKRNL",
        "a",
        "long-name-with-many-characters-to-fill-index-entries",
        "données",
        "x y z",
    ];
    let exts = ["", ".txt", ".SYS", ".dll", ".rehost-orig", ".bin"];
    format!(
        "{}-{n}{}",
        stems[rng.below(stems.len() as u64) as usize],
        exts[rng.below(exts.len() as u64) as usize]
    )
}

fn pick<'a>(rng: &mut Rng, v: &'a [String]) -> Option<&'a String> {
    (!v.is_empty()).then(|| &v[rng.below(v.len() as u64) as usize])
}

/// Whether an error is the volume saying it is full (a legitimate outcome of a random op).
fn full(e: &rehost::Error) -> bool {
    e.to_string().contains("free clusters")
}

/// Runs `ops` random operations, keeping `model` in step. Total file bytes stay under
/// `budget`; single files under `max`.
fn random_ops(w: &mut Writer, m: &mut Model, rng: &mut Rng, ops: usize, max: u64, budget: u64) {
    let mut counter = 0u64;
    for step in 0..ops {
        let files = m.user_files();
        let dirs = m.user_dirs();
        let what = rng.below(100);
        let ctx = format!("step {step}");
        match what {
            // Create.
            0..=29 => {
                let dir = pick(rng, &dirs).unwrap().clone();
                counter += 1;
                let path = join(&dir, &name(rng, counter));
                if m.exists_any_case(&path) {
                    continue;
                }
                let data = common::pattern(size(rng, max), rng.next());
                if m.total_bytes() + data.len() as u64 > budget {
                    continue;
                }
                match w.create(&path, &data) {
                    Ok(r) => {
                        m.files.insert(path.clone(), (r, data));
                        m.touched.insert(path);
                    }
                    Err(e) if full(&e) => {}
                    Err(e) => panic!("{ctx}: create {path}: {e}"),
                }
            }
            // Replace the whole content.
            30..=44 => {
                let Some(p) = pick(rng, &files).cloned() else {
                    continue;
                };
                let data = common::pattern(size(rng, max), rng.next());
                if m.total_bytes() + data.len() as u64 > budget {
                    continue;
                }
                match w.replace(&p, &data) {
                    Ok(()) => {
                        m.files.get_mut(&p).unwrap().1 = data;
                        m.touched.insert(p);
                    }
                    Err(e) if full(&e) => {}
                    Err(e) => panic!("{ctx}: replace {p}: {e}"),
                }
            }
            // Extend or truncate.
            45..=59 => {
                let Some(p) = pick(rng, &files).cloned() else {
                    continue;
                };
                let len = m.files[&p].1.len() as u64;
                let new = if rng.below(2) == 0 {
                    len + rng.below(max / 4 + 1)
                } else {
                    rng.below(len + 1)
                };
                if m.total_bytes() + new > budget + len {
                    continue;
                }
                match w.set_len(&p, new) {
                    Ok(()) => {
                        m.files.get_mut(&p).unwrap().1.resize(new as usize, 0);
                        m.touched.insert(p);
                    }
                    Err(e) if full(&e) => {}
                    Err(e) => panic!("{ctx}: set_len {p} {new}: {e}"),
                }
            }
            // Write in place (possibly past the end).
            60..=74 => {
                let Some(p) = pick(rng, &files).cloned() else {
                    continue;
                };
                let len = m.files[&p].1.len() as u64;
                let off = rng.below(len + 2000);
                let n = 1 + rng.below(9000) as usize;
                let bytes = rng.bytes(n);
                match w.write(&p, off, &bytes) {
                    Ok(()) => {
                        let f = &mut m.files.get_mut(&p).unwrap().1;
                        let end = off as usize + bytes.len();
                        if f.len() < end {
                            f.resize(end, 0);
                        }
                        f[off as usize..end].copy_from_slice(&bytes);
                        m.touched.insert(p);
                    }
                    Err(e) if full(&e) => {}
                    Err(e) => panic!("{ctx}: write {p} at {off}: {e}"),
                }
            }
            // Delete.
            75..=86 => {
                let Some(p) = pick(rng, &files).cloned() else {
                    continue;
                };
                w.delete(&p)
                    .unwrap_or_else(|e| panic!("{ctx}: rm {p}: {e}"));
                m.files.remove(&p);
                m.touched.remove(&p);
            }
            // Rename or move.
            _ => {
                let Some(p) = pick(rng, &files).cloned() else {
                    continue;
                };
                let dir = pick(rng, &dirs).unwrap().clone();
                counter += 1;
                let to = if rng.below(4) == 0 {
                    // Only the case of the name changes.
                    match p.rsplit_once('/') {
                        Some((d, n)) => join(d, &n.to_uppercase()),
                        None => p.to_uppercase(),
                    }
                } else {
                    join(&dir, &name(rng, counter))
                };
                if to != p && m.exists_any_case(&to) && to.to_lowercase() != p.to_lowercase() {
                    continue;
                }
                if to == p {
                    continue;
                }
                w.rename(&p, &to)
                    .unwrap_or_else(|e| panic!("{ctx}: mv {p} {to}: {e}"));
                let v = m.files.remove(&p).unwrap();
                m.touched.remove(&p);
                m.files.insert(to.clone(), v);
                m.touched.insert(to);
            }
        }
    }
}

/// Fills directory `dir` with `n` small files, then deletes all but `keep` of them in a
/// random order: the index splits while it grows and frees blocks while it shrinks.
fn grow_and_shrink(w: &mut Writer, m: &mut Model, rng: &mut Rng, dir: &str, n: usize, keep: usize) {
    let mut made = Vec::new();
    for i in 0..n {
        let p = join(dir, &format!("bulk-{i:05}-{}.dat", rng.below(1 << 40)));
        let data = format!("bulk {i}").into_bytes();
        let r = w
            .create(&p, &data)
            .unwrap_or_else(|e| panic!("bulk create {p}: {e}"));
        m.files.insert(p.clone(), (r, data));
        made.push(p);
    }
    while made.len() > keep {
        let i = rng.below(made.len() as u64) as usize;
        let p = made.swap_remove(i);
        w.delete(&p).unwrap_or_else(|e| panic!("bulk rm {p}: {e}"));
        m.files.remove(&p);
    }
    for p in made {
        m.touched.insert(p);
    }
}

fn run_sequence(
    volume: &std::path::Path,
    seed: u64,
    ops: usize,
    max: u64,
    budget: u64,
    bulk: Option<(&str, usize, usize)>,
) {
    let staged = Staged::open(volume, 0);
    let mut model = Model::read(staged.reader());
    let mut w = staged.writer(opts()).unwrap();
    let mut rng = Rng(seed);
    random_ops(&mut w, &mut model, &mut rng, ops / 2, max, budget);
    if let Some((dir, n, keep)) = bulk {
        grow_and_shrink(&mut w, &mut model, &mut rng, dir, n, keep);
    }
    random_ops(&mut w, &mut model, &mut rng, ops - ops / 2, max, budget);
    // rehost's own reader first: the whole tree and every byte.
    let again = Model::read(staged.reader());
    assert_eq!(
        again.dirs, model.dirs,
        "seed {seed}: directories through rehost"
    );
    for (p, (r, b)) in model.files.iter().filter(|(p, _)| !p.starts_with('$')) {
        let (r2, b2) = again
            .files
            .get(p)
            .unwrap_or_else(|| panic!("seed {seed}: {p} missing through rehost"));
        assert_eq!(r, r2, "seed {seed}: {p}");
        common::assert_same_bytes(b2, b, &format!("seed {seed}: {p} through rehost"));
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.ntfs");
    staged.commit_to(&out);
    check_volume(&out, &model, 25, &format!("seed {seed}"));
}

#[test]
fn random_sequences_on_the_fixture_volume() {
    let vol = common::disk_fixture("bare.raw");
    run_sequence(
        &vol,
        0x5eed_0001,
        160,
        3 << 20,
        24 << 20,
        Some(("many", 700, 40)),
    );
    run_sequence(
        &vol,
        0x5eed_0002,
        160,
        1 << 20,
        24 << 20,
        Some(("case/B", 400, 3)),
    );
}

#[test]
fn random_sequence_on_the_windows_volume() {
    // 2 MiB, 512-byte clusters (an INDX block spans eight of them), a directory of 512
    // subdirectories.
    let vol = common::fixture("ntfs/testfs1.zst");
    run_sequence(
        &vol,
        0x5eed_0003,
        120,
        48 << 10,
        400 << 10,
        Some(("", 150, 20)),
    );
}

/// A fresh volume of `mib` MiB made by mkntfs (4 KiB clusters, geometry as Windows writes it).
fn mkntfs(dir: &std::path::Path, mib: u64) -> std::path::PathBuf {
    let vol = dir.join("fresh.ntfs");
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    common::run(
        std::process::Command::new("mkntfs")
            .args([
                "-F", "-Q", "-q", "-s", "512", "-c", "4096", "-p", "2048", "-H", "255", "-S", "63",
                "-L", "BIG",
            ])
            .arg(&vol),
    );
    vol
}

#[test]
fn a_64_mib_file_and_a_directory_of_5000_entries() {
    if !common::have_tool("mkntfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let vol = mkntfs(tmp.path(), 100);
    let staged = Staged::open(&vol, 0);
    let mut m = Model::read(staged.reader());
    let mut w = staged.writer(opts()).unwrap();
    let mut rng = Rng(0x64);
    let big = common::pattern(64 << 20, 64);
    let r = w.create("/big.bin", &big).unwrap();
    m.files.insert("big.bin".into(), (r, big));
    m.touched.insert("big.bin".into());
    // 5,000 names in the root: the index root moves into INDX blocks that split, a level
    // above them appears; then most go again, in random order, and the tree shrinks.
    let mut names = Vec::new();
    for i in 0..5000 {
        let p = format!("entry-{i:05}-{:x}.txt", rng.below(1 << 48));
        let data = format!("entry {i}").into_bytes();
        let r = w
            .create(&p, &data)
            .unwrap_or_else(|e| panic!("create {p}: {e}"));
        m.files.insert(p.clone(), (r, data));
        names.push(p);
    }
    let depth = |s: &Staged| {
        let n = s.reader();
        let root = n.root().unwrap();
        let blocks = root
            .stream_desc(0xA0, "$I30", n.ctx(), "\\")
            .unwrap()
            .map_or(0, |d| d.data_size / 4096);
        blocks
    };
    let grown = depth(&staged);
    assert!(grown > 40, "5,000 entries in {grown} index blocks");
    for _ in 0..4900 {
        let i = rng.below(names.len() as u64) as usize;
        let p = names.swap_remove(i);
        w.delete(&p).unwrap_or_else(|e| panic!("rm {p}: {e}"));
        m.files.remove(&p);
    }
    for p in &names {
        m.touched.insert(p.clone());
    }
    // The big file shrinks and grows back with zeros.
    w.set_len("/big.bin", 10 << 20).unwrap();
    w.set_len("/big.bin", 30 << 20).unwrap();
    let b = &mut m.files.get_mut("big.bin").unwrap().1;
    b.truncate(10 << 20);
    b.resize(30 << 20, 0);
    eprintln!("root index: {grown} blocks at 5,000 entries");
    let out = tmp.path().join("out.ntfs");
    staged.commit_to(&out);
    check_volume(&out, &m, 10, "64 MiB and 5,000 entries");
}

#[test]
fn short_names_where_the_volume_keeps_them() {
    use rehost::fs::ntfs::write::ShortNames;
    let staged = Staged::open(&common::disk_fixture("bare.raw"), 0);
    let mut w = staged
        .writer(WriteOptions {
            short_names: ShortNames::Always,
            ..opts()
        })
        .unwrap();
    let sys = "/Windows/System32";
    w.rename(
        &format!("{sys}/hal.dll"),
        &format!("{sys}/hal.dll.rehost-orig"),
    )
    .unwrap();
    w.create(&format!("{sys}/hal.dll"), b"new hal").unwrap();
    w.create(&format!("{sys}/Long File Name.txt"), b"long")
        .unwrap();
    w.create(&format!("{sys}/Long File Names.txt"), b"longer")
        .unwrap();
    // The alias finds the file, in any case.
    let n = staged.reader();
    let long = n.lookup(&format!("{sys}/Long File Name.txt")).unwrap();
    assert_eq!(
        n.lookup(&format!("{sys}/longfi~1.txt")).unwrap().record,
        long.record
    );
    assert_eq!(long.names().len(), 2);
    assert_eq!(long.link_count, 2);
    assert_eq!(
        n.lookup(&format!("{sys}/HALDLL~1.REH"))
            .unwrap()
            .names()
            .len(),
        2
    );
    // An 8.3 name is its own alias.
    assert_eq!(
        n.lookup(&format!("{sys}/hal.dll")).unwrap().names().len(),
        1
    );
    // Deleting through the alias takes both names.
    w.delete(&format!("{sys}/LONGFI~2.TXT")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    staged.commit_to(&out);
    if common::have_tool("fls") {
        let fls = common::fls_tree(&out, 0);
        let rec = |p: &str| fls.get(&format!("Windows/System32/{p}")).copied();
        // fls lists long names only.
        assert_eq!(rec("Long File Name.txt"), Some(long.record));
        assert_eq!(rec("Long File Names.txt"), None);
        assert!(rec("hal.dll.rehost-orig").is_some());
    }
    if common::have_tool("ntfsls") {
        let dos = String::from_utf8(common::run(
            std::process::Command::new("ntfsls")
                .arg("-x")
                .arg("-p")
                .arg(sys)
                .arg(&out),
        ))
        .unwrap();
        for name in ["LONGFI~1.TXT", "HALDLL~1.REH", "hal.dll"] {
            assert!(
                dos.lines().any(|l| l.trim().eq_ignore_ascii_case(name)),
                "{name} not in ntfsls -x:\n{dos}"
            );
        }
        assert!(!dos.contains("LONGFI~2.TXT"), "{dos}");
        let cat = common::run(
            std::process::Command::new("ntfscat")
                .arg(&out)
                .arg(format!("{sys}/LONGFI~1.TXT")),
        );
        assert_eq!(cat, b"long");
    }
    let mut m = Model::read(Staged::open(&out, 0).reader());
    m.touched.insert("Windows/System32/hal.dll".into());
    harness::check_with_ntfs_crate(&out, &m, "short names");
}

/// Moves every model path below `from` to below `to`.
fn move_tree(m: &mut Model, from: &str, to: &str) {
    let moved = |p: &String| p == from || p.starts_with(&format!("{from}/"));
    let rename = |p: &str| format!("{to}{}", &p[from.len()..]);
    let dirs: Vec<(String, u64)> = m
        .dirs
        .iter()
        .filter(|(p, _)| moved(p))
        .map(|(p, r)| (p.clone(), *r))
        .collect();
    for (p, r) in dirs {
        m.dirs.remove(&p);
        m.dirs.insert(rename(&p), r);
    }
    let files: Vec<String> = m.files.keys().filter(|p| moved(p)).cloned().collect();
    for p in files {
        let v = m.files.remove(&p).unwrap();
        m.touched.remove(&p);
        m.files.insert(rename(&p), v);
        m.touched.insert(rename(&p));
    }
}

#[test]
fn sparse_fragmented_and_multi_stream_files_and_directory_moves() {
    let staged = Staged::open(&common::disk_fixture("bare.raw"), 0);
    let mut m = Model::read(staged.reader());
    let mut w = staged.writer(opts()).unwrap();
    let extents = |s: &Staged, p: &str| {
        let n = s.reader();
        n.data(&n.lookup(p).unwrap(), "").unwrap().extents()
    };
    // A write into the hole of the sparse file maps clusters there and nowhere else.
    let data = common::pattern(5000, 11);
    w.write("/sparse.bin", 300_000, &data).unwrap();
    m.files.get_mut("sparse.bin").unwrap().1[300_000..305_000].copy_from_slice(&data);
    let holes = extents(&staged, "sparse.bin")
        .iter()
        .filter(|e| e.volume_offset.is_none())
        .count();
    assert!(
        holes >= 2,
        "the hole is split, not filled: {:?}",
        extents(&staged, "sparse.bin")
    );
    w.set_len("/sparse.bin", 2 << 20).unwrap();
    m.files.get_mut("sparse.bin").unwrap().1.resize(2 << 20, 0);
    // The fragmented file rewritten at its size keeps its 13 runs.
    let runs = extents(&staged, "frag.bin");
    let len = m.files["frag.bin"].1.len();
    let data = common::pattern(len, 12);
    w.replace("/frag.bin", &data).unwrap();
    assert_eq!(extents(&staged, "frag.bin"), runs);
    m.files.get_mut("frag.bin").unwrap().1 = data;
    // The unnamed stream of a file with named streams: to clusters and back into the record.
    w.set_len("/ads.txt", 100_000).unwrap();
    w.write("/ads.txt", 99_000, b"tail").unwrap();
    w.set_len("/ads.txt", 200).unwrap();
    let a = &mut m.files.get_mut("ads.txt").unwrap().1;
    a.resize(100_000, 0);
    a[99_000..99_004].copy_from_slice(b"tail");
    a.truncate(200);
    for p in ["sparse.bin", "frag.bin", "ads.txt"] {
        m.touched.insert(p.to_string());
    }
    // Directories move with everything below them; not into themselves.
    w.rename("/deep/level-1", "/names/level-1-moved").unwrap();
    move_tree(&mut m, "deep/level-1", "names/level-1-moved");
    let e = w.rename("/names", "/names/Données/inside").unwrap_err();
    assert!(
        e.to_string().contains("inside the directory being moved"),
        "{e}"
    );
    w.rename("/case/A", "/case/a").unwrap();
    move_tree(&mut m, "case/A", "case/a");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    staged.commit_to(&out);
    check_volume(&out, &m, 10, "special files");
    if common::have_tool("ntfscat") {
        for (stream, len) in [("Zone.Identifier", 26), ("secret", 10000)] {
            let theirs = common::run(
                std::process::Command::new("ntfscat")
                    .args(["-n", stream])
                    .arg(&out)
                    .arg("/ads.txt"),
            );
            assert_eq!(theirs.len(), len, "the named stream {stream} stays");
            let n = Staged::open(&out, 0).reader();
            let s = n.data(&n.lookup("ads.txt").unwrap(), stream).unwrap();
            let mut ours = vec![0u8; s.size() as usize];
            s.read_at(0, &mut ours).unwrap();
            assert_eq!(ours, theirs, "{stream}");
        }
    }
}

#[test]
fn a_volume_inside_a_partitioned_dynamic_vhdx() {
    use rehost::disk::{Overlay, WindowMut, WriteAt};
    use std::sync::Arc;
    // The MBR disk as a dynamic VHDX: reads go through the container, the NTFS volume is a
    // window at 1 MiB; writes are staged above the container.
    let image = common::disk_fixture("mbr.dynamic-1m.vhdx");
    let d = rehost::disk::open(&image, &Default::default()).unwrap();
    let ctx = rehost::Ctx::new("vhdx", rehost::Layer::Volume);
    let layout = rehost::volume::scan(d.reader(), 512, &ctx).unwrap();
    let v = layout
        .volumes
        .iter()
        .find(|v| v.content == rehost::volume::Content::Ntfs)
        .unwrap();
    assert_eq!(v.offset, 1 << 20);
    let overlay = Arc::new(Overlay::new(d.reader(), ctx.clone()));
    let dev: Arc<dyn WriteAt> =
        Arc::new(WindowMut::new(overlay.clone(), v.offset, v.size, ctx.clone()).unwrap());
    let reader = |dev: &Arc<dyn WriteAt>| {
        let r: Arc<dyn ReadAt> = dev.clone();
        rehost::fs::ntfs::Ntfs::open(r, rehost::Ctx::new("vhdx", rehost::Layer::Ntfs)).unwrap()
    };
    let mut m = Model::read(reader(&dev));
    let mut w = Writer::open(
        dev.clone(),
        rehost::Ctx::new("vhdx", rehost::Layer::Ntfs),
        opts(),
    )
    .unwrap();
    let mut rng = Rng(0x7d);
    random_ops(&mut w, &mut m, &mut rng, 60, 1 << 20, 20 << 20);
    // Every staged byte lies inside the volume's window.
    for (o, b) in overlay.extents() {
        assert!(
            o >= v.offset && o + b.len() as u64 <= v.offset + v.size,
            "staged outside the volume at {o:#x}"
        );
    }
    // The volume as it now reads, for the outside tools.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("volume.ntfs");
    let mut bytes = vec![0u8; v.size as usize];
    dev.read_at(0, &mut bytes).unwrap();
    std::fs::write(&out, bytes).unwrap();
    check_volume(&out, &m, 10, "volume in a dynamic VHDX");
}

/// Directories made on `volume`: one in the root, a chain three deep (`mkdir_all`), and
/// `files` files in the deepest, so its new index root moves into INDX blocks; a file
/// moved into the new directory and another deleted from it. rehost's reader, ntfs-3g, the
/// Sleuth Kit and the `ntfs` crate read the model.
fn new_directories_on(volume: &std::path::Path, files: usize, what: &str) {
    let staged = Staged::open(volume, 0);
    let mut m = Model::read(staged.reader());
    let mut w = staged.writer(opts()).unwrap();
    let r = w.mkdir("/FileRepository-new").unwrap();
    m.dirs.insert("FileRepository-new".into(), r);
    assert_eq!(
        w.mkdir_all("/a/viostor.inf_amd64_0123456789abcdef/sub")
            .unwrap(),
        3
    );
    assert_eq!(
        w.mkdir_all("/a/viostor.inf_amd64_0123456789abcdef")
            .unwrap(),
        0
    );
    let reader = staged.reader();
    for p in [
        "a",
        "a/viostor.inf_amd64_0123456789abcdef",
        "a/viostor.inf_amd64_0123456789abcdef/sub",
    ] {
        let f = reader.lookup(p).unwrap();
        assert!(f.is_dir(), "{what}: {p}");
        m.dirs.insert(p.to_string(), f.record);
    }
    // A name that exists is refused, as a file or a directory.
    assert!(w.mkdir("/a").is_err(), "{what}: mkdir of an existing name");
    let deep = "a/viostor.inf_amd64_0123456789abcdef/sub";
    for i in 0..files {
        let p = format!("{deep}/driver-file-{i:04}.sys");
        let data = common::pattern(i * 37 % 3000, i as u64);
        let r = w
            .create(&p, &data)
            .unwrap_or_else(|e| panic!("{what}: create {p}: {e}"));
        m.files.insert(p.clone(), (r, data));
        if i % 50 == 0 {
            m.touched.insert(p);
        }
    }
    let p = format!("{deep}/driver-file-0001.sys");
    w.delete(&p).unwrap();
    m.files.remove(&p);
    let from = format!("{deep}/driver-file-0002.sys");
    let to = "FileRepository-new/viostor.sys";
    w.rename(&from, to).unwrap();
    let v = m.files.remove(&from).unwrap();
    m.files.insert(to.into(), v);
    m.touched.insert(to.into());
    drop(w);
    let again = Model::read(staged.reader());
    assert_eq!(again.dirs, m.dirs, "{what}: directories through rehost");
    let blocks = staged
        .reader()
        .lookup(deep)
        .unwrap()
        .attributes
        .iter()
        .any(|a| a.ty == 0xA0);
    assert!(
        blocks,
        "{what}: {files} entries should have moved the root into blocks"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.ntfs");
    staged.commit_to(&out);
    check_volume(&out, &m, 20, what);
}

#[test]
fn new_directories_on_the_fixture_volume() {
    new_directories_on(&common::disk_fixture("bare.raw"), 300, "fixture volume");
}

#[test]
fn new_directories_on_the_windows_volume() {
    // 512-byte clusters: the index root header says so (clusters per index block).
    new_directories_on(&common::fixture("ntfs/testfs1.zst"), 120, "testfs1");
}
