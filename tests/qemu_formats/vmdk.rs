//! VMDK subformats and snapshot chains made by qemu-img.

use super::{common, p, qemu_img, qemu_io, same_as_qemu, source};
use rehost::disk::{self, Format, ReadAt, Subformat};

#[test]
fn every_vmdk_subformat_reads_as_qemu_reads_it() {
    if !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = source(dir.path());
    let whole = std::fs::read(&raw).unwrap();
    for (sub, kind) in [
        ("monolithicSparse", Subformat::Dynamic),
        ("streamOptimized", Subformat::Dynamic),
        ("monolithicFlat", Subformat::Fixed),
        ("twoGbMaxExtentSparse", Subformat::Dynamic),
        ("twoGbMaxExtentFlat", Subformat::Fixed),
    ] {
        let img = dir.path().join(format!("{sub}.vmdk"));
        qemu_img(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            &format!("subformat={sub}"),
            p(&raw),
            p(&img),
        ]);
        same_as_qemu(&img, "vmdk", dir.path());
        let d = disk::open(&img, &Default::default()).unwrap();
        assert_eq!(d.info().format, Format::Vmdk);
        assert_eq!(d.info().subformat, kind, "{sub}");
        assert_eq!(d.info().variant.as_deref(), Some(sub));
        assert_eq!(d.size(), whole.len() as u64);
        common::assert_same_bytes(&super::read_in_pieces(&img), &whole, sub);
    }
}

#[test]
fn a_vmdk_snapshot_reads_through_to_its_parent_whose_cid_it_checks() {
    if !common::have_tool("qemu-img") || !common::have_tool("qemu-io") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = source(dir.path());
    let base = dir.path().join("base.vmdk");
    qemu_img(&["convert", "-f", "raw", "-O", "vmdk", p(&raw), p(&base)]);
    let child = dir.path().join("child.vmdk");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-b",
        "base.vmdk",
        "-F",
        "vmdk",
        p(&child),
    ]);
    qemu_io(
        &child,
        "vmdk",
        &["write -P 0x5a 1M 100k", "write -P 0x17 3000k 8k"],
    );
    same_as_qemu(&child, "vmdk", dir.path());
    let d = disk::open(&child, &Default::default()).unwrap();
    assert_eq!(d.info().subformat, Subformat::Differencing);
    let parent = d.info().parent.as_ref().expect("the parent's info");
    assert_eq!(parent.path, base.display().to_string());
    // The parent changed after the snapshot: its CID no longer matches.
    // The CID is written without leading zeros (one to eight digits): the value is
    // replaced whole by eight digits, the descriptor's padding of zeros after its text
    // giving up what the line gains, so the file keeps its size and layout.
    let b = std::fs::read(&base).unwrap();
    let at = b.windows(4).position(|w| w == b"CID=").unwrap() + 4;
    let end = at + b[at..].iter().position(|&c| c == b'\n').unwrap();
    let gained = 8 - (end - at);
    let text_end = end + b[end..].iter().position(|&c| c == 0).unwrap();
    let mut b2 = b[..at].to_vec();
    b2.extend_from_slice(b"0badc1d0");
    b2.extend_from_slice(&b[end..text_end]);
    b2.extend_from_slice(&b[text_end + gained..]);
    assert_eq!(b2.len(), b.len());
    let b = b2;
    std::fs::write(&base, &b).unwrap();
    let e = disk::open(&child, &Default::default())
        .err()
        .expect("a CID mismatch");
    let msg = e.to_string();
    assert!(
        msg.contains("child.vmdk: vmdk") && msg.contains("0badc1d0") && msg.contains("parentCID"),
        "{msg}"
    );
}
