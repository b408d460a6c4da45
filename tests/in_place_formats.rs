//! Fixes written in place into qcow2 and VMDK images, held to qemu-img. Each image is made
//! by qemu-img from a fixture: qcow2 with 64 KiB clusters as version 3 and version 2,
//! 512-byte clusters (so that the commit allocates L2 tables and refcount blocks), lazy
//! refcounts, and a child whose clusters all read from its backing file; monolithicSparse
//! VMDK, with zeroed-grain entries, and a snapshot child of a VMDK parent; monolithicFlat
//! and a one-extent twoGbMaxExtentFlat, written through their flat extent. The same fix is
//! done in place on a raw copy. Then: `qemu-img compare` finds the image identical to the
//! fixed raw copy, `qemu-img check` finds no error and no leak, `check` says the install
//! boots, the parent is untouched, and `undo` gives back the original file byte for byte.
//! Images rehost does not write in place (compressed qcow2 clusters,
//! streamOptimized VMDKs, an extent file of a split VMDK given alone) are refused
//! unchanged, and the dry runs of fix, put and reg set say up front that they would be.

mod common;

use common::{have_tool, qemu_img, rehost_command, root, run, sha256_file, windows_image};
use std::path::Path;
use std::process::Command;

/// The format of an image, by its extension.
fn format_of(image: &Path) -> &'static str {
    if image.extension().is_some_and(|e| e == "vmdk") {
        "vmdk"
    } else {
        "qcow2"
    }
}

/// `qemu-img check`: no corruption, no leak, no error.
fn assert_check_clean(image: &Path) {
    let out = Command::new("qemu-img")
        .args(["check", "-f", format_of(image), "--output=json"])
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
    // The parents of the two children, each made from Windows 7.
    let mut parents = Vec::new();
    for fmt in ["qcow2", "vmdk"] {
        let base = d(&format!("win7-base.{fmt}"));
        qemu_img(&["convert", "-q", "-f", "vpc", "-O", fmt, &s(&win7), &base]);
        parents.push((base.clone(), sha256_file(Path::new(&base))));
    }
    // (name and format, source, target, the creation options; "child": a child of the
    // Windows 7 parent of its format)
    let cases = [
        ("sample-v3.qcow2", &sample, "hyperv-gen1", ""),
        ("sample-v2.qcow2", &sample, "hyperv-gen1", "compat=0.10"),
        (
            "sample-512.qcow2",
            &sample,
            "hyperv-gen1",
            "cluster_size=512",
        ),
        (
            "ws2019-lazy.qcow2",
            &ws2019,
            "kvm-sata",
            "lazy_refcounts=on",
        ),
        ("win7-child.qcow2", &win7, "kvm-sata", "child"),
        (
            "sample-extl2.qcow2",
            &sample,
            "hyperv-gen1",
            "extended_l2=on",
        ),
        (
            "win7-child-extl2.qcow2",
            &win7,
            "kvm-sata",
            "child extended_l2=on",
        ),
        ("sample.vmdk", &sample, "hyperv-gen1", ""),
        (
            "sample-zeroed.vmdk",
            &sample,
            "hyperv-gen1",
            "zeroed_grain=on",
        ),
        ("ws2019.vmdk", &ws2019, "kvm-sata", ""),
        (
            "sample-flat.vmdk",
            &sample,
            "hyperv-gen1",
            "subformat=monolithicFlat",
        ),
        (
            "win7-split.vmdk",
            &win7,
            "kvm-sata",
            "subformat=twoGbMaxExtentFlat",
        ),
        ("win7-child.vmdk", &win7, "kvm-sata", "child"),
    ];
    for (name, src, target, opts) in cases {
        let image = d(name);
        let fmt = format_of(Path::new(&image));
        if let Some(child) = opts.strip_prefix("child") {
            let base = d(&format!("win7-base.{fmt}"));
            let mut args = vec!["create", "-q", "-f", fmt, "-b", &base, "-F", fmt];
            if let Some(o) = child.strip_prefix(' ') {
                args.extend(["-o", o]);
            }
            args.push(&image);
            qemu_img(&args);
        } else {
            let from = if s(src).ends_with(".vhdx") {
                "vhdx"
            } else {
                "vpc"
            };
            let mut args = vec!["convert", "-q", "-f", from, "-O", fmt];
            if !opts.is_empty() {
                args.extend(["-o", opts]);
            }
            let src = s(src);
            args.extend([src.as_str(), image.as_str()]);
            qemu_img(&args);
        }
        // A flat VMDK is written through its one extent, beside the descriptor.
        let written = match opts {
            "subformat=monolithicFlat" => d(&name.replace(".vmdk", "-flat.vmdk")),
            "subformat=twoGbMaxExtentFlat" => d(&name.replace(".vmdk", "-f001.vmdk")),
            _ => image.clone(),
        };
        let descriptor = sha256_file(Path::new(&image));
        let before = sha256_file(Path::new(&written));
        let before_len = std::fs::metadata(&written).unwrap().len();
        // The expected result: the same fix on a raw copy.
        let raw = d(&format!("{name}.raw"));
        qemu_img(&["convert", "-q", "-f", fmt, "-O", "raw", &image, &raw]);
        let out = fix_in_place(Path::new(&raw), target);
        assert_eq!(out.status.code(), Some(0), "{name} raw: {out:?}");
        let out = fix_in_place(Path::new(&image), target);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert_ne!(
            sha256_file(Path::new(&written)),
            before,
            "{name}: nothing written"
        );
        if written != image {
            assert_eq!(sha256_file(Path::new(&image)), descriptor, "{name}");
        }
        assert_check_clean(Path::new(&image));
        let cmp = qemu_img(&["compare", "-f", fmt, "-F", "raw", &image, &raw]);
        assert!(cmp.contains("Images are identical"), "{name}: {cmp}");
        let check = String::from_utf8(run(rehost_command()
            .args(["check", "-t", target])
            .arg(&image)))
        .unwrap();
        assert!(check.contains("boots"), "{name}: {check}");
        for (base, sum) in &parents {
            assert_eq!(&sha256_file(Path::new(base)), sum, "{name}: {base} changed");
        }
        // Undo: the original file, byte for byte, and its length.
        run(rehost_command().arg("undo").arg(&image));
        assert_eq!(
            std::fs::metadata(&written).unwrap().len(),
            before_len,
            "{name}"
        );
        assert_eq!(sha256_file(Path::new(&written)), before, "{name}: undo");
        assert_check_clean(Path::new(&image));
    }
}

