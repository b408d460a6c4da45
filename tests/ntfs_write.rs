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
    if let Ok(keep) = std::env::var("KEEP_OUT") {
        std::fs::copy(&out, format!("{keep}.{seed:x}")).unwrap();
    }
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
