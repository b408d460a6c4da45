//! Fixes written in place into qcow2 images, held to qemu-img. Each image is made by
//! qemu-img from a fixture (64 KiB clusters as version 3 and version 2, 512-byte clusters so
//! that the commit allocates L2 tables and refcount blocks, lazy refcounts, and a child
//! whose clusters all read from its backing file); the same fix is done in place on a raw
//! copy. Then: `qemu-img compare` finds the qcow2 identical to the fixed raw copy,
//! `qemu-img check` finds no error and no leak, `check` says the install boots, the backing
//! file is untouched, and `undo` gives back the original file byte for byte. Images rehost
//! does not write in place (compressed clusters, internal snapshots) are refused unchanged.

mod common;

use common::{have_tool, rehost_command, root, run, sha256_file, windows_image};
use std::path::Path;
use std::process::Command;

fn qemu_img(args: &[&str]) -> String {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `qemu-img check`: no corruption, no leak, no error.
fn assert_check_clean(image: &Path) {
    let out = Command::new("qemu-img")
        .args(["check", "-f", "qcow2", "--output=json"])
        .arg(image)
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{image:?}: {e}: {out:?}"));
    for key in ["check-errors", "corruptions", "leaks"] {
        let n = json.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        assert_eq!(n, 0, "{image:?}: qemu-img check says {key} {n}: {json}");
    }
    assert!(out.status.success(), "{image:?}: {out:?}");
}

fn fix_in_place(image: &Path, target: &str) -> std::process::Output {
    rehost_command()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["fix", "--target", target, "--in-place"])
        .arg(image)
        .output()
        .unwrap()
}

