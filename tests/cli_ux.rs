//! What a user meets at the edges: files that are not disks rehost reads (named, with how to
//! convert them), errors that say why there is no volume, exit codes that match the errors
//! printed, names Windows cannot open, usage errors (exit 2), and the words of the output.

mod common;

use rehost::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rehost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `len` zero bytes with `sig` at `at`.
fn header(len: usize, at: usize, sig: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[at..at + sig.len()].copy_from_slice(sig);
    b
}

/// The library refuses `path` as unsupported, naming `words`; `inspect` and `volumes` exit 1
/// and say the same.
fn refused_as(path: &Path, kind: fn(&ErrorKind) -> bool, words: &[&str]) {
    let e = rehost::disk::open(path, &Default::default())
        .err()
        .unwrap_or_else(|| panic!("{} opened as a disk", path.display()));
    assert!(kind(&e.kind), "{}: wrong kind: {e:?}", path.display());
    assert_eq!(&*e.image, path.display().to_string());
    let msg = e.to_string();
    for w in words {
        assert!(msg.contains(w), "{w:?} missing from: {msg}");
    }
    let p = path.to_str().unwrap();
    for cmd in [&["inspect", p][..], &["volumes", p]] {
        let out = rehost(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", text(&out));
        assert!(text(&out).contains(words[0]), "{cmd:?}: {}", text(&out));
        assert!(!text(&out).contains("no Windows install"), "{}", text(&out));
    }
}

fn unsupported(k: &ErrorKind) -> bool {
    matches!(k, ErrorKind::Unsupported(_))
}

#[test]
fn images_of_formats_rehost_does_not_read_are_named_with_how_to_convert_them() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // qcow2 and VMDK are read (tests/qemu_formats.rs); VDI is not.
    let made = [("a.vdi", "vdi", "", "VirtualBox VDI")];
    for (name, fmt, opts, what) in made {
        let p = dir.path().join(name);
        let mut cmd = Command::new("qemu-img");
        cmd.args(["create", "-q", "-f", fmt]);
        if !opts.is_empty() {
            cmd.args(["-o", opts]);
        }
        common::run(cmd.arg(&p).arg("4M"));
        // qemu-img itself tells what the file is; rehost names the same format.
        let info: serde_json::Value = serde_json::from_slice(&common::run(
            Command::new("qemu-img")
                .args(["info", "--output=json"])
                .arg(&p),
        ))
        .unwrap();
        assert_eq!(info["format"], fmt, "{name}");
        refused_as(
            &p,
            unsupported,
            &[what, "qemu-img convert", &format!("-f {fmt}")],
        );
    }
    // An ESX snapshot's delta extent opened alone: named, with the way to a disk rehost reads.
    let cowd = dir.path().join("delta.vmdk");
    std::fs::write(&cowd, header(4096, 0, b"COWD")).unwrap();
    refused_as(&cowd, unsupported, &["COWD", "vmkfstools"]);
}

#[test]
fn evidence_files_optical_discs_and_encrypted_or_pooled_volumes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut luks = header(4096, 0, b"LUKS\xba\xbe");
    luks[7] = 2;
    // (E01 and Ex01, EWF versions 1 and 2, are read: tests/e01.rs, tests/ex01.rs.)
    let cases: [(PathBuf, &[&str]); 5] = [
        (
            write(d, "cd.iso", &header(0x9000, 0x8001, b"CD001")),
            &["ISO 9660", "offset 0x8001"],
        ),
        (
            write(d, "luks.img", &luks),
            &["LUKS", "LUKS2", "cryptsetup open"],
        ),
        (
            write(d, "pv.img", &header(4096, 512, b"LABELONE")),
            &["LVM2 physical volume", "offset 0x200", "vgchange"],
        ),
        (
            write(d, "fve.img", &header(4096, 3, b"-FVE-FS-")),
            &["BitLocker", "manage-bde -off"],
        ),
        (
            write(d, "ev.L01", &header(4096, 0, b"LVF\x09\x0d\x0a\xff\x00")),
            &["logical evidence file"],
        ),
    ];
    for (p, words) in &cases {
        refused_as(p, unsupported, words);
    }
    // Not one of them, nor a partition table, is still a raw disk.
    let plain = write(d, "plain.img", &vec![0u8; 1 << 20]);
    assert!(rehost::disk::open(&plain, &Default::default()).is_ok());
}

