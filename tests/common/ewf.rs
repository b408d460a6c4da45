//! What the evidence-file tests (E01, Ex01) share: the raw disks of the fixtures, reports
//! made neutral of the image's name, the hashes and verification of a disk, qemu-img's
//! comparison and the error an image gives.

use super::{rehost_command, root, run, windows_image};
use rehost::disk::{self, ReadAt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The raw disk of the sample (`sample`) or of a Windows fixture, written into `dir`.
pub fn raw_disk(name: &str, dir: &Path) -> PathBuf {
    let (src, fmt) = match name {
        "sample" => (root().join("testdata/sample/sample.vhd"), "vpc"),
        _ => (windows_image(name), "vpc"),
    };
    let out = dir.join(format!("{name}.raw"));
    run(Command::new("qemu-img")
        .args(["convert", "-f", fmt, "-O", "raw"])
        .arg(&src)
        .arg(&out));
    out
}

/// Every file of every readable volume of `ours` equals the same file read from `theirs`.
pub fn same_files(ours: &Path, theirs: &Path) -> usize {
    let a = rehost::fs::Image::open(ours).unwrap();
    let b = rehost::fs::Image::open(theirs).unwrap();
    let mut count = 0;
    for v in a
        .layout()
        .volumes
        .iter()
        .filter(|v| v.content.is_readable())
    {
        let (fa, fb) = (a.fs(v.index).unwrap(), b.fs(v.index).unwrap());
        let mut files = Vec::new();
        fa.walk(
            "",
            &mut |path, e| {
                if !e.is_dir {
                    files.push(path.to_string())
                }
            },
            &mut |path, e| panic!("{path}: {e}"),
        );
        for f in files {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            // A file the walk lists but the volume cannot give (a metadata file) fails on
            // both alike.
            let rx = fa.copy_to(&f, "", &mut x).map_err(|e| e.kind.to_string());
            let ry = fb.copy_to(&f, "", &mut y).map_err(|e| e.kind.to_string());
            assert_eq!(rx, ry, "{f}");
            assert!(x == y, "{}: volume {} {f} differs", ours.display(), v.index);
            count += usize::from(rx.is_ok());
        }
    }
    count
}

/// The command's standard output with the image's path and first line's container made
/// neutral.
pub fn report(args: &[&str], image: &Path) -> String {
    let out = rehost_command().args(args).arg(image).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace(p(image), "IMAGE");
    assert!(
        !text.is_empty(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| match l.split_once(", ") {
            Some((head, rest)) if head.starts_with("IMAGE: ") => format!("IMAGE: {rest}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The MD5 and SHA-1 of a file, by coreutils.
pub fn sums(path: &Path) -> (String, String) {
    let first = |tool: &str| {
        let out = String::from_utf8(run(Command::new(tool).arg(path))).unwrap();
        out.split_whitespace().next().unwrap().to_string()
    };
    (first("md5sum"), first("sha1sum"))
}

/// `rehost volumes --verify --json`: its report and exit code.
pub fn verify(e01: &Path) -> (serde_json::Value, i32) {
    let out = rehost_command()
        .args(["volumes", "--verify", "--json"])
        .arg(e01)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (report, out.status.code().unwrap())
}

/// `qemu-img compare` of `a` (format `fa`) and `b` (`fb`) finds them identical.
pub fn qemu_compare(a: &Path, fa: &str, b: &Path, fb: &str) {
    let out = String::from_utf8(run(Command::new("qemu-img")
        .args(["compare", "-f", fa, "-F", fb])
        .arg(a)
        .arg(b)))
    .unwrap();
    assert!(out.contains("Images are identical"), "{a:?} {b:?}: {out}");
}

/// The error `rehost::disk::open` gives for `e01`, as text.
pub fn open_error(e01: &Path) -> String {
    let e = match disk::open(e01, &Default::default()) {
        Ok(d) => {
            // Opened: then a read must fail (the damage is in a chunk).
            let mut buf = vec![0u8; d.size() as usize];
            format!(
                "{:#}",
                d.read_at(0, &mut buf).expect_err("damage went unseen")
            )
        }
        Err(e) => format!("{e:#}"),
    };
    eprintln!("{e}");
    e
}

/// The bytes of each file of `segments`.
pub fn bytes_of(segments: &[PathBuf]) -> Vec<Vec<u8>> {
    segments.iter().map(|s| std::fs::read(s).unwrap()).collect()
}

/// An evidence file is fixed only into new images: `fix --in-place` of `image` (whose
/// segment files are `segments`, made from the raw disk `raw`) is refused, saying
/// `read_only` and pointing at `<stem>.vhdx`; its dry run says so up front; `fix --output`
/// gives what qemu-img finds identical to `raw` fixed in place, and it checks as booting;
/// and no segment file differs from `before` (its bytes taken when the test began).
/// Scratch files go into `dir`.
pub fn fixed_only_into_new_images(
    image: &Path,
    segments: &[PathBuf],
    before: &[Vec<u8>],
    raw: &Path,
    read_only: &str,
    dir: &Path,
) {
    let stem = image.file_stem().unwrap().to_string_lossy();
    let refused = rehost_command()
        .args(["fix", "--target", "kvm-sata", "--in-place"])
        .arg(image)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stdout).into_owned()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(read_only) && said.contains(&format!("{stem}.vhdx` (or .vhd, .raw)")),
        "{said}"
    );
    assert!(!said.contains("yet"), "{said}");
    assert_ne!(refused.status.code(), Some(0), "{said}");
    let dry = rehost_command()
        .args(["fix", "--target", "kvm-sata", "--dry-run"])
        .arg(image)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains("--in-place would be refused: ") && said.contains(read_only),
        "{said}"
    );

    // Both fixes write the same time stamps: the clock is fixed.
    let out = dir.join("fixed.vhdx");
    run(rehost_command()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["fix", "--target", "kvm-sata", "--output"])
        .arg(&out)
        .arg(image));
    let copy = dir.join("fixed-in-place.raw");
    std::fs::copy(raw, &copy).unwrap();
    run(rehost_command()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["fix", "--target", "kvm-sata", "--in-place"])
        .arg(&copy));
    qemu_compare(&copy, "raw", &out, "vhdx");
    let check = report(&["check", "-t", "kvm-sata"], &out);
    assert!(check.contains("kvm-sata         boots"), "{check}");
    assert!(bytes_of(segments) == before, "the evidence file changed");
}
