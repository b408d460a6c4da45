//! New files with 255-character names, whose `$FILE_NAME` takes 576 bytes of a 1 KiB record:
//! in the root of a volume Windows 10 formatted (the root keeps a 228-byte descriptor of
//! its own, which new files there copy: it goes to clusters of its own when it would leave
//! no room for the data's runs), in a directory whose files have a security ID into
//! `$Secure` (new files take the ID and no descriptor), and in the roots of a mkntfs
//! volume and of the Windows-formatted testfs1. Read back by ntfs-3g (ntfsls, ntfscat,
//! ntfsinfo, ntfsfix -n, ntfsresize), the Sleuth Kit where it reads the volume, and the
//! `ntfs` crate.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use harness::{check_volume, Model, Staged};
use rehost::fs::ntfs::write::WriteOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A name of 255 UTF-16 units.
fn long_name(c: char) -> String {
    let mut n: String = std::iter::repeat_n(c, 251).collect();
    n.push_str(".txt");
    n
}

/// `ntfsinfo -v -F PATH` (or `-i N`), as text.
fn ntfsinfo(vol: &Path, which: &[&str]) -> String {
    let out = common::run(Command::new("ntfsinfo").arg("-v").args(which).arg(vol));
    String::from_utf8_lossy(&out).into_owned()
}

/// The values of the lines `key:` of ntfsinfo's dump, in order.
fn values<'a>(dump: &'a str, key: &str) -> Vec<&'a str> {
    dump.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim())
        .collect()
}

/// Creates each `(directory, name, bytes)`, commits with `commit`, and checks the volume.
fn create_and_check(
    staged: &Staged,
    files: &[(&str, String, Vec<u8>)],
    what: &str,
    commit: impl FnOnce(&Staged) -> PathBuf,
) -> PathBuf {
    let mut m = Model::read(staged.reader());
    let mut w = staged
        .writer(WriteOptions {
            time: Some(133_500_000_000_000_000),
            ..WriteOptions::default()
        })
        .unwrap();
    for (dir, name, bytes) in files {
        if !dir.is_empty() && !m.dirs.contains_key(*dir) {
            let r = w.mkdir(&format!("/{dir}")).unwrap();
            m.dirs.insert(dir.to_string(), r);
        }
        let rel = if dir.is_empty() {
            name.clone()
        } else {
            format!("{dir}/{name}")
        };
        let r = w
            .create(&format!("/{rel}"), bytes)
            .unwrap_or_else(|e| panic!("{what}: create {rel}: {e}"));
        m.files.insert(rel.clone(), (r, bytes.clone()));
        m.touched.insert(rel);
    }
    drop(w);
    let out = commit(staged);
    check_volume(&out, &m, 10, what);
    out
}

#[test]
fn a_255_character_name_on_a_volume_windows_10_formatted() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = common::sparse_partition("ntfs/win10-2m.raw.zst", tmp.path());
    let staged = Staged::open(&vol, 0);
    let svi = "System Volume Information";
    let sub = format!("{svi}/new");
    let files = [
        ("", long_name('r'), common::pattern(100_000, 1)),
        ("", long_name('s'), b"small".to_vec()),
        (svi, long_name('v'), common::pattern(50_000, 2)),
        (&sub, long_name('w'), common::pattern(50_000, 4)),
    ];
    let out = create_and_check(&staged, &files, "Windows 10, 2 MiB clusters", |s| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&s.image)
            .unwrap();
        for (o, b) in s.overlay.extents() {
            f.write_all_at(&b, o).unwrap();
        }
        s.image.clone()
    });
    if !common::have_tool("ntfsinfo") {
        return;
    }
    // In the root: the root's own descriptor (its owner), and no security ID.
    let root = ntfsinfo(&out, &["-i", "5"]);
    for (_, name, _) in &files[..2] {
        let f = ntfsinfo(&out, &["-F", &format!("/{name}")]);
        assert_eq!(
            values(&f, "Owner SID"),
            values(&root, "Owner SID"),
            "/{name}: the root's descriptor: {f}"
        );
    }
    // In a directory whose files have a security ID (what Windows gave a file there, from
    // the directory's inheritable entries): a sibling's ID, and no descriptor.
    let ids = |dump: &str| -> Vec<String> {
        values(dump, "Security ID")
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let siblings: Vec<String> = common::ntfsls_tree(&out)
        .into_iter()
        .filter(|(p, _)| p.starts_with(&format!("{svi}/")) && !p.contains(".txt") && *p != sub)
        .flat_map(|(_, (r, _))| ids(&ntfsinfo(&out, &["-i", &r.to_string()])))
        .collect();
    let f = ntfsinfo(&out, &["-F", &format!("/{svi}/{}", files[2].1)]);
    let id = ids(&f);
    assert!(
        id.len() == 1 && siblings.contains(&id[0]),
        "the file's security ID {id:?} is a sibling's ({siblings:?}): {f}"
    );
    // In a new directory (which takes its parent's ID) with no file yet: the directory's.
    let dir = ntfsinfo(&out, &["-F", &format!("/{sub}")]);
    let g = ntfsinfo(&out, &["-F", &format!("/{sub}/{}", files[3].1)]);
    assert!(
        !ids(&g).is_empty()
            && ids(&g) == ids(&dir)
            && ids(&dir) == values(&ntfsinfo(&out, &["-F", &format!("/{svi}")]), "Security ID"),
        "the file's security ID is its directory's: {g}"
    );
    for dump in [&f, &g] {
        assert!(
            !dump.contains("$SECURITY_DESCRIPTOR") && dump.contains("Data size:\t\t 72 (0x48)"),
            "a file with a security ID has a 72-byte $STANDARD_INFORMATION and no descriptor: {dump}"
        );
    }
}

#[test]
fn a_255_character_name_in_the_root_of_mkntfs_and_testfs1_volumes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vols = vec![("testfs1", common::fixture("ntfs/testfs1.zst"))];
    if common::have_tool("mkntfs") {
        let v = tmp.path().join("mkntfs.ntfs");
        std::fs::File::create(&v)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        common::run(
            Command::new("mkntfs")
                .args(["-F", "-Q", "-q", "-s", "512", "-c", "4096"])
                .args(["-p", "2048", "-H", "255", "-S", "63"])
                .arg(&v),
        );
        vols.push(("mkntfs", v));
    }
    for (what, vol) in vols {
        let staged = Staged::open(&vol, 0);
        let files = [
            ("", long_name('x'), common::pattern(60_000, 3)),
            ("", long_name('y'), b"small".to_vec()),
        ];
        let out = tmp.path().join(format!("{what}-out.ntfs"));
        create_and_check(&staged, &files, what, |s| {
            s.commit_to(&out);
            out.clone()
        });
    }
}
