//! New qcow2, VMDK (monolithicSparse and streamOptimized) and Azure VHD images, held to
//! qemu-img: `rehost convert` from raw, VHD, VHDX, VMDK and qcow2 sources reads as the
//! source (`qemu-img compare`), passes `qemu-img check` without errors or leaks, keeps
//! holes, and is the format, version and layout asked for (`qemu-img info`); the Azure VHD
//! is fixed, a whole number of MiB, and qemu reads that size exactly (as it does the size
//! of every VHD rehost writes); and `fix --output NEW.qcow2` / `NEW.vmdk` (or any name
//! with `--output-format vmdk-stream` / `vhd-azure`) equals `qemu-img convert` followed
//! by `rehost fix --in-place`.

mod common;

use common::{
    allocated, assert_identical, convert_sources, have_tool, qemu_format, qemu_img, rehost_command,
    root, run, windows_image,
};
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `qemu-img check`: no errors, no leaks.
fn assert_clean(image: &Path) {
    let out = qemu_img(&["check", "-f", qemu_format(image), s(image)]);
    assert!(
        out.contains("No errors were found") && !out.contains("leaked"),
        "{image:?}: {out}"
    );
}

/// `qemu-img info --output=json`, of an image read as `format`.
fn info(image: &Path, format: &str) -> serde_json::Value {
    serde_json::from_str(&qemu_img(&[
        "info",
        "-f",
        format,
        "--output=json",
        s(image),
    ]))
    .unwrap()
}

/// `rehost convert SRC OUT --output-format FORMAT`, which must say it read the result back.
fn convert(src: &Path, out: &Path, format: &str) -> String {
    let said = String::from_utf8(run(rehost_command()
        .arg("convert")
        .arg(src)
        .arg(out)
        .args(["--output-format", format])))
    .unwrap();
    assert!(said.contains("read back and compared"), "{said}");
    said
}

/// The sources: the sample (dynamic VHD), Windows 7 (VHD), Server 2019 (VHDX), the sample
/// made VMDK and qcow2 by qemu-img, and Windows 7 as a sparse 4 GiB raw disk with a few
/// pieces of data far apart.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut v = convert_sources(dir);
    let sparse = dir.join("win7-4g.raw");
    qemu_img(&[
        "convert",
        "-f",
        "vpc",
        "-O",
        "raw",
        s(&windows_image("win7")),
        s(&sparse),
    ]);
    let f = std::fs::File::options().write(true).open(&sparse).unwrap();
    f.set_len(4 << 30).unwrap();
    // Bytes past the partitions, in other 512 MiB (qcow2 L2 table) and 32 MiB (VMDK grain
    // table) spans, one piece across a grain's edge, and the disk's last sector.
    use std::os::unix::fs::FileExt;
    let noise: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
    for at in [(1u64 << 30) + 12_345, (3u64 << 30) + (64 << 10) - 1000] {
        f.write_all_at(&noise, at).unwrap();
    }
    f.write_all_at(&[0xa5; 512], (4 << 30) - 512).unwrap();
    v.push(sparse);
    v
}

