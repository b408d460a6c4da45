//! A dirty SYSTEM hive with no transaction log beside it (copied from a running system, as
//! file-level backups do): `fix` refuses to edit it and says what `--accept-dirty-hive`
//! does; with the option the hive is edited as its primary file stands and written back
//! consistent, the report says so, hivex reads the fix back, `check` finds the hive clean
//! and the install booting, and `undo` restores the image.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn rehost(args: &[&str], image: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .arg(image)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_dirty_hive_without_logs_is_fixed_as_it_stands_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ws2019-dirtyhive.vhdx");
    std::fs::copy(common::fixture("windows/ws2019-dirtyhive.vhdx.zst"), &image).unwrap();
    let sha = common::sha256_file(&image);
    let drivers = common::root().join("testdata/drivers/virtio-win");
    let drivers = drivers.to_str().unwrap();
    let fix = ["fix", "-t", "kvm-virtio-blk", "--drivers", drivers];

    // Without the option, check and fix say the storage finding waits for it; fix writes
    // nothing and the install still does not boot (exit code 3).
    let refused = rehost(&[&fix[..], &["--in-place"]].concat(), &image);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(
        text(&refused).contains("--accept-dirty-hive"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        common::sha256_file(&image),
        sha,
        "a refused fix writes nothing"
    );

    let done = rehost(
        &[&fix[..], &["--in-place", "--accept-dirty-hive", "--json"]].concat(),
        &image,
    );
    let report: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(report["committed"], true, "{report}");
    assert_eq!(report["installs"][0]["after"], "boots", "{report}");
    let changes = report["installs"][0]["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["hive"] == "SYSTEM"
                && c["why"].as_str().unwrap().contains("--accept-dirty-hive")),
        "the report says the hive was edited as it stood: {report}"
    );

    // The hive written back: consistent, and what the fix set, read by hivex.
    let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
        .arg("cat")
        .arg(&image)
        .arg("\\Windows\\System32\\config\\SYSTEM")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let hive = out.stdout;
    assert_eq!(&hive[..4], b"regf");
    assert_eq!(
        hive[4..8],
        hive[8..12],
        "sequence numbers agree: the hive is clean"
    );
    let file = dir.path().join("SYSTEM");
    std::fs::write(&file, &hive).unwrap();
    if common::have_tool("hivexget") {
        let start = common::run(
            Command::new("hivexget")
                .arg(&file)
                .arg("ControlSet001\\Services\\viostor")
                .arg("Start"),
        );
        assert_eq!(String::from_utf8_lossy(&start).trim(), "0");
    }

    let check = rehost(&["check", "--json", "-t", "kvm-virtio-blk"], &image);
    let check: Value = serde_json::from_slice(&check.stdout).unwrap();
    let install = &check["installs"][0];
    assert_eq!(install["verdict"], "boots", "{check}");
    assert!(
        !install["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "dirty-hive"),
        "{check}"
    );

    let undo = rehost(&["undo"], &image);
    assert_eq!(undo.status.code(), Some(0), "{}", text(&undo));
    assert_eq!(common::sha256_file(&image), sha, "undo restores the bytes");
}
