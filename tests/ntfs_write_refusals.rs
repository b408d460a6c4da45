//! When the writer must not write, and what it leaves when an operation fails: a `$LogFile`
//! Windows would replay, one left by Fast Startup, a hibernated system, BitLocker, a volume
//! whose dirty flag is set, `$MFTMirr` out of step, compressed and encrypted files,
//! metafiles, a full volume and a damaged index. ntfs-3g's own mountability probe agrees
//! where it has an opinion.

mod common;
#[path = "ntfs_write/harness.rs"]
mod harness;

use harness::Staged;
use rehost::disk::{ReadAt, WriteAt};
use rehost::fs::ntfs::write::WriteOptions;
use rehost::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_of(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(src, &p).unwrap();
    p
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Volume offset of byte `at` of a file's unnamed data, through rehost's reader.
fn data_offset(vol: &Path, path: &str, at: u64) -> u64 {
    let n = Staged::open(vol, 0).reader();
    let f = n.lookup(path).unwrap();
    let e = n.data(&f, "").unwrap().extents();
    let x = e
        .iter()
        .find(|x| x.offset <= at && at < x.offset + x.len)
        .unwrap();
    x.volume_offset.unwrap() + at - x.offset
}

/// A `$LogFile` restart page of 4096 bytes: version `major.minor`, a restart area whose
/// client list and flags are as given, fixups applied.
fn restart_page(major: u16, minor: u16, in_use: u16, flags: u16, lsn: u64) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[..4].copy_from_slice(b"RSTR");
    p[4..6].copy_from_slice(&0x1Eu16.to_le_bytes());
    p[6..8].copy_from_slice(&9u16.to_le_bytes());
    p[0x10..0x14].copy_from_slice(&4096u32.to_le_bytes());
    p[0x14..0x18].copy_from_slice(&4096u32.to_le_bytes());
    p[0x18..0x1A].copy_from_slice(&0x30u16.to_le_bytes());
    p[0x1A..0x1C].copy_from_slice(&minor.to_le_bytes());
    p[0x1C..0x1E].copy_from_slice(&major.to_le_bytes());
    let ra = 0x30;
    p[ra..ra + 8].copy_from_slice(&lsn.to_le_bytes());
    p[ra + 8..ra + 10].copy_from_slice(&1u16.to_le_bytes());
    p[ra + 0xA..ra + 0xC].copy_from_slice(&0xFFFFu16.to_le_bytes());
    p[ra + 0xC..ra + 0xE].copy_from_slice(&in_use.to_le_bytes());
    p[ra + 0xE..ra + 0x10].copy_from_slice(&flags.to_le_bytes());
    let usn = 1u16;
    p[0x1E..0x20].copy_from_slice(&usn.to_le_bytes());
    for i in 1..9 {
        let end = i * 512 - 2;
        let saved = 0x1E + 2 * i;
        let (a, b) = (p[end], p[end + 1]);
        p[saved] = a;
        p[saved + 1] = b;
        p[end..end + 2].copy_from_slice(&usn.to_le_bytes());
    }
    p
}

/// The fixture volume with both restart pages of its log replaced.
fn with_log(dir: &Path, name: &str, page: &[u8]) -> PathBuf {
    let v = copy_of(&common::disk_fixture("bare.raw"), dir, name);
    for at in [0u64, 4096] {
        patch(&v, data_offset(&v, "$LogFile", at), page);
    }
    v
}

fn open_err(vol: &Path, opts: WriteOptions) -> rehost::Error {
    match Staged::open(vol, 0).writer(opts) {
        Ok(_) => panic!("{} was opened for writing", vol.display()),
        Err(e) => e,
    }
}

fn refused(e: &rehost::Error, words: &[&str]) {
    assert!(
        matches!(e.kind, ErrorKind::Refused(_)),
        "not a refusal: {e}"
    );
    let text = e.to_string();
    for w in words {
        assert!(text.contains(w), "{w:?} missing from: {text}");
    }
}

