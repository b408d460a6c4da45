//! `inspect` and `check` on a Windows image converted to VMDK and qcow2 say what they say of
//! the original (the first line's format aside).

use super::{common, p, qemu_img};
use std::path::Path;
use std::process::Command;

/// The command's standard output with the image's path and its container's kind replaced.
fn report(args: &[&str], image: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .arg(image)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace(p(image), "IMAGE");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for l in &mut lines {
        for kind in [
            "raw fixed",
            "vhd fixed",
            "vhd dynamic",
            "vhdx dynamic",
            "vhdx fixed",
            "vmdk dynamic",
            "vmdk fixed",
            "qcow2 dynamic",
        ] {
            *l = l.replace(&format!("IMAGE: {kind},"), "IMAGE: FORMAT,");
        }
    }
    assert!(
        !lines.is_empty(),
        "{args:?} printed nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines.join("\n")
}

/// Converts `original` (of qemu-img format `from`) to each format and compares reports.
fn same_reports(original: &Path, from: &str, dir: &Path) {
    let raw = dir.join("original.raw");
    qemu_img(&["convert", "-f", from, "-O", "raw", p(original), p(&raw)]);
    let inspect = report(&["inspect"], &raw);
    let check = report(
        &[
            "check",
            "--target",
            "azure-gen1",
            "--target",
            "kvm-virtio-blk",
        ],
        &raw,
    );
    assert_eq!(inspect, report(&["inspect"], original));
    for (name, fmt, opts) in [
        ("stream.vmdk", "vmdk", "subformat=streamOptimized"),
        ("sparse.vmdk", "vmdk", "subformat=monolithicSparse"),
        ("split.vmdk", "vmdk", "subformat=twoGbMaxExtentSparse"),
        ("v2.qcow2", "qcow2", "compat=0.10"),
        ("zlib.qcow2", "qcow2", "compat=1.1"),
    ] {
        let img = dir.join(name);
        let mut args = vec!["convert", "-f", "raw", "-O", fmt, "-o", opts];
        if name == "zlib.qcow2" {
            args.push("-c");
        }
        args.extend([p(&raw), p(&img)]);
        qemu_img(&args);
        assert_eq!(report(&["inspect"], &img), inspect, "inspect of {name}");
        assert_eq!(
            report(
                &[
                    "check",
                    "--target",
                    "azure-gen1",
                    "--target",
                    "kvm-virtio-blk"
                ],
                &img
            ),
            check,
            "check of {name}"
        );
        eprintln!("{name}: inspect and check as on {}", original.display());
        std::fs::remove_file(&img).unwrap();
    }
}

#[test]
fn the_sample_converted_reports_as_the_original() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    same_reports(
        &common::root().join("testdata/sample/sample.vhd"),
        "vpc",
        dir.path(),
    );
}

#[test]
fn windows_7_converted_reports_as_the_original() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    same_reports(&common::windows_image("win7"), "vpc", dir.path());
}