#[test]
fn a_vhd_whose_footers_are_both_broken_says_it_is_a_damaged_vhd() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.vhd");
    std::fs::copy(common::root().join("testdata/sample/sample.vhd"), &p).unwrap();
    let mut b = std::fs::read(&p).unwrap();
    let end = b.len() - 512;
    b[..8].fill(0);
    b[end..end + 8].fill(0);
    std::fs::write(&p, &b).unwrap();
    refused_as(
        &p,
        |k| matches!(k, ErrorKind::Corrupt(_)),
        &["damaged dynamic or differencing VHD", "vhd at offset 0x200"],
    );
}

/// A raw disk whose one partition lies past its end (a truncated image).
fn truncated_disk(dir: &Path) -> PathBuf {
    let mut disk = vec![0u8; 1 << 20];
    disk[446 + 4] = 7;
    disk[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    disk[446 + 12..446 + 16].copy_from_slice(&8192u32.to_le_bytes());
    disk[510..512].copy_from_slice(&[0x55, 0xAA]);
    write(dir, "truncated.raw", &disk)
}

#[test]
fn no_volume_errors_say_why_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let p = truncated_disk(dir.path());
    let p = p.to_str().unwrap();
    let cause = "lies past the end of the disk";
    for args in [
        &["ls", p][..],
        &["ls", p, "--volume", "1"],
        &["cat", p, "/x"],
    ] {
        let out = rehost(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains(cause), "{args:?}: {msg}");
        assert!(!msg.trim_end().ends_with(':'), "{args:?}: {msg}");
    }
    // Nothing at all: says that no table nor file system was found.
    let blank = write(dir.path(), "blank.raw", &vec![0u8; 1 << 20]);
    let out = rehost(&["ls", blank.to_str().unwrap()]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("no partition table and no file system"),
        "{msg}"
    );
}

#[test]
fn volumes_and_inspect_exit_1_when_they_print_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = truncated_disk(dir.path());
    let p = p.to_str().unwrap();
    let out = rehost(&["volumes", p]);
    assert!(text(&out).contains("error: "), "{}", text(&out));
    assert_eq!(out.status.code(), Some(1));
    let out = rehost(&["inspect", p]);
    assert!(text(&out).contains("error: "), "{}", text(&out));
    assert_eq!(out.status.code(), Some(1));
    let json = rehost(&["inspect", "--json", p]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(!v["errors"].as_array().unwrap().is_empty());
    // A whole image still exits 0.
    let sample = common::root().join("testdata/sample/sample.vhd");
    let sample = sample.to_str().unwrap();
    assert_eq!(rehost(&["volumes", sample]).status.code(), Some(0));
    assert_eq!(rehost(&["inspect", sample]).status.code(), Some(0));
}

