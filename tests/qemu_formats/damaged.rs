//! Damaged and hostile VMDK and qcow2 files: errors that name the image, the layer and the
//! offset, never panics; and writes into them refused, the file left as it was.

use super::{common, p, qemu_img, source};
use rehost::disk::{self, ReadAt};
use rehost::ErrorKind;
use std::path::Path;

/// Opens `image` and reads it whole: the first error, as text (panics if all of it reads).
fn first_error(image: &Path) -> String {
    let e = match disk::open(image, &Default::default()) {
        Err(e) => e,
        Ok(d) => {
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = 0;
            loop {
                if pos >= d.size() {
                    panic!(
                        "{} read whole without an error: {:?}",
                        image.display(),
                        d.info()
                    );
                }
                let n = (d.size() - pos).min(buf.len() as u64) as usize;
                if let Err(e) = d.read_at(pos, &mut buf[..n]) {
                    break e;
                }
                pos += n as u64;
            }
        }
    };
    let msg = e.to_string();
    let name = image.file_name().unwrap().to_string_lossy();
    assert!(
        msg.contains(&*name),
        "the error does not name the image: {msg}"
    );
    msg
}

fn patch(image: &Path, at: usize, bytes: &[u8]) {
    let mut b = std::fs::read(image).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(image, b).unwrap();
}

fn be64(image: &Path, at: usize) -> u64 {
    let b = std::fs::read(image).unwrap();
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn make(dir: &Path, raw: &Path, name: &str, fmt: &str, opts: &[&str]) -> std::path::PathBuf {
    let img = dir.join(name);
    let mut args = vec!["convert", "-f", "raw", "-O", fmt];
    args.extend(opts);
    args.extend([p(raw), p(&img)]);
    qemu_img(&args);
    img
}

#[test]
fn damaged_qcow2_files_give_errors_naming_image_layer_and_offset() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = source(d);
    // Truncated: the L2 tables or clusters past the new end.
    let t = make(d, &raw, "truncated.qcow2", "qcow2", &[]);
    let len = std::fs::metadata(&t).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&t)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let msg = first_error(&t);
    assert!(msg.contains("qcow2 at offset 0x"), "{msg}");
    // The L1 table's offset past the end.
    let l1 = make(d, &raw, "l1.qcow2", "qcow2", &[]);
    patch(&l1, 40, &(1u64 << 50).to_be_bytes());
    assert!(first_error(&l1).contains("qcow2 at offset 0x28: L1 table at 0x4000000000000"));
    // The first L1 entry points past the end of the file.
    let l2 = make(d, &raw, "l2.qcow2", "qcow2", &[]);
    let l1_at = be64(&l2, 40) as usize;
    patch(&l2, l1_at, &((1u64 << 63) | (1 << 40)).to_be_bytes());
    let msg = first_error(&l2);
    assert!(
        msg.contains(&format!(
            "qcow2 at offset {l1_at:#x}: L1 entry points at an L2 table"
        )),
        "{msg}"
    );
    // A compressed cluster's data overwritten.
    let c = make(d, &raw, "garbage.qcow2", "qcow2", &["-c"]);
    let mut b = std::fs::read(&c).unwrap();
    let n = b.len();
    for (i, x) in b[n / 2..n - 4096].iter_mut().enumerate() {
        *x = (i * 131 % 251) as u8;
    }
    std::fs::write(&c, b).unwrap();
    assert!(first_error(&c).contains("qcow2 at offset"));
    // Unknown incompatible features, a huge cluster size, version 4.
    for (at, bytes, want) in [
        (
            72usize,
            &(1u64 << 40).to_be_bytes()[..],
            "incompatible features",
        ),
        (20, &30u32.to_be_bytes()[..], "cluster_bits 30"),
        (4, &4u32.to_be_bytes()[..], "qcow2 version 4"),
        (
            36,
            &u32::MAX.to_be_bytes()[..],
            "L1 table of 4294967295 entries",
        ),
    ] {
        let f = make(d, &raw, "fields.qcow2", "qcow2", &[]);
        patch(&f, at, bytes);
        let msg = first_error(&f);
        assert!(msg.contains(want), "{want:?} missing from {msg}");
        std::fs::remove_file(&f).unwrap();
    }
}

#[test]
fn a_backing_loop_and_an_encrypted_qcow2_are_refused() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = d.join("a.qcow2");
    let b = d.join("b.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", p(&a), "8M"]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "a.qcow2",
        "-F",
        "qcow2",
        p(&b),
    ]);
    qemu_img(&["rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", p(&a)]);
    let msg = first_error(&b);
    assert!(msg.contains("chain loops back"), "{msg}");
    let enc = d.join("enc.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "--object",
        "secret,id=sec0,data=not-a-real-key",
        "-f",
        "qcow2",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=sec0",
        p(&enc),
        "8M",
    ]);
    let e = disk::open(&enc, &Default::default())
        .err()
        .expect("refused");
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
    assert!(
        e.to_string().contains(
            "enc.qcow2: qcow2 at offset 0x20: unsupported: this qcow2 image is encrypted (LUKS)"
        ),
        "{e}"
    );
}

