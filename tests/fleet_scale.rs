//! Fleets at scale: a manifest whose bad rows are reported on their rows while the rest is
//! done, directory and standard-input inputs, the ledger beside the JSON lines, a busy
//! image (locked by this test, and by another rehost process writing it: the second process
//! says so at once and does the rest), and no progress drawn on a pipe.

mod common;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn rehost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
}

/// Copies of fixtures into `dir`, under their own names.
fn copies(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let src = common::windows_image(n);
            let dst = dir.join(src.file_name().unwrap());
            std::fs::copy(&src, &dst).unwrap();
            dst
        })
        .collect()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn by_image<'a>(lines: &'a [Value], image: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["image"] == image).collect()
}

fn errors(v: &Value) -> String {
    v["errors"].to_string()
}

#[test]
fn a_manifest_reports_each_bad_row_on_its_row_and_does_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copies(d, &["ws2019", "win7"]);
    std::fs::write(d.join("notes.txt"), "not an image\n").unwrap();
    std::fs::write(
        d.join("fleet.csv"),
        "image,target\n\
         ws2019.vhdx,kvm-sata\n\
         missing.vhdx,\n\
         ws2019.vhdx,\n\
         notes.txt,\n\
         win7.vhd,no-such-target\n",
    )
    .unwrap();
    let out = rehost()
        .args(["check", "--jsonl", "-t", "hyperv-gen2", "--manifest"])
        .arg(d.join("fleet.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let l = lines(&out);
    assert_eq!(l.len(), 5, "one line per row: {l:?}");
    let img = |n: &str| d.join(n).display().to_string();
    let ws = by_image(&l, &img("ws2019.vhdx"));
    assert_eq!(ws.len(), 2);
    let done = ws.iter().find(|v| v.get("installs").is_some()).unwrap();
    assert_eq!(
        done["installs"][0]["target"], "kvm-sata",
        "the row's target"
    );
    let dup = ws.iter().find(|v| v.get("installs").is_none()).unwrap();
    assert!(errors(dup).contains("line 4: the same file as"), "{dup}");
    let missing = by_image(&l, &img("missing.vhdx"))[0];
    assert!(
        errors(missing).contains("line 3: No such file"),
        "{missing}"
    );
    let notes = by_image(&l, &img("notes.txt"))[0];
    assert!(errors(notes).contains("partition table"), "{notes}");
    let win7 = by_image(&l, &img("win7.vhd"))[0];
    assert!(
        errors(win7).contains("line 6: no target profile \\\"no-such-target\\\""),
        "{win7}"
    );
}

/// An outcome's image, status, report, hash and hash scheme.
type Row = (String, String, String, Option<String>, Option<String>);

#[test]
fn the_ledger_holds_each_image_as_its_json_line_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let images = copies(d, &["ws2019", "win7", "xp-sp3"]);
    let ledger = d.join("ledger.db");
    let out = rehost()
        .args(["check", "--jsonl", "-q", "-t", "kvm-sata,gcp", "--ledger"])
        .arg(&ledger)
        .args(&images)
        .arg(d.join("gone.vhd"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let l = lines(&out);
    assert_eq!(l.len(), 4);
    let db = rusqlite::Connection::open(&ledger).unwrap();
    let mut st = db
        .prepare("SELECT image, status, report, hash, hash_scheme FROM outcomes ORDER BY row")
        .unwrap();
    let rows: Vec<Row> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 4);
    for (image, status, report, hash, scheme) in &rows {
        let line = by_image(&l, image);
        assert_eq!(line.len(), 1, "{image}");
        let report: Value = serde_json::from_str(report).unwrap();
        assert_eq!(&report, line[0], "the ledger's report is the JSON line");
        if image.ends_with("gone.vhd") {
            assert_eq!(status, "input");
            assert!(hash.is_none());
        } else {
            assert_eq!(status, "ok");
            assert_eq!(hash.as_ref().unwrap().len(), 64);
            assert!(scheme.as_ref().unwrap().contains("first MiB"));
        }
    }
    // Verdicts per target: both targets for each install read.
    let verdicts: i64 = db
        .query_row("SELECT count(*) FROM verdicts", [], |r| r.get(0))
        .unwrap();
    let installs: usize = l
        .iter()
        .map(|v| v["installs"].as_array().map_or(0, |a| a.len()))
        .sum();
    assert_eq!(verdicts as usize, installs);
    let runs: (String, Option<i64>) = db
        .query_row("SELECT command, finished_ms FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(runs.0, "check");
    assert!(runs.1.is_some());
}

#[test]
fn a_directory_and_standard_input_name_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fleet = d.join("fleet");
    std::fs::create_dir_all(fleet.join("deeper")).unwrap();
    let a = copies(&fleet, &["ws2019"]);
    let b = copies(&fleet.join("deeper"), &["xp-sp3"]);
    // An image by content, without an extension of an image.
    std::fs::rename(&b[0], fleet.join("deeper/disk-0")).unwrap();
    std::fs::write(fleet.join("README"), "not an image").unwrap();
    let out = rehost()
        .args(["inspect", "--jsonl"])
        .arg(&fleet)
        .output()
        .unwrap();
    let l = lines(&out);
    let names: Vec<&str> = l.iter().map(|v| v["image"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&a[0].to_str().unwrap()));
    assert!(names.iter().any(|n| n.ends_with("deeper/disk-0")));
    assert!(
        l.iter().all(|v| v["errors"] == serde_json::json!([])),
        "{l:?}"
    );

    let mut child = rehost()
        .args(["inspect", "--jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(
        child.stdin.take().unwrap(),
        "{}\n{}",
        a[0].display(),
        fleet.join("deeper/disk-0").display()
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines(&out).len(), 2);
    // Standard input is a pipe: no progress is drawn, stderr is empty.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_image_locked_by_another_process_is_busy_and_the_fleet_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let images = copies(d, &["win7", "ws2019"]);
    // What another rehost writing win7.vhd in place holds: its exclusive lock.
    let held = rehost::disk::ImageLock::exclusive(&images[0]).unwrap();
    let ledger = d.join("ledger.db");
    let out = rehost()
        .args(["fix", "--in-place", "--jsonl", "-t", "kvm-sata", "--ledger"])
        .arg(&ledger)
        .args(&images)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let l = lines(&out);
    let busy = by_image(&l, images[0].to_str().unwrap())[0];
    assert!(
        errors(busy).contains("locked by another rehost process"),
        "{busy}"
    );
    let other = by_image(&l, images[1].to_str().unwrap())[0];
    assert!(other.get("installs").is_some(), "{other}");
    let db = rusqlite::Connection::open(&ledger).unwrap();
    let status: String = db
        .query_row(
            "SELECT status FROM outcomes WHERE image = ?1",
            [images[0].to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "busy");
    drop(held);
    // Busy is not final: --resume does it now, and only it.
    let out = rehost()
        .args([
            "fix",
            "--in-place",
            "--jsonl",
            "-t",
            "kvm-sata",
            "--resume",
            "--ledger",
        ])
        .arg(&ledger)
        .args(&images)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = lines(&out);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["committed"], true, "{}", l[0]);
}

#[test]
fn a_second_rehost_process_finds_the_image_busy_at_once_and_the_fleet_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let images = copies(d, &["ws2019-override", "ws2019-xen"]);
    // The first rehost writes ws2019-override in place: it takes the image's lock when it
    // opens it, then reads the file to put from a FIFO, which blocks until this test
    // writes the file and closes the FIFO.
    let fifo = d.join("file.fifo");
    common::run(Command::new("mkfifo").arg(&fifo));
    let mut first = rehost()
        .arg("put")
        .arg(&images[0])
        .arg(&fifo)
        .args(["/rehost-test.txt", "--in-place"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The FIFO opens for writing once the first process opened it for reading: it holds
    // the lock then. (Not blocking: a first process that failed would hang the test.)
    let opened = std::time::Instant::now();
    let mut writer = loop {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if let Some(status) = first.try_wait().unwrap() {
                    panic!("the first rehost ended before it read the file: {status}");
                }
                assert!(opened.elapsed() < std::time::Duration::from_secs(60));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("{}: {e}", fifo.display()),
        }
    };
    let ledger = d.join("ledger.db");
    let started = std::time::Instant::now();
    let mut second = rehost()
        .args(["fix", "--in-place", "--jsonl", "-t", "kvm-sata", "--ledger"])
        .arg(&ledger)
        .args(&images)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It does not wait for the lock: it is done well within a minute (about a second).
    while second.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            second.kill().unwrap();
            panic!("the second rehost waited for the image's lock");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let l = lines(&out);
    let busy = by_image(&l, images[0].to_str().unwrap())[0];
    assert!(
        errors(busy).contains("locked by another rehost process"),
        "{busy}"
    );
    let other = by_image(&l, images[1].to_str().unwrap())[0];
    assert_eq!(other["committed"], true, "the rest is done: {other}");
    let db = rusqlite::Connection::open(&ledger).unwrap();
    let status = |image: &Path| -> String {
        db.query_row(
            "SELECT status FROM outcomes WHERE image = ?1 ORDER BY id DESC",
            [image.to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(status(&images[0]), "busy");
    assert_eq!(status(&images[1]), "ok");
    // The first process finishes its write, untroubled.
    writer.write_all(b"written by the first process\n").unwrap();
    drop(writer);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cat = rehost()
        .arg("cat")
        .arg(&images[0])
        .arg("/rehost-test.txt")
        .output()
        .unwrap();
    assert_eq!(cat.stdout, b"written by the first process\n");
    // Then --resume fixes the image that was busy, and only it.
    let out = rehost()
        .args([
            "fix",
            "--in-place",
            "--jsonl",
            "-t",
            "kvm-sata",
            "--resume",
            "--ledger",
        ])
        .arg(&ledger)
        .args(&images)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = lines(&out);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["image"], images[0].to_str().unwrap());
    assert_eq!(l[0]["committed"], true, "{}", l[0]);
    assert_eq!(status(&images[0]), "ok");
}
