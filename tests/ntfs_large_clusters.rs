//! NTFS with clusters above 64 KiB (Windows 10 1709 and later formats 128 KiB to 2 MiB; the
//! boot sector then gives sectors per cluster as a negative power of two): volumes made by
//! mkntfs with 128 KiB, 512 KiB and 2 MiB clusters, and one Windows 10 formatted with 2 MiB
//! clusters (whose `$MFTMirr` Windows keeps in step only for its first records), read and
//! written (a file put, replaced, grown, a directory made). Then ntfs-3g (ntfsls, ntfscat,
//! ntfsfix -n, ntfsresize's cluster accounting) and the `ntfs` crate must read what was
//! written, and rehost must read back what they read. The Sleuth Kit does not read clusters
//! above 64 KiB: the checks say so and skip it.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use harness::{check_volume, Model, Staged};
use rehost::fs::ntfs::write::{WriteOptions, Writer};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Fixed time stamps, so runs are reproducible.
fn opts() -> WriteOptions {
    WriteOptions {
        time: Some(133_500_000_000_000_000),
        ..WriteOptions::default()
    }
}

/// A fresh 64 MiB volume made by mkntfs with `cluster`-byte clusters.
fn mkntfs(dir: &Path, cluster: u32) -> PathBuf {
    let vol = dir.join(format!("c{cluster}.ntfs"));
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    common::run(
        std::process::Command::new("mkntfs")
            .args(["-F", "-Q", "-q", "-s", "512", "-c", &cluster.to_string()])
            .args(["-p", "2048", "-H", "255", "-S", "63", "-L", "BIG"])
            .arg(&vol),
    );
    vol
}

/// The cluster size the boot sector of `vol` gives, as ntfsinfo reads it.
fn ntfsinfo_cluster_size(vol: &Path) -> u64 {
    let out = common::run(std::process::Command::new("ntfsinfo").arg("-m").arg(vol));
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Cluster Size:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cluster size in ntfsinfo -m: {text}"))
}

/// Reads the volume, writes into it (a resident file, a file over several clusters in a new
/// directory, one replaced by a larger one, one grown past its clusters), commits with
/// `commit` and checks the result with the outside readers.
fn read_and_write(staged: &Staged, what: &str, commit: impl FnOnce(&Staged) -> PathBuf) {
    let cluster = staged.reader().boot().cluster_size as u64;
    if common::have_tool("ntfsinfo") {
        assert_eq!(
            cluster,
            ntfsinfo_cluster_size(&staged.image),
            "{what}: cluster size against ntfsinfo"
        );
    }
    // Untouched, the volume reads as ntfs-3g reads it.
    let mut m = Model::read(staged.reader());
    check_volume(&staged.image, &m, 20, &format!("{what}, as it was"));

    let mut w: Writer = staged.writer(opts()).unwrap();
    let put = |w: &mut Writer, m: &mut Model, path: &str, bytes: Vec<u8>| {
        let r = w
            .put(&format!("/{path}"), &bytes)
            .unwrap_or_else(|e| panic!("{what}: put {path}: {e}"));
        m.files.insert(path.to_string(), (r, bytes));
        m.touched.insert(path.to_string());
    };
    put(&mut w, &mut m, "small.txt", b"a resident file".to_vec());
    let d = w.mkdir("/dir").unwrap();
    m.dirs.insert("dir".into(), d);
    let big = common::pattern(3 * cluster as usize / 2 + 12345, 7);
    put(&mut w, &mut m, "dir/big.bin", big);
    put(&mut w, &mut m, "replaced.bin", common::pattern(700, 8));
    put(
        &mut w,
        &mut m,
        "replaced.bin",
        common::pattern(cluster as usize + 1, 9),
    );
    put(&mut w, &mut m, "grown.bin", common::pattern(5000, 10));
    let tail = common::pattern(2 * cluster as usize, 11);
    w.write("/grown.bin", 5000, &tail).unwrap();
    m.files
        .get_mut("grown.bin")
        .unwrap()
        .1
        .extend_from_slice(&tail);
    drop(w);

    let out = commit(staged);
    check_volume(&out, &m, 20, &format!("{what}, written"));
    // And rehost reads back what the others read.
    let back = Model::read(Staged::open(&out, 0).reader());
    for p in &m.touched {
        assert_eq!(
            back.files
                .get(p)
                .map(|(r, b)| (*r, b.len(), b == &m.files[p].1)),
            Some((m.files[p].0, m.files[p].1.len(), true)),
            "{what}: rehost reads back {p}"
        );
    }
}

#[test]
fn mkntfs_volumes_of_128_kib_512_kib_and_2_mib_clusters() {
    if !common::have_tool("mkntfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for cluster in [128u32 << 10, 512 << 10, 2 << 20] {
        let vol = mkntfs(tmp.path(), cluster);
        let staged = Staged::open(&vol, 0);
        assert_eq!(staged.reader().boot().cluster_size as u64, cluster as u64);
        let out = tmp.path().join(format!("c{cluster}-out.ntfs"));
        read_and_write(&staged, &format!("mkntfs -c {cluster}"), |s| {
            s.commit_to(&out);
            out.clone()
        });
    }
}

#[test]
fn a_volume_windows_10_formatted_with_2_mib_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = common::sparse_partition("ntfs/win10-2m.raw.zst", tmp.path());
    let staged = Staged::open(&vol, 0);
    assert_eq!(staged.reader().boot().cluster_size as u64, 2 << 20);
    // Written into the sparse file itself (a copy would write its gigabyte out).
    read_and_write(&staged, "Windows 10, 2 MiB clusters", |s| {
        for (o, b) in s.overlay.extents() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&s.image)
                .unwrap()
                .write_all_at(&b, o)
                .unwrap();
        }
        s.image.clone()
    });
}