/// ntfs-3g's verdict on mounting read-write (exit code 0 when it would).
fn ntfs3g_would_mount(vol: &Path) -> Option<bool> {
    common::have_tool("ntfs-3g.probe").then(|| {
        Command::new("ntfs-3g.probe")
            .arg("--readwrite")
            .arg(vol)
            .output()
            .unwrap()
            .status
            .success()
    })
}

#[test]
fn logs_windows_would_replay_or_fast_startup_left_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // A client in use, the clean flag clear: Windows crashed or was cut off.
    let dirty = with_log(tmp.path(), "dirty", &restart_page(1, 1, 0, 0, 5000));
    let e = open_err(&dirty, WriteOptions::default());
    refused(&e, &["$LogFile", "not shut down cleanly", "chkdsk /f"]);
    assert!(!ntfs3g_would_mount(&dirty).unwrap_or(false));
    // Version 2.0: Fast Startup or hibernation keeps the volume's state in memory.
    let fast = with_log(tmp.path(), "fast", &restart_page(2, 0, 0xFFFF, 2, 5000));
    let e = open_err(&fast, WriteOptions::default());
    refused(&e, &["Fast Startup", "shut it down fully"]);
    assert!(!ntfs3g_would_mount(&fast).unwrap_or(false));
    // The more recent page counts: an old dirty page behind a newer clean one is fine.
    let v = copy_of(&common::disk_fixture("bare.raw"), tmp.path(), "mixed");
    patch(
        &v,
        data_offset(&v, "$LogFile", 0),
        &restart_page(1, 1, 0, 0, 10),
    );
    patch(
        &v,
        data_offset(&v, "$LogFile", 4096),
        &restart_page(1, 1, 0, 2, 20),
    );
    assert!(Staged::open(&v, 0).writer(WriteOptions::default()).is_ok());
}

#[test]
fn a_clean_windows_log_is_reset_with_the_first_change() {
    let tmp = tempfile::tempdir().unwrap();
    // As Windows 8+ leaves a volume after a full shutdown: client in use, marked clean.
    let v = with_log(tmp.path(), "clean", &restart_page(1, 1, 0, 2, 7777));
    let staged = Staged::open(&v, 0);
    let mut w = staged.writer(WriteOptions::default()).unwrap();
    assert!(staged.overlay.is_empty(), "opening stages nothing");
    w.create("/new.txt", b"after a clean shutdown").unwrap();
    let n = staged.reader();
    let log = n.data(&n.lookup("$LogFile").unwrap(), "").unwrap();
    let mut all = vec![0u8; log.size() as usize];
    log.read_at(0, &mut all).unwrap();
    assert!(
        all.iter().all(|b| *b == 0xFF),
        "the log is emptied as ntfs-3g empties it"
    );
    let out = tmp.path().join("out");
    staged.commit_to(&out);
    assert!(ntfs3g_would_mount(&out).unwrap_or(true));
    let model = {
        let mut m = harness::Model::read(Staged::open(&out, 0).reader());
        m.touched.insert("new.txt".into());
        m
    };
    harness::check_volume(&out, &model, 3, "after a log reset");
}