#[test]
fn put_refuses_names_windows_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "s.txt", b"hello");
    let l = local.to_str().unwrap();
    let sample = common::root().join("testdata/sample/sample.vhd");
    let s = sample.to_str().unwrap();
    for name in [
        "/CON",
        "/nul.txt",
        "/Aux.tar.gz",
        "/COM1",
        "/lpt9.log",
        "/CON .txt",
    ] {
        let out = rehost(&["put", s, l, name, "--dry-run"]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        assert!(
            text(&out).contains("name devices"),
            "{name}: {}",
            text(&out)
        );
    }
    for name in ["/a.", "/a "] {
        let out = rehost(&["put", s, l, name, "--dry-run"]);
        assert_eq!(out.status.code(), Some(1), "{name:?}: {}", text(&out));
    }
    for name in ["/CONSOLE", "/com10", "/lpt0.txt", "/nul_x"] {
        let out = rehost(&["put", s, l, name, "--dry-run"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
    }
}

#[test]
fn put_refuses_an_existing_output_and_writes_take_no_stats() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "s.txt", b"hello");
    let l = local.to_str().unwrap();
    let sample = common::root().join("testdata/sample/sample.vhd");
    let s = sample.to_str().unwrap();
    // --output onto a file that is there: refused before anything is done or printed.
    let existing = write(dir.path(), "new.vhd", b"keep me");
    let out = rehost(&[
        "put",
        s,
        l,
        "/s.txt",
        "--output",
        existing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(text(&out).contains("exists"), "{}", text(&out));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // --output into a directory that is not there names the directory.
    let nowhere = dir.path().join("no/such/dir/new.vhd");
    let out = rehost(&["put", s, l, "/s.txt", "--output", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("there is no directory") && said.contains("no/such/dir"),
        "{said}"
    );
    assert!(!said.contains("rehost-partial"), "{said}");
    // --stats is for the commands that read an image.
    let copy = dir.path().join("c.vhd");
    std::fs::copy(&sample, &copy).unwrap();
    let c = copy.to_str().unwrap();
    for args in [
        &["put", c, l, "/s.txt", "--in-place", "--stats"][..],
        &["rm", c, "/boot.ini", "--in-place", "--stats"],
        &["mv", c, "/boot.ini", "/b.ini", "--in-place", "--stats"],
        &["undo", c, "--stats"],
    ] {
        let out = rehost(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("--stats"), "{}", text(&out));
    }
    assert_eq!(common::sha256_file(&copy), common::sha256_file(&sample));
}

/// reg set's --output, into an image or from a bare hive, into a directory that is not
/// there (or onto an image that is): refused before anything is printed or written, naming
/// the directory and not the temporary file rehost would have made in it.
#[test]
fn reg_output_into_a_missing_directory_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sample = common::root().join("testdata/sample/sample.vhd");
    let hive = dir.path().join("minimal");
    std::fs::copy(common::root().join("testdata/hives/hivex/minimal"), &hive).unwrap();
    let nowhere = dir.path().join("no/such/dir/new");
    let edit = |target: &Path, key: &str, output: &Path| {
        rehost(&[
            "reg",
            "set",
            target.to_str().unwrap(),
            key,
            "--value",
            "Foo",
            "--type",
            "REG_DWORD",
            "--data",
            "1",
            "--output",
            output.to_str().unwrap(),
        ])
    };
    for (target, key) in [(&sample, "HKLM\\SYSTEM\\Select"), (&hive, "\\")] {
        let out = edit(target, key, &nowhere);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(out.stdout.is_empty(), "{}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("there is no directory") && said.contains("no/such/dir"),
            "{said}"
        );
        assert!(
            !said.contains("rehost-partial") && !said.contains("rehost-new"),
            "{said}"
        );
        assert!(!dir.path().join("no").exists());
    }
    let existing = write(dir.path(), "new.vhd", b"keep me");
    let out = edit(&sample, "HKLM\\SYSTEM\\Select", &existing);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(text(&out).contains("exists"), "{}", text(&out));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
}

/// The deepest nesting of parentheses in `line`.
fn nesting(line: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in line.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The HAL fix's lines read plainly: what the change does in short sentences, then each
/// finding it repairs on a line of its own, said once for the set of changes; no line nests
/// parentheses.
#[test]
fn the_hal_fix_says_what_it_does_and_what_it_repairs_line_by_line() {
    let sample = common::root().join("testdata/sample/sample.vhd");
    let out = rehost(&[
        "fix",
        sample.to_str().unwrap(),
        "-t",
        "hyperv-gen1",
        "--dry-run",
    ]);
    let said = String::from_utf8(out.stdout).unwrap();
    for l in said
        .lines()
        .filter(|l| !l.trim_start().starts_with(['+', '-', '[']))
    {
        assert!(nesting(l) <= 1, "nested parentheses: {l}");
    }
    let lines: Vec<&str> = said.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("  hal-target: a new boot.ini entry loads halmacpi.dll"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        lines[at]
            .ends_with("ntkrpamp.exe is the PAE kernel: the loader enables PAE for this entry"),
        "{said}"
    );
    assert!(
        lines[at + 1].starts_with("    repairs hal-target: the HAL is halaacpi.dll"),
        "{said}"
    );
    assert!(
        lines[at + 2].starts_with("    repairs version-skew: "),
        "{said}"
    );
    assert_eq!(said.matches("repairs hal-target").count(), 1, "{said}");
    assert!(!said.contains("(repairs"), "{said}");
}

/// put and reg set say what their change writes in plain words (bytes of the disk, in how
/// many places), not "staged".
#[test]
fn writes_say_what_the_change_writes_not_what_was_staged() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "s.txt", b"hello");
    let copy = dir.path().join("c.vhd");
    std::fs::copy(common::root().join("testdata/sample/sample.vhd"), &copy).unwrap();
    let c = copy.to_str().unwrap();
    let l = local.to_str().unwrap();
    let said = |args: &[&str]| {
        let out = rehost(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let t = text(&out);
        assert!(!t.contains("staged"), "{args:?}: {t}");
        t
    };
    let dry = said(&["put", c, l, "/s.txt", "--dry-run"]);
    let line = dry
        .lines()
        .find(|l| l.starts_with("the change would write "))
        .unwrap_or_else(|| panic!("{dry}"));
    assert!(line.ends_with(" places"), "{line}");
    let done = said(&["put", c, l, "/s.txt", "--in-place"]);
    assert!(
        done.contains(&line.replace("would write", "writes")),
        "{line}: {done}"
    );
    let reg = said(&[
        "reg",
        "set",
        c,
        "HKLM\\SYSTEM\\Select",
        "--value",
        "Foo",
        "--type",
        "REG_DWORD",
        "--data",
        "1",
        "--in-place",
    ]);
    assert!(
        reg.contains(&format!(
            "rehost: {c}: 1 change to write into \\WINDOWS\\System32\\config\\SYSTEM on volume 1"
        )),
        "{reg}"
    );
    assert!(reg.contains("the change writes "), "{reg}");
}

#[test]
fn usage_errors_exit_2() {
    let sample = common::root().join("testdata/sample/sample.vhd");
    let s = sample.to_str().unwrap();
    let out = rehost(&["fix", s, "-t", "hyperv-gen1"]);
    assert_eq!(out.status.code(), Some(2), "no mode: {}", text(&out));
    assert!(text(&out).contains("--dry-run"), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.vhd");
    let out = rehost(&[
        "fix",
        s,
        s,
        "-t",
        "hyperv-gen1",
        "--output",
        new.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "two images: {}", text(&out));
    assert!(!new.exists());
    let out = rehost(&[
        "fix",
        s,
        "-t",
        "hyperv-gen1",
        "--dry-run",
        "--only",
        "bogus-rule",
    ]);
    assert_eq!(out.status.code(), Some(2), "--only: {}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("bogus-rule"), "{msg}");
    for id in rehost::rules::RULES
        .iter()
        .filter(|r| r.fix.is_some())
        .map(|r| r.id)
    {
        assert!(msg.contains(id), "{id} not listed: {msg}");
    }
    let out = rehost(&["fix", s, "-t", "hyperv-gen1", "--dry-run", "--skip", "nope"]);
    assert_eq!(out.status.code(), Some(2), "--skip: {}", text(&out));
    let out = rehost(&["put", s, "x", "/x"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "put without a mode: {}",
        text(&out)
    );
}

#[test]
fn counts_agree_with_their_nouns_and_a_dry_run_says_what_it_would_write() {
    let sample = common::root().join("testdata/sample/sample.vhd");
    let s = sample.to_str().unwrap();
    let out = String::from_utf8(rehost(&["inspect", s]).stdout).unwrap();
    assert!(out.lines().next().unwrap().ends_with(", 1 volume"), "{out}");
    let v: serde_json::Value =
        serde_json::from_slice(&rehost(&["inspect", "--json", s]).stdout).unwrap();
    let install = &v["installs"][0];
    let name = install["hostname"].as_str().unwrap();
    assert!(out.contains(&format!(", computer name {name}\n")), "{out}");
    for k in install["kernels"].as_array().unwrap() {
        // A kernel built under its own name says it once.
        let file = k["file"].as_str().unwrap();
        assert!(
            k["original_filename"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(file),
            "{k}"
        );
        let line = format!(
            "    kernel {file} {}\n",
            k["file_version"].as_str().unwrap()
        );
        assert!(out.contains(&line), "{line:?} not in {out}");
    }
    let out = rehost(&["fix", s, "-t", "hyperv-gen1", "--dry-run", "--jsonl"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rehost fix: 1 image for hyperv-gen1"), "{err}");
    let out = rehost(&["fix", s, "-t", "hyperv-gen1", "--dry-run"]);
    let last = String::from_utf8(out.stdout).unwrap();
    let last = last.lines().last().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_slice(
        &rehost(&["fix", s, "-t", "hyperv-gen1", "--dry-run", "--json"]).stdout,
    )
    .unwrap();
    let staged = v["staged_bytes"].as_u64().unwrap();
    assert!(staged > 0);
    assert!(
        last.ends_with(&format!(
            "dry run: nothing written; the fix would write {staged} bytes"
        )),
        "{last}"
    );
    assert!(!last.contains("staged"), "{last}");
}

#[test]
fn skipped_oracle_checks_are_summed_up_by_tool() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "skips",
        b"qemu-img\ta::one\nqemu-img\ta::two\nqemu-img\ta::two\nntfsls\tb::three\n",
    );
    let out = common::run(Command::new(common::root().join("scripts/oracle-skips.sh")).arg(&f));
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("oracle checks skipped: 3, for want of: qemu-img (2), ntfsls (1)\n"),
        "{out}"
    );
    let none = common::run(
        Command::new(common::root().join("scripts/oracle-skips.sh")).arg(dir.path().join("no")),
    );
    assert!(none.is_empty());
    // The helper the tests skip through writes where the script reads.
    assert_eq!(
        common::skips_file().parent().unwrap(),
        Path::new(env!("CARGO_TARGET_TMPDIR"))
    );
}

#[test]
fn a_truncated_image_says_what_could_not_be_read_instead_of_no_install() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.vhd");
    std::fs::copy(common::root().join("testdata/sample/sample.vhd"), &p).unwrap();
    // The footer's copy at offset 0 and the first block stay; the block holding \WINDOWS's
    // files is cut off.
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let s = p.to_str().unwrap();
    let out = rehost(&["inspect", s]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("error: "), "{}", text(&out));
    assert!(
        text(&out).contains("past the end of the file"),
        "{}",
        text(&out)
    );
    let out = rehost(&["fix", s, "-t", "hyperv-gen1", "--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(": error: ") && said.contains("past the end of the file"),
        "{said}"
    );
    assert!(!said.contains("would write 0 bytes"), "{said}");
    let out = rehost(&["reg", "query", s, "HKLM\\SYSTEM\\Select"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("past the end of the file"),
        "{}",
        text(&out)
    );
}

#[test]
fn output_onto_a_symlink_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let local = write(dir.path(), "s.txt", b"hello");
    let l = local.to_str().unwrap();
    let sample = common::root().join("testdata/sample/sample.vhd");
    let s = sample.to_str().unwrap();
    // One link to a file that is there, one dangling: neither is written through.
    let kept = write(dir.path(), "kept.vhd", b"keep me");
    let to_kept = dir.path().join("to-kept.vhd");
    std::os::unix::fs::symlink(&kept, &to_kept).unwrap();
    let nowhere = dir.path().join("not-there.vhd");
    let dangling = dir.path().join("dangling.vhd");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    for link in [&to_kept, &dangling] {
        let o = link.to_str().unwrap();
        for args in [
            &["put", s, l, "/s.txt", "--output", o][..],
            &["fix", s, "-t", "hyperv-gen1", "--output", o],
        ] {
            let out = rehost(args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
            assert!(text(&out).contains("exists"), "{args:?}: {}", text(&out));
            assert!(
                std::fs::symlink_metadata(link).unwrap().is_symlink(),
                "{args:?}"
            );
        }
    }
    assert_eq!(std::fs::read(&kept).unwrap(), b"keep me");
    assert!(!nowhere.exists(), "written through the dangling link");
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["dangling.vhd", "kept.vhd", "s.txt", "to-kept.vhd"]);
}
