//! One image session from the first read to the commit: a fix scans the partition table
//! once, opens each file system once (refreshing the written one, not reopening it), reads
//! no more than the hives' sizes plus a few MiB from the image, and its re-check sees what
//! was staged; an edit staged through the session is what the next inspection of the same
//! session reads, while the file stays as it was.

mod common;

use rehost::formats::regf::{query, regtext};
use rehost::fs::staged::{image_options, Mode, Writers};
use rehost::fs::Image;
use rehost::rules::fix::run::fix_image;
use rehost::rules::fix::FixOptions;
use rehost::windows::registry::{self, Mounts};
use std::path::{Path, PathBuf};

/// The Windows 7 fixture (its real 11.7 MB SYSTEM hive), copied into `dir`.
fn win7(dir: &Path) -> PathBuf {
    let to = dir.join("win7.vhd");
    std::fs::copy(common::fixture("windows/win7.vhd.zst"), &to).unwrap();
    to
}

fn target(name: &str) -> rehost::rules::Target {
    common::target(name)
}

fn readable(image: &Image) -> usize {
    image
        .layout()
        .volumes
        .iter()
        .filter(|v| v.content.is_readable())
        .count()
}

#[test]
fn a_fix_scans_once_opens_each_file_system_once_and_reads_each_hive_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = win7(dir.path());
    let hives: u64 = rehost::windows::inspect(&path).unwrap().installs[0]
        .hives
        .iter()
        .map(|h| h.size)
        .sum();
    for mode in [Mode::DryRun, Mode::InPlace] {
        let image = Image::open_staged(&path, mode.clone()).unwrap();
        let volumes = readable(&image);
        let counters = image.counters();
        let report = fix_image(image, &target("kvm-sata"), &FixOptions::default(), false).unwrap();
        assert!(
            report.installs.iter().all(|i| i.after.boots())
                && !report.installs[0].changes.is_empty(),
            "{report:?}"
        );
        assert_eq!(report.committed, mode == Mode::InPlace, "{mode:?}");
        assert_eq!(counters.scans(), 1, "{mode:?}: partition-table scans");
        assert_eq!(
            counters.fs_opens(),
            volumes,
            "{mode:?}: file systems opened"
        );
        assert!(
            counters.fs_refreshes() >= 1 && counters.fs_refreshes() <= volumes,
            "{mode:?}: the written volume is refreshed once for the re-check ({})",
            counters.fs_refreshes()
        );
        let budget = hives + (4 << 20);
        eprintln!(
            "{mode:?}: read {} bytes (hives {hives}), {} scan(s), {} open(s), {} refresh(es)",
            report.bytes_read,
            counters.scans(),
            counters.fs_opens(),
            counters.fs_refreshes()
        );
        assert!(
            report.bytes_read <= budget,
            "{mode:?}: read {} bytes, more than the hives' {hives} bytes + 4 MiB",
            report.bytes_read
        );
    }
    // The in-place fix is on the file: a new session's check says it boots.
    let again = rehost::rules::check(&path, &[target("kvm-sata")]).unwrap();
    assert!(
        again.installs.iter().all(|i| i.verdict.boots()),
        "{again:?}"
    );
}

#[test]
fn what_a_session_stages_is_what_it_reads_next_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = win7(dir.path());
    let before = common::sha256_file(&path);
    let image = Image::open_staged(&path, Mode::DryRun).unwrap();
    let m = Mounts::builtin().for_file("SYSTEM").unwrap();
    let opened = rehost::windows::open_image(&image).unwrap();
    let hive = registry::open_in_image(&opened, None, m).unwrap();
    let ops = regtext::parse(
        "Windows Registry Editor Version 5.00\n\n\
         [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\rehost-session]\n\
         \"Start\"=dword:00000002\n",
    )
    .unwrap();
    let map = hive.mapping(None, false).unwrap();
    let edited = registry::edit(&hive, &ops, &map).unwrap();
    assert_eq!(edited.changes.len(), 2, "a key and a value");
    let (vol, file) = hive.location.clone().unwrap();
    let mut writers = Writers::new(&image, image_options(false, false));
    writers
        .get(vol)
        .unwrap()
        .replace(&file, &edited.bytes)
        .unwrap();
    drop(writers);
    // The same session, inspected again: the key is there.
    let again = rehost::windows::open_image(&image).unwrap();
    let hive = registry::open_in_image(&again, None, m).unwrap();
    let key = query::key(&hive.bytes, "ControlSet001\\Services\\rehost-session")
        .unwrap()
        .expect("the staged key is read back through the session");
    assert_eq!(key.values.len(), 1);
    assert_eq!(image.counters().scans(), 1);
    let out = image.finish().unwrap();
    assert!(out.commit.is_none() && out.staged_bytes > 0, "{out:?}");
    // A new session reads the file, which a dry run never wrote.
    let fresh = rehost::windows::open(&path).unwrap();
    let hive = registry::open_in_image(&fresh, None, m).unwrap();
    assert!(
        query::key(&hive.bytes, "ControlSet001\\Services\\rehost-session")
            .unwrap()
            .is_none()
    );
    assert_eq!(common::sha256_file(&path), before);
}

#[test]
fn a_session_over_any_reader_sees_what_a_session_over_the_file_sees() {
    let path = common::disk_fixture("mbr.raw");
    let bytes = std::fs::read(&path).unwrap();
    let reader: std::sync::Arc<dyn rehost::disk::ReadAt> =
        std::sync::Arc::new(rehost::disk::Memory::new("mbr.raw", bytes));
    let from_file = Image::open(&path).unwrap();
    let from_memory = Image::from_reader(reader, "mbr.raw").unwrap();
    let shape = |i: &Image| -> Vec<(u32, u64, u64, String)> {
        i.layout()
            .volumes
            .iter()
            .map(|v| (v.index, v.offset, v.size, v.content.name().to_string()))
            .collect()
    };
    assert!(!shape(&from_file).is_empty());
    assert_eq!(shape(&from_memory), shape(&from_file));
    let (v, fs) = from_memory.choose(None).unwrap();
    let listed = |fs: &rehost::fs::FileSystem| -> Vec<String> {
        fs.read_dir("")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    };
    let (_, fs_file) = from_file.choose(Some(v.index)).unwrap();
    assert_eq!(listed(&fs), listed(&fs_file));
    // Asked twice, the file system is the one opened the first time.
    from_memory.choose(None).unwrap();
    assert_eq!(from_memory.counters().fs_opens(), 1);
    assert_eq!(from_memory.counters().scans(), 1);
}