#[test]
fn hibernation_bitlocker_and_a_mirror_out_of_step_are_refused() {
    if !common::have_tool("ntfscp") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let hiber = tmp.path().join("hiberfil");
    let mut header = b"HIBR".to_vec();
    header.resize(8192, 0x11);
    std::fs::write(&hiber, &header).unwrap();
    let v = copy_of(&common::disk_fixture("bare.raw"), tmp.path(), "hibernated");
    common::run(
        Command::new("ntfscp")
            .arg("-q")
            .arg(&v)
            .arg(&hiber)
            .arg("/hiberfil.sys"),
    );
    refused(
        &open_err(&v, WriteOptions::default()),
        &["hiberfil.sys", "resume Windows"],
    );
    assert!(!ntfs3g_would_mount(&v).unwrap_or(false));
    // A hibernation file Windows resumed from ("wake") is no obstacle.
    header[..4].copy_from_slice(b"wake");
    std::fs::write(&hiber, &header).unwrap();
    let v = copy_of(&common::disk_fixture("bare.raw"), tmp.path(), "resumed");
    common::run(
        Command::new("ntfscp")
            .arg("-q")
            .arg(&v)
            .arg(&hiber)
            .arg("/hiberfil.sys"),
    );
    assert!(Staged::open(&v, 0).writer(WriteOptions::default()).is_ok());
    assert!(ntfs3g_would_mount(&v).unwrap_or(true));

    // A BitLocker volume at offset 0 of an image is refused by the disk layer (it is not a
    // disk rehost reads); behind a partition table it reaches the writer, which refuses it.
    let bare = std::fs::read(common::disk_fixture("bare.raw")).unwrap();
    let mut disk = vec![0u8; 1 << 20];
    disk[446 + 4] = 7;
    disk[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    disk[446 + 12..446 + 16].copy_from_slice(&((bare.len() / 512) as u32).to_le_bytes());
    disk[510..512].copy_from_slice(&[0x55, 0xAA]);
    disk.extend_from_slice(&bare);
    let v = tmp.path().join("bitlocker");
    std::fs::write(&v, &disk).unwrap();
    patch(&v, (1 << 20) + 3, b"-FVE-FS-");
    let e = match Staged::open(&v, 1 << 20).writer(WriteOptions::default()) {
        Ok(_) => panic!("{} was opened for writing", v.display()),
        Err(e) => e,
    };
    refused(&e, &["BitLocker", "manage-bde -off"]);

    let v = copy_of(&common::disk_fixture("bare.raw"), tmp.path(), "mirror");
    let mirror = data_offset(&v, "$MFTMirr", 3 * 1024);
    patch(&v, mirror + 0x100, b"\x55");
    refused(
        &open_err(&v, WriteOptions::default()),
        &["$MFTMirr", "chkdsk /f"],
    );
}

#[test]
fn the_dirty_flag_is_set_when_asked_and_then_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let staged = Staged::open(&common::disk_fixture("bare.raw"), 0);
    let mut w = staged
        .writer(WriteOptions {
            mark_dirty: true,
            ..WriteOptions::default()
        })
        .unwrap();
    w.create("/fix.txt", b"chkdsk will look").unwrap();
    let out = tmp.path().join("dirty");
    staged.commit_to(&out);
    if common::have_tool("ntfsinfo") {
        // ntfs-3g sees the flag too: it will not open the volume unless forced.
        let plain = Command::new("ntfsinfo")
            .arg("-m")
            .arg(&out)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&plain.stderr).contains("scheduled for check"));
        let info = String::from_utf8(common::run(
            Command::new("ntfsinfo").args(["-m", "-f"]).arg(&out),
        ))
        .unwrap();
        assert!(info.contains("Volume Flags: 0x0001"), "{info}");
    }
    let e = open_err(&out, WriteOptions::default());
    refused(&e, &["dirty flag", "chkdsk"]);
    assert!(Staged::open(&out, 0)
        .writer(WriteOptions {
            allow_dirty_volume: true,
            ..WriteOptions::default()
        })
        .is_ok());
    // Without the option the flag stays as it was.
    let staged = Staged::open(&common::disk_fixture("bare.raw"), 0);
    staged
        .writer(WriteOptions::default())
        .unwrap()
        .create("/x", b"x")
        .unwrap();
    assert!(!staged.reader().facts().unwrap().dirty);
}