#[test]
fn every_source_into_qcow2_and_vmdk_reads_as_the_source_and_checks_clean() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for src in sources(dir.path()) {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let from = src.extension().unwrap().to_string_lossy().into_owned();
        let size =
            rehost::disk::ReadAt::size(&rehost::disk::open(&src, &Default::default()).unwrap());
        for (format, ext) in [
            ("qcow2", "qcow2"),
            ("vmdk", "vmdk"),
            ("vmdk-stream", "vmdk"),
        ] {
            let out = dir.path().join(format!("{stem}-{from}-{format}.{ext}"));
            convert(&src, &out, format);
            assert_identical(&src, &out);
            assert_clean(&out);
            let i = info(&out, ext);
            assert_eq!(i["virtual-size"], size, "{out:?}");
            assert_eq!(i["cluster-size"], 65536, "{out:?}");
            let data = &i["format-specific"]["data"];
            match format {
                "qcow2" => {
                    // Version 3 ("compat 1.1"), 16-bit refcounts, no compression.
                    assert_eq!(data["compat"], "1.1", "{i}");
                    assert_eq!(data["refcount-bits"], 16, "{i}");
                    assert_eq!(data["compression-type"], "zlib", "{i}");
                }
                "vmdk" => {
                    assert_eq!(data["create-type"], "monolithicSparse", "{i}");
                    assert_ne!(data["extents"][0]["compressed"], true, "{i}");
                    assert_redundant_tables_agree(&out, &dir.path().join("damaged.vmdk"));
                }
                _ => {
                    assert_eq!(data["create-type"], "streamOptimized", "{i}");
                    assert_eq!(data["extents"][0]["compressed"], true, "{i}");
                    // The end of the stream as VMware writes it: the footer marker, the
                    // footer (the header naming the grain directory), the end-of-stream
                    // marker.
                    let bytes = std::fs::read(&out).unwrap();
                    let tail = &bytes[bytes.len() - 1536..];
                    assert_eq!(&tail[12..16], &3u32.to_le_bytes(), "footer marker");
                    assert_eq!(&tail[512..516], b"KDMV", "footer");
                    assert_ne!(&tail[512 + 56..512 + 64], &[0xff; 8], "footer's gdOffset");
                    assert_eq!(&tail[1024..], &[0u8; 512][..], "end-of-stream marker");
                    assert_eq!(&bytes[56..64], &[0xff; 8], "the header's gdOffset: at end");
                }
            }
            // Holes stay holes: a disk that is mostly free space takes little room.
            if stem == "sample" || stem == "win7-4g" {
                assert!(
                    allocated(&out) < (size / 2).max(4 << 20),
                    "{out:?}: {} bytes allocated for a disk of {size}",
                    allocated(&out)
                );
            }
            if stem == "win7-4g" {
                assert!(allocated(&out) < 64 << 20, "{out:?}");
                assert!(std::fs::metadata(&out).unwrap().len() < 64 << 20, "{out:?}");
            }
            // rehost reads what it wrote as the same disk: the same inspection.
            let a = run(rehost_command().args(["inspect", "--json"]).arg(&src));
            let b = run(rehost_command().args(["inspect", "--json"]).arg(&out));
            let strip = |j: &[u8]| {
                let v: serde_json::Value = serde_json::from_slice(j).unwrap();
                ["installs", "volumes", "boot_stores", "virtual_size"].map(|k| v[k].clone())
            };
            assert_eq!(strip(&a), strip(&b), "{src:?} as {format}");
        }
    }
}

/// A monolithicSparse VMDK's redundant grain directory points at grain tables of its own
/// that hold what the primary ones do; with the primary directory damaged (an entry past
/// the end of the file), rehost reads the disk through the redundant one, the same disk
/// (converted to raw, identical to the undamaged image by qemu-img compare).
fn assert_redundant_tables_agree(image: &Path, damaged: &Path) {
    let b = std::fs::read(image).unwrap();
    let le64 = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let le32 = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let (capacity, rgd, gd) = (le64(12), le64(48) as usize * 512, le64(56) as usize * 512);
    assert_eq!(le32(8) & 2, 2, "the redundant grain directory flag");
    let tables = capacity.div_ceil(128).div_ceil(512) as usize;
    for t in 0..tables {
        let (p, r) = (le32(gd + 4 * t) * 512, le32(rgd + 4 * t) * 512);
        assert!(p != r && p != 0 && r != 0, "table {t}: {p} {r}");
        assert_eq!(b[p..p + 2048], b[r..r + 2048], "{image:?}: grain table {t}");
    }
    let mut bad = b.clone();
    bad[gd..gd + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(damaged, &bad).unwrap();
    let raw = damaged.with_extension("raw");
    let _ = std::fs::remove_file(&raw);
    convert(damaged, &raw, "raw");
    assert_identical(image, &raw);
    std::fs::remove_file(&raw).unwrap();
    std::fs::remove_file(damaged).unwrap();
}

/// The size qemu reads from a VHD rehost wrote.
fn qemu_vhd_size(image: &Path) -> u64 {
    info(image, "vpc")["virtual-size"].as_u64().unwrap()
}

#[test]
fn the_azure_vhd_is_fixed_and_whole_mib_and_qemu_reads_every_vhd_size_exactly() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The sample's 4,212,736 bytes (whole cylinders of the specification's geometry) and a
    // 127 MiB disk (not whole cylinders: qemu read it short before).
    let odd = dir.path().join("odd.raw");
    let raw = dir.path().join("sample.raw");
    let sample = root().join("testdata/sample/sample.vhd");
    qemu_img(&["convert", "-f", "vpc", "-O", "raw", s(&sample), s(&raw)]);
    std::fs::copy(&raw, &odd).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&odd)
        .unwrap()
        .set_len(127 << 20)
        .unwrap();
    for (src, size) in [(&raw, 4_212_736u64), (&odd, 127 << 20)] {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        for format in ["vhd", "vhd-fixed"] {
            let out = dir.path().join(format!("{stem}-{format}.vhd"));
            convert(src, &out, format);
            assert_eq!(qemu_vhd_size(&out), size, "{out:?}");
            assert_identical(src, &out);
        }
        let out = dir.path().join(format!("{stem}-azure.vhd"));
        let said = convert(src, &out, "vhd-azure");
        let mib = size.div_ceil(1 << 20) << 20;
        assert_eq!(said.contains("rounded up"), mib != size, "{said}");
        // qemu-img info: a vpc image of exactly that many MiB, fixed (no cluster size: the
        // disk, then the footer).
        let text = qemu_img(&["info", "-f", "vpc", s(&out)]);
        assert!(text.contains("file format: vpc"), "{text}");
        assert!(
            text.contains(&format!("virtual size: {} MiB ({mib} bytes)", mib >> 20)),
            "{text}"
        );
        assert!(!text.contains("cluster_size"), "{text}");
        assert_eq!(std::fs::metadata(&out).unwrap().len(), mib + 512);
        let bytes = std::fs::read(&out).unwrap();
        let footer = &bytes[mib as usize..];
        assert_eq!(&footer[..8], b"conectix");
        assert_eq!(&footer[60..64], &2u32.to_be_bytes(), "disk type: fixed");
        assert_eq!(&footer[48..56], &mib.to_be_bytes(), "current size");
        // The disk as it was, then zeros (qemu-img compare reads a longer image's rest as
        // zeros, and says so).
        assert_identical(src, &out);
        let v: serde_json::Value =
            serde_json::from_slice(&run(rehost_command().args(["inspect", "--json"]).arg(&out)))
                .unwrap();
        assert_eq!(v["virtual_size"], mib, "{v}");
    }
}

