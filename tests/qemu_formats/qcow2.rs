//! qcow2 versions and features made by qemu-img: compression, extended L2, external data
//! files, backing chains, internal snapshots.

use super::{common, p, qcow2_option, qemu_img, qemu_io, same_as_qemu, source};
use rehost::disk::{self, Format, Subformat};

#[test]
fn every_qcow2_variant_reads_as_qemu_reads_it() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = source(dir.path());
    let whole = std::fs::read(&raw).unwrap();
    // qemu-img names the data file as given, relative to its own working directory.
    let data = format!("data_file={}", dir.path().join("data-file.bin").display());
    let data_raw = format!(
        "data_file={},data_file_raw=on",
        dir.path().join("data-raw.bin").display()
    );
    let mut made = vec![
        ("v2", vec!["-o", "compat=0.10"], "v2"),
        ("v3", vec!["-o", "compat=1.1"], "v3"),
        ("v2-zlib", vec!["-c", "-o", "compat=0.10"], "v2"),
        ("v3-zlib-4k", vec!["-c", "-o", "cluster_size=4096"], "v3"),
        ("v3-512", vec!["-o", "cluster_size=512"], "v3"),
        (
            "data-file",
            vec!["-o", data.as_str()],
            "v3, external data file",
        ),
        (
            "data-file-raw",
            vec!["-o", data_raw.as_str()],
            "v3, external data file",
        ),
    ];
    if qcow2_option("compression_type") {
        made.push((
            "v3-zstd",
            vec!["-c", "-o", "compression_type=zstd"],
            "v3, zstd",
        ));
    }
    if qcow2_option("extended_l2") {
        made.push(("ext-l2", vec!["-o", "extended_l2=on"], "v3, extended L2"));
        made.push((
            "ext-l2-zlib",
            vec!["-c", "-o", "extended_l2=on,cluster_size=128k"],
            "v3, extended L2",
        ));
    }
    for (name, opts, variant) in made {
        let img = dir.path().join(format!("{name}.qcow2"));
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        args.extend(opts);
        args.extend([p(&raw), p(&img)]);
        qemu_img(&args);
        same_as_qemu(&img, "qcow2", dir.path());
        let d = disk::open(&img, &Default::default()).unwrap();
        assert_eq!(d.info().format, Format::Qcow2);
        assert_eq!(d.info().variant.as_deref(), Some(variant), "{name}");
        common::assert_same_bytes(&super::read_in_pieces(&img), &whole, name);
    }
}

#[test]
fn subclusters_partly_written_over_a_backing_chain_of_three_formats() {
    if !common::have_tool("qemu-img")
        || !common::have_tool("qemu-io")
        || !qcow2_option("extended_l2")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = source(dir.path());
    // base.vmdk <- mid.qcow2 (v2) <- top.qcow2 (extended L2)
    let base = dir.path().join("base.vmdk");
    qemu_img(&["convert", "-f", "raw", "-O", "vmdk", p(&raw), p(&base)]);
    let mid = dir.path().join("mid.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "compat=0.10",
        "-b",
        "base.vmdk",
        "-F",
        "vmdk",
        p(&mid),
    ]);
    qemu_io(
        &mid,
        "qcow2",
        &["write -P 0x11 64k 192k", "write -z 2M 64k"],
    );
    let top = dir.path().join("top.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "extended_l2=on",
        "-b",
        "mid.qcow2",
        "-F",
        "qcow2",
        p(&top),
    ]);
    // 2 KiB subclusters: some written, some zeroed, the rest from below.
    qemu_io(
        &top,
        "qcow2",
        &[
            "write -P 0x22 6k 2k",
            "write -P 0x33 70k 10k",
            "write -z 96k 4k",
            "write -P 0x44 3001k 3k",
        ],
    );
    same_as_qemu(&top, "qcow2", dir.path());
    let d = disk::open(&top, &Default::default()).unwrap();
    assert_eq!(d.info().subformat, Subformat::Differencing);
    let chain: Vec<Format> = std::iter::successors(Some(d.info()), |i| i.parent.as_deref())
        .map(|i| i.format)
        .collect();
    assert_eq!(chain, [Format::Qcow2, Format::Qcow2, Format::Vmdk]);
    // `volumes` names the format and the chain.
    let out = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_rehost"))
            .arg("volumes")
            .arg(&top),
    );
    let text = String::from_utf8_lossy(&out);
    for want in [
        "qcow2 differencing (v3, extended L2)",
        "parent: ",
        "mid.qcow2 (qcow2 differencing (v2))",
        "base.vmdk (vmdk dynamic (monolithicSparse))",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[test]
fn internal_snapshots_are_listed_and_the_active_state_is_read() {
    if !common::have_tool("qemu-img") || !common::have_tool("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = source(dir.path());
    let img = dir.path().join("snap.qcow2");
    qemu_img(&["convert", "-f", "raw", "-O", "qcow2", p(&raw), p(&img)]);
    qemu_img(&["snapshot", "-c", "before-update", p(&img)]);
    qemu_io(&img, "qcow2", &["write -P 0x66 512k 256k"]);
    qemu_img(&["snapshot", "-c", "after-update", p(&img)]);
    qemu_io(&img, "qcow2", &["write -P 0x77 600k 4k"]);
    same_as_qemu(&img, "qcow2", dir.path());
    let d = disk::open(&img, &Default::default()).unwrap();
    let note = d
        .info()
        .notes
        .iter()
        .find(|n| n.contains("internal snapshot"))
        .expect("a note on the snapshots");
    assert!(
        note.starts_with("2 internal snapshots: before-update (1), after-update (2)"),
        "{note}"
    );
}