#[test]
fn fixes_in_place_equal_the_raw_fix_and_check_clean() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let sample = root().join("testdata/sample/sample.vhd");
    let win7 = windows_image("win7");
    let ws2019 = windows_image("ws2019-ahci-off");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    // (name, source, target, qemu-img arguments that make the qcow2 from the source)
    let base7 = d("win7-base.qcow2");
    qemu_img(&["convert", "-f", "vpc", "-O", "qcow2", &s(&win7), &base7]);
    let base_sum = sha256_file(Path::new(&base7));
    let cases: Vec<(&str, &Path, &str, Vec<String>)> = vec![
        (
            "sample-v3",
            &sample,
            "hyperv-gen1",
            vec!["convert".into(), "-O".into(), "qcow2".into()],
        ),
        (
            "sample-v2",
            &sample,
            "hyperv-gen1",
            vec![
                "convert".into(),
                "-O".into(),
                "qcow2".into(),
                "-o".into(),
                "compat=0.10".into(),
            ],
        ),
        (
            "sample-512",
            &sample,
            "hyperv-gen1",
            vec![
                "convert".into(),
                "-O".into(),
                "qcow2".into(),
                "-o".into(),
                "cluster_size=512".into(),
            ],
        ),
        (
            "ws2019-lazy",
            &ws2019,
            "kvm-sata",
            vec![
                "convert".into(),
                "-O".into(),
                "qcow2".into(),
                "-o".into(),
                "lazy_refcounts=on".into(),
            ],
        ),
        ("win7-child", &win7, "kvm-sata", vec!["create".into()]),
    ];
    for (name, src, target, how) in cases {
        let image = d(&format!("{name}.qcow2"));
        if how[0] == "create" {
            qemu_img(&[
                "create", "-q", "-f", "qcow2", "-b", &base7, "-F", "qcow2", &image,
            ]);
        } else {
            let fmt = if s(src).ends_with(".vhdx") {
                "vhdx"
            } else {
                "vpc"
            };
            let mut args: Vec<String> =
                vec!["convert".into(), "-q".into(), "-f".into(), fmt.into()];
            args.extend(how[1..].iter().cloned());
            args.extend([s(src), image.clone()]);
            qemu_img(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let before = sha256_file(Path::new(&image));
        let before_len = std::fs::metadata(&image).unwrap().len();
        // The expected result: the same fix on a raw copy.
        let raw = d(&format!("{name}.raw"));
        qemu_img(&["convert", "-q", "-f", "qcow2", "-O", "raw", &image, &raw]);
        let out = fix_in_place(Path::new(&raw), target);
        assert_eq!(out.status.code(), Some(0), "{name} raw: {out:?}");
        let out = fix_in_place(Path::new(&image), target);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert_ne!(
            sha256_file(Path::new(&image)),
            before,
            "{name}: nothing written"
        );
        assert_check_clean(Path::new(&image));
        let cmp = qemu_img(&["compare", "-f", "qcow2", "-F", "raw", &image, &raw]);
        assert!(cmp.contains("Images are identical"), "{name}: {cmp}");
        let check = String::from_utf8(run(rehost_command()
            .args(["check", "-t", target])
            .arg(&image)))
        .unwrap();
        assert!(check.contains("boots"), "{name}: {check}");
        assert_eq!(
            sha256_file(Path::new(&base7)),
            base_sum,
            "{name}: the backing file changed"
        );
        // Undo: the original file, byte for byte, and its length.
        run(rehost_command().arg("undo").arg(&image));
        assert_eq!(
            std::fs::metadata(&image).unwrap().len(),
            before_len,
            "{name}"
        );
        assert_eq!(sha256_file(Path::new(&image)), before, "{name}: undo");
        assert_check_clean(Path::new(&image));
    }
}

#[test]
fn compressed_clusters_and_snapshots_are_refused_unchanged() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sample = root()
        .join("testdata/sample/sample.vhd")
        .to_string_lossy()
        .into_owned();
    let compressed = dir.path().join("c.qcow2").to_string_lossy().into_owned();
    qemu_img(&[
        "convert",
        "-q",
        "-c",
        "-f",
        "vpc",
        "-O",
        "qcow2",
        &sample,
        &compressed,
    ]);
    let snap = dir.path().join("s.qcow2").to_string_lossy().into_owned();
    qemu_img(&["convert", "-q", "-f", "vpc", "-O", "qcow2", &sample, &snap]);
    qemu_img(&["snapshot", "-c", "before", &snap]);
    for (image, why) in [(&compressed, "compressed"), (&snap, "internal snapshots")] {
        let before = sha256_file(Path::new(image));
        let out = fix_in_place(Path::new(image), "hyperv-gen1");
        let err = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(0), "{image}: {out:?}");
        assert!(
            err.contains(why) && err.contains("--output"),
            "{image}: {err}"
        );
        assert_eq!(sha256_file(Path::new(image)), before, "{image} changed");
    }
}

/// `fix --output NEW.qcow2` from a qcow2: the source copied, the fix planned as in place on
/// the copy; equal to the fix of a raw copy, and clean by `qemu-img check`.
#[test]
fn fix_output_to_a_new_qcow2_equals_the_raw_fix() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let sample = root()
        .join("testdata/sample/sample.vhd")
        .to_string_lossy()
        .into_owned();
    let (src, out, raw) = (p("s.qcow2"), p("o.qcow2"), p("s.raw"));
    qemu_img(&["convert", "-q", "-f", "vpc", "-O", "qcow2", &sample, &src]);
    qemu_img(&["convert", "-q", "-f", "vpc", "-O", "raw", &sample, &raw]);
    let before = sha256_file(Path::new(&src));
    let done = rehost_command()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["fix", "--target", "hyperv-gen1", "--output", &out, &src])
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(
        fix_in_place(Path::new(&raw), "hyperv-gen1").status.code(),
        Some(0)
    );
    assert_check_clean(Path::new(&out));
    let cmp = qemu_img(&["compare", "-f", "qcow2", "-F", "raw", &out, &raw]);
    assert!(cmp.contains("Images are identical"), "{cmp}");
    assert_eq!(sha256_file(Path::new(&src)), before, "the source changed");
}