#[test]
fn compressed_and_encrypted_files_and_metafiles_are_not_written() {
    for tool in ["mkntfs", "ntfscp"] {
        if !common::have_tool(tool) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let vol = tmp.path().join("compressed.ntfs");
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    common::run(
        Command::new("mkntfs")
            .args(["-F", "-Q", "-q", "-C", "-c", "4096"])
            .arg(&vol),
    );
    let src = tmp.path().join("text");
    let text: Vec<u8> = (0..20000u32)
        .flat_map(|i| format!("line {i} of text\n").into_bytes())
        .collect();
    std::fs::write(&src, &text).unwrap();
    common::run(
        Command::new("ntfscp")
            .arg("-q")
            .arg(&vol)
            .arg(&src)
            .arg("/text.txt"),
    );
    let staged = Staged::open(&vol, 0);
    let mut w = staged.writer(WriteOptions::default()).unwrap();
    refused(
        &w.replace("/text.txt", b"new").unwrap_err(),
        &["compressed", "compact /u"],
    );
    refused(
        &w.write("/text.txt", 10, b"new").unwrap_err(),
        &["compressed"],
    );
    refused(&w.set_len("/text.txt", 5).unwrap_err(), &["compressed"]);
    assert!(staged.overlay.is_empty(), "refusals stage nothing");
    // Deleting one is fine: its clusters go back to the volume.
    let free = w.free_clusters();
    w.delete("/text.txt").unwrap();
    assert!(w.free_clusters() > free);
    let out = tmp.path().join("out");
    staged.commit_to(&out);
    harness::check_volume(
        &out,
        &harness::Model::read(Staged::open(&out, 0).reader()),
        3,
        "after deleting a compressed file",
    );

    // An EFS-encrypted file (its $DATA flagged so), and metafiles.
    let v = copy_of(&common::disk_fixture("bare.raw"), tmp.path(), "efs");
    let pos = {
        let n = Staged::open(&v, 0).reader();
        let f = n.lookup("/sizes/300k.bin").unwrap();
        f.attributes
            .iter()
            .find(|a| a.ty == 0x80 && a.name.is_empty())
            .unwrap()
            .pos
    };
    patch(&v, pos + 12, &0x4000u16.to_le_bytes());
    let staged = Staged::open(&v, 0);
    let mut w = staged.writer(WriteOptions::default()).unwrap();
    refused(
        &w.replace("/sizes/300k.bin", b"x").unwrap_err(),
        &["EFS-encrypted", "cipher /d"],
    );
    refused(&w.write("/$MFT", 0, b"x").unwrap_err(), &["metadata file"]);
    refused(&w.delete("/$Bitmap").unwrap_err(), &["metadata file"]);
    refused(&w.rename("/$Extend", "/x").unwrap_err(), &["metadata file"]);
    let e = w.delete("/Windows").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{e}");
    let e = w.create("/Windows/System32/hal.dll", b"x").unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = w.create("/Windows/bad:name", b"x").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{e}");
    assert!(staged.overlay.is_empty(), "refusals stage nothing");
}

#[test]
fn a_failed_operation_changes_nothing() {
    let staged = Staged::open(&common::disk_fixture("bare.raw"), 0);
    let mut w = staged.writer(WriteOptions::default()).unwrap();
    w.create("/first.txt", b"one").unwrap();
    let before = staged.overlay.extents();
    // More than the volume holds.
    let free = w.free_clusters();
    let e = w
        .create("/huge.bin", &vec![7u8; ((free + 1) * 4096) as usize])
        .unwrap_err();
    refused(&e, &["free clusters"]);
    assert_eq!(w.free_clusters(), free, "the clusters taken are given back");
    // A damaged index block in /many: the change is refused before anything is written.
    let n = staged.reader();
    let many = n.lookup("/many").unwrap();
    let alloc = many
        .stream_desc(0xA0, "$I30", n.ctx(), "many")
        .unwrap()
        .unwrap();
    let block = alloc.runs[0].lcn.unwrap() * 4096;
    staged.dev.write_at(block + 510, &[0xEE, 0xEE]).unwrap();
    let before_damage = staged.overlay.extents();
    let e = w
        .create(
            "/many/file-0001-with-a-long-name-to-fill-the-index-blockz.txt",
            b"x",
        )
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Corrupt(_)), "{e}");
    assert!(
        e.to_string().contains("torn write") || e.to_string().contains("fixup"),
        "{e}"
    );
    assert_eq!(
        staged.overlay.extents(),
        before_damage,
        "nothing staged by the failed create"
    );
    // The volume as staged before the failures still reads back.
    staged
        .dev
        .write_at(block + 510, &{
            let mut b = [0u8; 2];
            staged.overlay.base().read_at(block + 510, &mut b).unwrap();
            b
        })
        .unwrap();
    assert!(staged.overlay.extents().len() >= before.len());
    w.create("/second.txt", b"two").unwrap();
    assert_eq!(
        harness::Model::read(staged.reader()).files["second.txt"].1,
        b"two"
    );
}