#[test]
fn fix_into_qcow2_and_vmdk_equals_convert_then_fix_in_place() {
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
        s(&root().join("testdata/sample/sample.vhd")),
        s(&sample_vmdk),
    ]);
    for (src, target) in [
        (sample_vmdk.clone(), "hyperv-gen1"),
        (windows_image("win7"), "kvm-sata"),
    ] {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        // Two passes: qemu-img's conversion (into a format rehost writes in place), then
        // the fix in place.
        let two = dir.path().join(format!("{stem}-{target}-two.vhdx"));
        qemu_img(&[
            "convert",
            "-f",
            qemu_format(&src),
            "-O",
            "vhdx",
            s(&src),
            s(&two),
        ]);
        let out = rehost_command()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["fix", "--target", target, "--in-place"])
            .arg(&two)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        for (ext, named) in [
            ("qcow2", None),
            ("vmdk", None),
            ("vmdk", Some("vmdk-stream")),
            ("vhd", Some("vhd-azure")),
        ] {
            // One pass: the fix written as a new qcow2 or VMDK (from a VMDK too), or in
            // the format --output-format names.
            let one = dir
                .path()
                .join(format!("{stem}-{target}-{}.{ext}", named.unwrap_or("one")));
            let mut cmd = rehost_command();
            cmd.env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["fix", "--target", target, "--output"])
                .arg(&one)
                .arg(&src);
            if let Some(n) = named {
                cmd.args(["--output-format", n]);
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            assert_identical(&one, &two);
            match named {
                Some("vhd-azure") => {
                    let size = info(&one, "vpc")["virtual-size"].as_u64().unwrap();
                    assert_eq!(size % (1 << 20), 0, "{one:?}");
                    assert_eq!(std::fs::metadata(&one).unwrap().len(), size + 512);
                }
                Some(_) => {
                    assert_clean(&one);
                    let i = info(&one, "vmdk");
                    assert_eq!(
                        i["format-specific"]["data"]["create-type"],
                        "streamOptimized"
                    );
                }
                None => assert_clean(&one),
            }
            let check = String::from_utf8(run(rehost_command()
                .args(["check", "-t", target])
                .arg(&one)))
            .unwrap();
            assert!(check.contains(target) && check.contains("boots"), "{check}");
        }
    }
    // A format rehost does not write is a usage error, and nothing is written.
    let bad = dir.path().join("bad.vdi");
    let out = rehost_command()
        .args(["fix", "--target", "kvm-sata", "--output"])
        .arg(&bad)
        .arg(windows_image("win7"))
        .args(["--output-format", "vdi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!bad.exists());
    // --output-format without --output is a usage error, and the image is not written.
    let copy = dir.path().join("win7-copy.vhd");
    std::fs::copy(windows_image("win7"), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let local = dir.path().join("x.txt");
    std::fs::write(&local, b"x").unwrap();
    let out = rehost_command()
        .args(["put", "--in-place", "--output-format", "qcow2"])
        .arg(&copy)
        .arg(&local)
        .arg("/x.txt")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(std::fs::read(&copy).unwrap() == before);
}
