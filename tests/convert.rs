//! New images of another format, held to qemu-img: `rehost convert` from raw, VHD, VHDX,
//! VMDK and qcow2 sources into raw, dynamic and fixed VHD and dynamic VHDX (`qemu-img
//! compare` finds them identical to the source, `qemu-img check` clean where it checks the
//! format, holes left holes); and `fix --output NEW.vhdx` from another format, which must
//! equal `qemu-img convert` followed by `rehost fix --in-place` of the copy.

mod common;

use common::{
    allocated, assert_identical, convert_sources, have_tool, qemu_format, qemu_img, rehost_command,
    root, run, windows_image,
};

#[test]
fn convert_gives_what_qemu_reads_as_the_source() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for src in convert_sources(dir.path()) {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let from = src.extension().unwrap().to_string_lossy().into_owned();
        for (format, ext) in [
            ("raw", "raw"),
            ("vhd", "vhd"),
            ("vhd-fixed", "vhd"),
            ("vhdx", "vhdx"),
        ] {
            let out = dir.path().join(format!("{stem}-{from}-{format}.{ext}"));
            let said = String::from_utf8(run(rehost_command()
                .arg("convert")
                .arg(&src)
                .arg(&out)
                .args(["--output-format", format])))
            .unwrap();
            assert!(said.contains("read back and compared"), "{said}");
            assert_identical(&src, &out);
            if format == "vhdx" {
                let check = qemu_img(&["check", "-f", "vhdx", out.to_str().unwrap()]);
                assert!(check.contains("No errors"), "{check}");
            }
            // Holes stay holes: the new file takes no more room than the data it holds
            // (the sample's disk is mostly free space) plus the format's own tables.
            if format != "vhd-fixed" && stem == "sample" {
                let size = std::fs::metadata(&out).unwrap().len();
                assert!(
                    allocated(&out) < size.max(64 << 20) / 2,
                    "{out:?}: {} of {size} bytes allocated",
                    allocated(&out)
                );
            }
            // rehost reads what it wrote as the same disk: the same inspection.
            let a = run(rehost_command().args(["inspect", "--json"]).arg(&src));
            let b = run(rehost_command().args(["inspect", "--json"]).arg(&out));
            let strip = |j: &[u8]| {
                let v: serde_json::Value = serde_json::from_slice(j).unwrap();
                [
                    "installs",
                    "volumes",
                    "boot_stores",
                    "virtual_size",
                    "disk_signature",
                ]
                .map(|k| v[k].clone())
            };
            assert_eq!(strip(&a), strip(&b), "{src:?} as {format}");
        }
    }
    // An output that exists is never written over; an unknown extension asks for a format.
    let src = root().join("testdata/sample/sample.vhd");
    let taken = dir.path().join("taken.vhdx");
    std::fs::write(&taken, b"mine").unwrap();
    let out = rehost_command()
        .arg("convert")
        .arg(&src)
        .arg(&taken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    let out = rehost_command()
        .arg("convert")
        .arg(&src)
        .arg(dir.path().join("new.bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn fix_into_another_format_equals_convert_then_fix_in_place() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sample_vmdk = dir.path().join("sample.vmdk");
    qemu_img(&[
        "convert",
        "-f",
        "vpc",
        "-O",
        "vmdk",
        root().join("testdata/sample/sample.vhd").to_str().unwrap(),
        sample_vmdk.to_str().unwrap(),
    ]);
    for (src, target, ext) in [
        (sample_vmdk, "hyperv-gen1", "vhdx"),
        (windows_image("win7"), "kvm-sata", "vhdx"),
        (windows_image("ws2019-ahci-off"), "kvm-sata", "vhdx"),
        (windows_image("win7"), "kvm-sata", "vhd"),
    ] {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        // One pass: the fix written as a new image of another format.
        let one = dir.path().join(format!("{stem}-{target}-one.{ext}"));
        let out = rehost_command()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["fix", "--target", target, "--output"])
            .arg(&one)
            .arg(&src)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        // Two passes: qemu-img's conversion, then the fix in place.
        let two = dir.path().join(format!("{stem}-{target}-two.{ext}"));
        let fmt = if ext == "vhd" { "vpc" } else { ext };
        qemu_img(&[
            "convert",
            "-f",
            qemu_format(&src),
            "-O",
            fmt,
            src.to_str().unwrap(),
            two.to_str().unwrap(),
        ]);
        let out = rehost_command()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["fix", "--target", target, "--in-place"])
            .arg(&two)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_identical(&one, &two);
        let check = String::from_utf8(run(rehost_command()
            .args(["check", "-t", target])
            .arg(&one)))
        .unwrap();
        assert!(check.contains(target) && check.contains("boots"), "{check}");
    }
}

/// The qcow2 and VMDK readers' allocation maps equal `qemu-img map`'s data ranges (qcow2
/// plain, compressed and a child reading all from its backing file; VMDK monolithicSparse
/// and streamOptimized), so a conversion from either reads only what the image holds.
#[test]
fn qcow2_and_vmdk_allocation_equals_qemu_img_map() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = windows_image("win7");
    let plain = dir.path().join("plain.qcow2");
    let packed = dir.path().join("packed.qcow2");
    let child = dir.path().join("child.qcow2");
    let s = src.to_str().unwrap();
    qemu_img(&[
        "convert",
        "-f",
        "vpc",
        "-O",
        "qcow2",
        s,
        plain.to_str().unwrap(),
    ]);
    qemu_img(&[
        "convert",
        "-c",
        "-f",
        "vpc",
        "-O",
        "qcow2",
        s,
        packed.to_str().unwrap(),
    ]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        plain.to_str().unwrap(),
        child.to_str().unwrap(),
    ]);
    let sparse = dir.path().join("sparse.vmdk");
    let stream = dir.path().join("stream.vmdk");
    qemu_img(&[
        "convert",
        "-f",
        "vpc",
        "-O",
        "vmdk",
        s,
        sparse.to_str().unwrap(),
    ]);
    qemu_img(&[
        "convert",
        "-f",
        "vpc",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        s,
        stream.to_str().unwrap(),
    ]);
    for image in [&plain, &packed, &child, &sparse, &stream] {
        let map = qemu_img(&["map", "--output=json", image.to_str().unwrap()]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&map).unwrap();
        let theirs = rehost_core::io::merge_ranges(
            rows.iter()
                .filter(|r| r["data"] == true)
                .map(|r| (r["start"].as_u64().unwrap(), r["length"].as_u64().unwrap()))
                .collect(),
        );
        let disk = rehost::disk::open(image, &Default::default()).unwrap();
        let ours = rehost::disk::ReadAt::allocated(&disk).unwrap().unwrap();
        assert!(!ours.is_empty());
        assert_eq!(ours, theirs, "{image:?}");
    }
}
