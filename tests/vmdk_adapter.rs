//! The adapter a new VMDK's descriptor names (`ddb.adapterType`): the source VMDK's when
//! there is one, `--vmdk-adapter` when given, else IDE; with the geometry qemu-img writes
//! for the same adapter (its `adapter_type` option is the oracle: its descriptor's adapter,
//! heads and sectors lines are held equal to rehost's), and `qemu-img check` clean.

mod common;

use common::{have_tool, qemu_img, rehost_command, root};
use std::path::Path;

/// The descriptor lines that say the adapter and its geometry, from the text in the first
/// sectors of a monolithicSparse VMDK.
fn adapter_lines(vmdk: &Path) -> Vec<String> {
    let bytes = std::fs::read(vmdk).unwrap();
    let head = String::from_utf8_lossy(&bytes[512..bytes.len().min(512 * 21)]).into_owned();
    head.lines()
        .filter(|l| {
            l.starts_with("ddb.adapterType")
                || l.starts_with("ddb.geometry.heads")
                || l.starts_with("ddb.geometry.sectors")
        })
        .map(str::to_string)
        .collect()
}

/// What qemu-img writes for a disk of `size` bytes on `adapter`.
fn qemu_lines(dir: &Path, size: u64, adapter: &str) -> Vec<String> {
    let p = dir.join(format!("qemu-{adapter}.vmdk"));
    let opt = format!("adapter_type={adapter}");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-o",
        &opt,
        p.to_str().unwrap(),
        &size.to_string(),
    ]);
    let lines = adapter_lines(&p);
    assert_eq!(lines.len(), 3, "{lines:?}");
    lines
}

fn rehost_ok(args: &[&str]) -> String {
    let out = rehost_command()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(args)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {said}");
    said
}

fn check_clean(vmdk: &Path) {
    let out = qemu_img(&["check", "-f", "vmdk", vmdk.to_str().unwrap()]);
    assert!(out.contains("No errors"), "{vmdk:?}: {out}");
}

#[test]
fn new_vmdks_carry_or_take_their_adapter_type() {
    if !have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let sample = root().join("testdata/sample/sample.vhd");
    let sample = sample.to_str().unwrap();
    let size: u64 = {
        let info = qemu_img(&["info", "--output=json", "-f", "vpc", sample]);
        let json: serde_json::Value = serde_json::from_str(&info).unwrap();
        json["virtual-size"].as_u64().unwrap()
    };
    let want = |adapter: &str| qemu_lines(dir.path(), size, adapter);
    // Sources: the sample as a VMDK on each adapter, made by qemu-img.
    for adapter in ["ide", "buslogic", "lsilogic", "legacyESX"] {
        let src = p(&format!("src-{adapter}.vmdk"));
        let opt = format!("adapter_type={adapter}");
        qemu_img(&[
            "convert", "-q", "-f", "vpc", "-O", "vmdk", "-o", &opt, sample, &src,
        ]);
        assert_eq!(adapter_lines(Path::new(&src)), want(adapter));
        // convert carries it, to either kind of VMDK.
        for (name, extra) in [("c", ""), ("s", "vmdk-stream")] {
            let out = p(&format!("{name}-{adapter}.vmdk"));
            let mut args = vec!["convert", &src, &out];
            if !extra.is_empty() {
                args.extend(["--output-format", extra]);
            }
            rehost_ok(&args);
            assert_eq!(adapter_lines(Path::new(&out)), want(adapter), "{out}");
            check_clean(Path::new(&out));
        }
        // So does a fix written into a new VMDK.
        let fixed = p(&format!("f-{adapter}.vmdk"));
        rehost_ok(&["fix", "-t", "hyperv-gen1", "--output", &fixed, &src]);
        assert_eq!(adapter_lines(Path::new(&fixed)), want(adapter), "{fixed}");
        check_clean(Path::new(&fixed));
    }
    // From another format: IDE, unless asked.
    let plain = p("plain.vmdk");
    rehost_ok(&["convert", sample, &plain]);
    assert_eq!(adapter_lines(Path::new(&plain)), want("ide"));
    let asked = p("asked.vmdk");
    rehost_ok(&["convert", sample, &asked, "--vmdk-adapter", "lsilogic"]);
    assert_eq!(adapter_lines(Path::new(&asked)), want("lsilogic"));
    // Asking wins over the source's, in convert and in fix.
    let over = p("over.vmdk");
    let src = p("src-lsilogic.vmdk");
    rehost_ok(&["convert", &src, &over, "--vmdk-adapter", "buslogic"]);
    assert_eq!(adapter_lines(Path::new(&over)), want("buslogic"));
    let fixed = p("fix-asked.vmdk");
    rehost_ok(&[
        "fix",
        "-t",
        "hyperv-gen1",
        "--output",
        &fixed,
        "--vmdk-adapter",
        "ide",
        &src,
    ]);
    assert_eq!(adapter_lines(Path::new(&fixed)), want("ide"));
    check_clean(Path::new(&fixed));
    // An adapter VMware does not name is a usage error, and nothing is made.
    let bad = p("bad.vmdk");
    let out = rehost_command()
        .args(["convert", sample, &bad, "--vmdk-adapter", "scsi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("lsilogic"));
    assert!(!Path::new(&bad).exists());
}