#[test]
fn images_not_written_in_place_are_refused_unchanged() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sample = root()
        .join("testdata/sample/sample.vhd")
        .to_string_lossy()
        .into_owned();
    let make = |name: &str, fmt: &str, opts: &[&str]| {
        let image = dir.path().join(name).to_string_lossy().into_owned();
        let mut args = vec!["convert", "-q", "-f", "vpc", "-O", fmt];
        args.extend(opts);
        args.extend([sample.as_str(), image.as_str()]);
        qemu_img(&args);
        image
    };
    let compressed = make("c.qcow2", "qcow2", &["-c"]);
    let stream = make("st.vmdk", "vmdk", &["-o", "subformat=streamOptimized"]);
    make("t.vmdk", "vmdk", &["-o", "subformat=twoGbMaxExtentSparse"]);
    let extent = dir
        .path()
        .join("t-s001.vmdk")
        .to_string_lossy()
        .into_owned();
    for (image, why) in [
        (&compressed, "compressed"),
        (&stream, "streamOptimized"),
        (&extent, "through the descriptor"),
    ] {
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
        // The dry runs of fix, put and reg set say so up front, from the container's plan,
        // and write nothing either.
        let said = |args: &[&str]| {
            let out = rehost_command().args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
        };
        let local = dir.path().join("note.txt");
        std::fs::write(&local, b"a note").unwrap();
        let local = local.to_string_lossy().into_owned();
        for args in [
            vec!["fix", "--target", "hyperv-gen1", "--dry-run", image],
            vec!["put", image, &local, "/note.txt", "--dry-run"],
            vec![
                "reg",
                "set",
                image,
                "HKLM\\SYSTEM\\Select",
                "--value",
                "Note",
                "--type",
                "REG_DWORD",
                "--data",
                "1",
                "--dry-run",
            ],
        ] {
            let text = said(&args);
            assert!(
                text.contains("--in-place would be refused: ")
                    && text.contains(why)
                    && text.contains("--output"),
                "{args:?}: {text}"
            );
        }
        assert_eq!(sha256_file(Path::new(image)), before, "{image} changed");
    }
    // A dry run on an image written in place says nothing of the kind.
    let plain = make("p.qcow2", "qcow2", &[]);
    let out = rehost_command()
        .args(["fix", "--target", "hyperv-gen1", "--dry-run", &plain])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dry run") && !text.contains("would be refused"),
        "{text}"
    );
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

/// A qcow2 whose L2 table is in use but counted 0 (damaged refcounts, as `qemu-img check`
/// calls them): the fix in place is refused, naming the cluster and the repair, and the file
/// is left as it was.
#[test]
fn a_used_cluster_counted_zero_is_refused_unchanged() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sample = root().join("testdata/sample/sample.vhd");
    let image = dir.path().join("r.qcow2");
    let (s, i) = (sample.to_str().unwrap(), image.to_str().unwrap());
    qemu_img(&["convert", "-q", "-f", "vpc", "-O", "qcow2", s, i]);
    let mut b = std::fs::read(&image).unwrap();
    let be64 = |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let cluster = 1u64 << u32::from_be_bytes(b[20..24].try_into().unwrap());
    let l2 = be64(&b, be64(&b, 40) as usize) & 0x00ff_ffff_ffff_fe00;
    let block = be64(&b, be64(&b, 48) as usize) as usize;
    let slot = block + (l2 / cluster) as usize * 2;
    assert_eq!(&b[slot..slot + 2], &[0, 1], "the L2 table is counted once");
    b[slot + 1] = 0;
    std::fs::write(&image, &b).unwrap();
    let before = sha256_file(&image);
    let out = fix_in_place(&image, "hyperv-gen1");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "the cluster at {l2:#x} is in use, but its refcount is 0"
        )) && said.contains("qemu-img check -r all"),
        "{said}"
    );
    assert_eq!(sha256_file(&image), before, "the image changed");
}