#[test]
fn damaged_vmdk_files_give_errors_naming_image_layer_and_offset() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = source(d);
    // A streamOptimized file cut in half: its last grains gone.
    let s = make(
        d,
        &raw,
        "stream.vmdk",
        "vmdk",
        &["-o", "subformat=streamOptimized"],
    );
    let len = std::fs::metadata(&s).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert!(first_error(&s).contains("stream.vmdk: vmdk at offset"));
    // The grain directory (and the redundant one) past the end of the file.
    let g = make(d, &raw, "gd.vmdk", "vmdk", &[]);
    patch(&g, 56, &(1u64 << 40).to_le_bytes());
    patch(&g, 48, &(1u64 << 40).to_le_bytes());
    assert!(first_error(&g).contains("gd.vmdk: vmdk at offset 0x38: grain directory at sector"));
    // One grain directory damaged: the redundant one is read, and noted.
    let r = make(d, &raw, "rgd.vmdk", "vmdk", &[]);
    patch(&r, 56, &(1u64 << 40).to_le_bytes());
    let opened = disk::open(&r, &Default::default()).unwrap();
    assert!(opened
        .info()
        .notes
        .iter()
        .any(|n| n.contains("the redundant one was read")));
    assert_eq!(super::our_sha(&r), common::sha256_file(&raw));
    // Compressed grains overwritten.
    let c = make(
        d,
        &raw,
        "grains.vmdk",
        "vmdk",
        &["-o", "subformat=streamOptimized"],
    );
    let mut b = std::fs::read(&c).unwrap();
    let n = b.len();
    for (i, x) in b[n / 3..n / 2].iter_mut().enumerate() {
        *x = (i * 7 % 253) as u8;
    }
    std::fs::write(&c, b).unwrap();
    assert!(first_error(&c).contains("grains.vmdk: vmdk at offset"));
    // A descriptor naming a missing extent, and an extent type rehost does not read.
    let flat = make(
        d,
        &raw,
        "flat.vmdk",
        "vmdk",
        &["-o", "subformat=monolithicFlat"],
    );
    let text = std::fs::read_to_string(&flat).unwrap();
    std::fs::write(&flat, text.replace("flat.vmdk\"", "gone.vmdk\"")).unwrap();
    assert!(first_error(&flat).contains("gone.vmdk"));
    std::fs::write(&flat, text.replace(" FLAT ", " SESPARSE ")).unwrap();
    assert!(first_error(&flat).contains("extent type SESPARSE is not read"));
}

#[test]
fn writes_into_vmdk_and_qcow2_are_refused_with_the_conversion_and_the_file_is_untouched() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = source(d);
    for (name, fmt) in [("w.vmdk", "vmdk"), ("w.qcow2", "qcow2")] {
        let img = make(d, &raw, name, fmt, &[]);
        let before = common::sha256_file(&img);
        let e = disk::open_for_write(&img, &disk::WriteOptions::in_place())
            .err()
            .expect("refused");
        assert!(matches!(e.kind, ErrorKind::Refused(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "reads {fmt} images but does not write them in place"
            )) && msg.contains("--output")
                && msg.contains(".vhdx"),
            "{msg}"
        );
        // Into a new image: refused when the change is planned, before anything is written.
        let opts = disk::WriteOptions {
            in_place: false,
            ..disk::WriteOptions::in_place()
        };
        let s = disk::open_for_write(&img, &opts).unwrap();
        rehost::disk::WriteAt::write_at(&*s.overlay(), 0, &[1u8; 512]).unwrap();
        let e = s
            .commit_to(&d.join("new.img"), &Default::default())
            .expect_err("refused");
        assert!(matches!(e.kind, ErrorKind::Refused(_)), "{e}");
        assert!(!d.join("new.img").exists() && !d.join("new.img.rehost-partial").exists());
        assert_eq!(common::sha256_file(&img), before, "{name} was changed");
        // The command line says the same (`put` in place).
        let local = d.join("x.txt");
        std::fs::write(&local, b"x").unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rehost"))
            .args(["put", "--in-place"])
            .args([p(&img), p(&local), "/x.txt"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && said.contains("does not write them"),
            "{said}"
        );
        assert_eq!(
            common::sha256_file(&img),
            before,
            "{name} was changed by put"
        );
    }
}
