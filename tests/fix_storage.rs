//! `rehost fix` for the storage rules (storage-driver, start-override, critical-device,
//! driver-database, class-filter, hypervisor-driver, cpu-driver), each on the fixture with
//! its fault planted (scripts/fixtures/specs.py): `--dry-run` shows the planned diff and
//! leaves the image's SHA-256 as it was; `--in-place` commits, and `rehost check` then says
//! the install boots on the target; the image converted by qemu-img and cut to its volume is
//! read back by ntfs-3g (ntfscat) and hivex (hivexget) as the report says; `rehost undo`
//! restores the original SHA-256. Driver injection from the virtio-win-like folder
//! (testdata/drivers) on Windows 7 (as its VHD and as a VMDK, fixed in place) is checked
//! against what virt-v2v writes for that case.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rehost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn drivers() -> PathBuf {
    common::root().join("testdata/drivers/virtio-win")
}

/// Whether every outside reader these tests use is there (skips, or fails in CI).
fn oracles() -> bool {
    ["qemu-img", "ntfscat", "hivexget", "hivexregedit"]
        .iter()
        .all(|t| common::have_tool(t))
}

/// A fixture image of testdata/windows, copied into `dir`.
fn copy(name: &str, dir: &Path) -> PathBuf {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join(format!("testdata/windows/{name}.json")))
            .unwrap(),
    )
    .unwrap();
    let file = spec["image"].as_str().unwrap();
    let to = dir.join(file);
    std::fs::copy(common::fixture(&format!("windows/{file}.zst")), &to).unwrap();
    to
}

fn ntfscat(vol: &Path, path: &str) -> Vec<u8> {
    common::run(
        Command::new("ntfscat")
            .arg(vol)
            .arg(path.replace('\\', "/")),
    )
}

/// hivexget of one value (`None` when the key or value is not there).
fn get(hive: &Path, key: &str, value: &str) -> Option<String> {
    let out = Command::new("hivexget")
        .arg(hive)
        .arg(key)
        .arg(value)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// hivexregedit's export of one key and its subkeys.
fn export(hive: &Path, key: &str) -> String {
    String::from_utf8(common::run(
        Command::new("hivexregedit")
            .arg("--export")
            .arg(hive)
            .arg(key),
    ))
    .unwrap()
}

/// An image fixed in place, with what the outside readers read of it.
struct Fixed {
    image: PathBuf,
    before: String,
    /// The fix's JSON report.
    report: Value,
    /// The install's volume, cut out of the converted image.
    vol: PathBuf,
    /// Its SYSTEM hive, as ntfscat reads it.
    hive: PathBuf,
    root: String,
}

impl Fixed {
    /// `rehost undo` brings back the image as it was.
    fn undo(self) {
        let out = rehost(&["undo", s(&self.image)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            common::sha256_file(&self.image),
            self.before,
            "undo did not restore the image"
        );
    }

    /// The changes of the report (of the one install).
    fn changes(&self) -> &Vec<Value> {
        self.report["installs"][0]["changes"].as_array().unwrap()
    }
}

/// The acceptance pattern for the fix of `rule` on fixture `name` for `target` (with
/// `extra` arguments): the dry run shows the rule's changes and writes nothing, the fix in
/// place is committed and the install then boots there, `rehost check` agrees.
fn accept(name: &str, target: &str, extra: &[&str], rule: &str, dir: &Path) -> Fixed {
    accept_image(copy(name, dir), target, extra, rule, dir)
}

/// `accept` on an image of one's own.
fn accept_image(image: PathBuf, target: &str, extra: &[&str], rule: &str, dir: &Path) -> Fixed {
    let before = common::sha256_file(&image);
    let what = format!("{} on {target}", image.display());
    let mut args = vec!["fix", s(&image), "-t", target, "--json"];
    args.extend(extra);
    // Dry run: the plan, nothing written.
    let mut dry = args.clone();
    dry.push("--dry-run");
    let out = rehost(&dry);
    let plan: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{what}: {plan:#}");
    assert_eq!(plan["committed"], false);
    let install = &plan["installs"][0];
    assert_ne!(install["before"], "boots", "{what}: {install:#}");
    assert!(
        install["after"].as_str().unwrap().starts_with("boots"),
        "{what}: {install:#}"
    );
    let mine: Vec<&Value> = install["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["rule"] == rule)
        .collect();
    assert!(!mine.is_empty(), "{what}: no change of {rule}: {install:#}");
    for c in &mine {
        if c["kind"] == "registry" {
            let diff = c["diff"].as_str().unwrap();
            assert!(
                diff.contains("[HKEY_LOCAL_MACHINE\\SYSTEM\\"),
                "{what}: {diff}"
            );
        }
    }
    assert_eq!(
        common::sha256_file(&image),
        before,
        "{what}: the dry run wrote to the image"
    );
    // In place.
    args.push("--in-place");
    let out = rehost(&args);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{what}: {report:#}");
    assert_eq!(report["committed"], true, "{what}: {report:#}");
    assert_ne!(common::sha256_file(&image), before);
    // check, afresh, on the image as written.
    let out = rehost(&["check", "--json", s(&image), "-t", target]);
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{what}: {check:#}");
    let verdict = check["installs"][0]["verdict"].as_str().unwrap();
    assert!(verdict.starts_with("boots"), "{what}: {check:#}");
    assert!(
        !check["installs"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == rule && f["severity"] == "error"),
        "{what}: {check:#}"
    );
    let index = report["installs"][0]["volume"].as_u64().unwrap() as u32;
    let root = report["installs"][0]["system_root"]
        .as_str()
        .unwrap()
        .to_string();
    let (vol, _) = common::partition_file(&image, index as usize, dir);
    let hive = dir.join("SYSTEM");
    std::fs::write(
        &hive,
        ntfscat(&vol, &format!("{root}\\System32\\config\\SYSTEM")),
    )
    .unwrap();
    Fixed {
        image,
        before,
        report,
        vol,
        hive,
        root,
    }
}

const SETS: [&str; 2] = ["ControlSet001", "ControlSet002"];

#[test]
fn storage_driver_starts_the_controller_driver_at_boot() {
    if !oracles() {
        return;
    }
    for (name, svc) in [("ws2019-ahci-off", "storahci"), ("win7", "msahci")] {
        let dir = tempfile::tempdir().unwrap();
        let f = accept(name, "kvm-sata", &[], "storage-driver", dir.path());
        for cs in SETS {
            let key = format!("\\{cs}\\Services\\{svc}");
            assert_eq!(
                get(&f.hive, &key, "Start").as_deref(),
                Some("0"),
                "{name} {key}"
            );
        }
        f.undo();
    }
}

#[test]
fn start_override_values_are_removed_in_every_control_set() {
    if !oracles() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = accept(
        "ws2019-override",
        "kvm-sata",
        &[],
        "start-override",
        dir.path(),
    );
    for cs in SETS {
        let key = format!("\\{cs}\\Services\\storahci");
        assert_eq!(get(&f.hive, &key, "Start").as_deref(), Some("0"));
        assert_eq!(get(&f.hive, &format!("{key}\\StartOverride"), "0"), None);
    }
    f.undo();
}

/// The sequence numbers of a new-format (`HvLE`) transaction log's entries, read by the
/// msuhanov/regf layout: entries from offset 512, each giving its size at +4 and its
/// sequence number at +12.
fn log_sequences(log: &[u8]) -> Vec<u32> {
    let le = |o: usize| u32::from_le_bytes(log[o..o + 4].try_into().unwrap());
    let mut at = 512;
    let mut out = Vec::new();
    while at + 40 <= log.len() && &log[at..at + 4] == b"HvLE" {
        out.push(le(at + 12));
        let size = le(at + 4) as usize;
        if size < 40 || size % 512 != 0 {
            break;
        }
        at += size;
    }
    out
}

#[test]
fn a_dirty_windows_10_hive_is_replayed_fixed_and_left_clean_past_its_logs() {
    if !oracles() {
        return;
    }
    // Windows 10's real SYSTEM_B with its .LOG1 and .LOG2: StartOverride 0=3 on storahci
    // lives in the logs; the fix replays them, removes it, and writes the hive clean.
    let dir = tempfile::tempdir().unwrap();
    let f = accept("win10-dirty", "kvm-sata", &[], "start-override", dir.path());
    let mut checked = 0;
    for cs in SETS {
        let key = format!("\\{cs}\\Services\\storahci");
        if get(&f.hive, &key, "Start").is_none() {
            continue; // a control set Select does not name
        }
        checked += 1;
        assert_eq!(get(&f.hive, &key, "Start").as_deref(), Some("0"), "{key}");
        assert_eq!(
            get(&f.hive, &format!("{key}\\StartOverride"), "0"),
            None,
            "{key}"
        );
    }
    assert!(checked > 0, "no control set holds storahci");
    let hive = std::fs::read(&f.hive).unwrap();
    let seq = |o: usize| u32::from_le_bytes(hive[o..o + 4].try_into().unwrap());
    assert_eq!(seq(4), seq(8), "the hive is written clean");
    let config = format!("{}\\System32\\config", f.root);
    for log in ["SYSTEM.LOG1", "SYSTEM.LOG2"] {
        let entries = log_sequences(&ntfscat(&f.vol, &format!("{config}\\{log}")));
        assert!(!entries.is_empty(), "{log}: no HvLE entries read");
        assert!(
            entries.iter().all(|s| *s < seq(4)),
            "{log}: entries {entries:?} against the hive's sequence {}",
            seq(4)
        );
    }
    // And rehost, reading the image again, finds nothing to replay.
    let out = rehost(&["check", "--json", s(&f.image), "-t", "kvm-sata"]);
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !check["installs"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["rule"] == "dirty-hive"),
        "{check:#}"
    );
    f.undo();
}

#[test]
fn critical_device_entries_bind_the_piix4_ide_to_intelide() {
    if !oracles() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = accept(
        "xp-nocddb",
        "hyperv-gen1",
        &[],
        "critical-device",
        dir.path(),
    );
    for cs in SETS {
        for id in [
            "pci#ven_8086&dev_7111",
            "pci#ven_8086&dev_7111&subsys_00000000&rev_01",
        ] {
            let key = format!("\\{cs}\\Control\\CriticalDeviceDatabase\\{id}");
            assert_eq!(get(&f.hive, &key, "Service").as_deref(), Some("intelide"));
            assert_eq!(
                get(&f.hive, &key, "ClassGUID").as_deref(),
                Some("{4D36E96A-E325-11CE-BFC1-08002BE10318}")
            );
        }
        // The entries MergeIDE left are as they were.
        let key = format!("\\{cs}\\Control\\CriticalDeviceDatabase\\primary_ide_channel");
        assert_eq!(get(&f.hive, &key, "Service").as_deref(), Some("atapi"));
    }
    f.undo();
}

#[test]
fn cpu_driver_disables_intelppm_on_a_vm_and_keeps_its_key() {
    if !oracles() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = accept("xp-sp3", "hyperv-gen1", &[], "cpu-driver", dir.path());
    for cs in SETS {
        let key = format!("\\{cs}\\Services\\intelppm");
        assert_eq!(get(&f.hive, &key, "Start").as_deref(), Some("4"));
        assert!(get(&f.hive, &key, "ImagePath").is_some());
    }
    f.undo();
}

#[test]
fn san_policy_brings_disks_online_and_the_stop_screen_stays() {
    if !oracles() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = accept(
        "ws2019-san",
        "kvm-sata",
        &["--show-stop-screen"],
        "san-policy",
        dir.path(),
    );
    assert_eq!(f.report["installs"][0]["before"], "boots-with-warnings");
    assert_eq!(f.report["installs"][0]["after"], "boots");
    for cs in SETS {
        let params = format!("\\{cs}\\Services\\partmgr\\Parameters");
        assert_eq!(get(&f.hive, &params, "SanPolicy").as_deref(), Some("1"));
        let crash = format!("\\{cs}\\Control\\CrashControl");
        assert_eq!(get(&f.hive, &crash, "AutoReboot").as_deref(), Some("0"));
    }
    // Nothing of the rule is left, not even its warning.
    let out = rehost(&["check", "--json", s(&f.image), "-t", "kvm-sata"]);
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["installs"][0]["verdict"], "boots", "{check:#}");
    f.undo();
}

#[test]
fn class_filter_drops_the_filter_that_is_not_installed() {
    if !oracles() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = accept("ws2019-filter", "kvm-sata", &[], "class-filter", dir.path());
    for cs in SETS {
        let key = format!("\\{cs}\\Control\\Class\\{{4d36e967-e325-11ce-bfc1-08002be10318}}");
        assert_eq!(
            get(&f.hive, &key, "UpperFilters").as_deref(),
            Some("PartMgr")
        );
    }
    f.undo();
}

#[test]
fn hypervisor_drivers_are_disabled_and_their_filter_taken_out() {
    if !oracles() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = accept(
        "ws2019-xen",
        "kvm-sata",
        &[],
        "hypervisor-driver",
        dir.path(),
    );
    for cs in SETS {
        for svc in ["xenbus", "xenfilt", "xenvbd"] {
            let key = format!("\\{cs}\\Services\\{svc}");
            assert_eq!(get(&f.hive, &key, "Start").as_deref(), Some("4"), "{key}");
        }
        let key = format!("\\{cs}\\Control\\Class\\{{4d36e967-e325-11ce-bfc1-08002be10318}}");
        assert_eq!(get(&f.hive, &key, "LowerFilters"), None);
        assert_eq!(
            get(&f.hive, &key, "UpperFilters").as_deref(),
            Some("PartMgr")
        );
    }
    f.undo();
}

#[test]
fn an_inbox_driver_file_comes_from_the_newest_cabinet_of_the_driver_cache() {
    if !oracles() || !common::have_tool("cabextract") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = accept(
        "xp-drvcache",
        "hyperv-gen1",
        &[],
        "storage-driver",
        dir.path(),
    );
    let cab = |name: &str| {
        let out = dir.path().join(name);
        std::fs::write(
            &out,
            ntfscat(&f.vol, &format!("{}\\Driver Cache\\i386\\{name}", f.root)),
        )
        .unwrap();
        common::run(
            Command::new("cabextract")
                .args(["-q", "-p", "-F", "intelide.sys"])
                .arg(&out),
        )
    };
    let written = ntfscat(
        &f.vol,
        &format!("{}\\System32\\drivers\\intelide.sys", f.root),
    );
    // sp3.cab's copy (5.1.2600.5512), not driver.cab's older one.
    common::assert_same_bytes(&written, &cab("sp3.cab"), "intelide.sys against sp3.cab");
    assert_ne!(written, cab("driver.cab"));
    let put = f
        .changes()
        .iter()
        .find(|c| c["kind"] == "put")
        .expect("a file put");
    assert!(
        put["why"].as_str().unwrap().contains("5.1.2600.5512"),
        "{put}"
    );
    assert_eq!(put["sha256"].as_str().unwrap(), sha_hex(&written));
    f.undo();
}

fn sha_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(b))
}

#[test]
fn virtio_on_windows_7_is_injected_as_virt_v2v_registers_it() {
    if !oracles() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = drivers();
    // The fixture as it is (VHD), and as the VMDK a VMware source would be, fixed in place.
    let vhd = copy("win7", dir.path());
    let vmdk = dir.path().join("win7.vmdk");
    common::run(
        std::process::Command::new("qemu-img")
            .args(["convert", "-f", "vpc", "-O", "vmdk"])
            .arg(&vhd)
            .arg(&vmdk),
    );
    for image in [vhd, vmdk] {
        virtio_as_virt_v2v_registers_it(image, &d, dir.path());
    }
}

fn virtio_as_virt_v2v_registers_it(image: PathBuf, d: &Path, dir: &Path) {
    let f = accept_image(
        image,
        "kvm-virtio-blk",
        &["--drivers", s(d)],
        "storage-driver",
        dir,
    );
    // The driver file, byte for byte the package's (the x86 Windows 7 one).
    let sys = ntfscat(
        &f.vol,
        &format!("{}\\System32\\drivers\\viostor.sys", f.root),
    );
    let package = std::fs::read(d.join("viostor/w7/x86/viostor.sys")).unwrap();
    common::assert_same_bytes(&sys, &package, "viostor.sys");
    let put = f
        .changes()
        .iter()
        .find(|c| c["kind"] == "put")
        .expect("a file put");
    assert_eq!(put["sha256"].as_str().unwrap(), sha_hex(&package));
    // What virt-v2v writes for viostor on Windows 7 (libguestfs-common
    // mlcustomize/inject_virtio_win.ml): the service key, and CriticalDeviceDatabase entries
    // for the legacy and the modern virtio-blk function, in the SCSIAdapter class; here in
    // both control sets Select names.
    let scsi = "{4D36E97B-E325-11CE-BFC1-08002BE10318}";
    for cs in SETS {
        let svc = format!("\\{cs}\\Services\\viostor");
        for (value, want) in [
            ("Type", "1"),
            ("Start", "0"),
            ("Group", "SCSI miniport"),
            ("ErrorControl", "1"),
            ("ImagePath", "system32\\drivers\\viostor.sys"),
        ] {
            assert_eq!(
                get(&f.hive, &svc, value).as_deref(),
                Some(want),
                "{svc} {value}"
            );
        }
        for id in [
            "pci#ven_1af4&dev_1001&rev_00",
            "pci#ven_1af4&dev_1042&rev_01",
        ] {
            let key = format!("\\{cs}\\Control\\CriticalDeviceDatabase\\{id}");
            assert_eq!(get(&f.hive, &key, "Service").as_deref(), Some("viostor"));
            assert_eq!(get(&f.hive, &key, "ClassGUID").as_deref(), Some(scsi));
        }
        // And the INF's own AddReg values beside them.
        assert_eq!(
            get(&f.hive, &format!("{svc}\\Parameters\\PnpInterface"), "5").as_deref(),
            Some("1")
        );
    }
    // The report's diff holds the same.
    let diffs: String = f
        .changes()
        .iter()
        .filter_map(|c| c["diff"].as_str())
        .collect();
    assert!(diffs
        .contains("ControlSet002\\Control\\CriticalDeviceDatabase\\pci#ven_1af4&dev_1001&rev_00]"));
    f.undo();
}

#[test]
fn xp_on_ahci_gets_the_vendor_driver_from_its_f6_folder() {
    if !oracles() {
        return;
    }
    let folder = common::root().join("testdata/drivers/intel-ahci");
    // Without the folder: XP has no AHCI driver of its own, nothing is written, and the
    // report asks for --drivers.
    let dir = tempfile::tempdir().unwrap();
    let image = copy("xp-sp3", dir.path());
    let before = common::sha256_file(&image);
    let out = rehost(&["fix", s(&image), "-t", "kvm-sata", "--in-place", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["committed"], false);
    let why = common::fix_whys(&r["installs"][0], "");
    assert!(why.iter().any(|w| w.contains("--drivers")), "{why:?}");
    assert_eq!(common::sha256_file(&image), before);
    // With it: iaStor injected as its INF says, bound to the ICH9 by CriticalDeviceDatabase.
    let f = accept_image(
        image,
        "kvm-sata",
        &["--drivers", s(&folder)],
        "storage-driver",
        dir.path(),
    );
    let sys = ntfscat(
        &f.vol,
        &format!("{}\\System32\\drivers\\iaStor.sys", f.root),
    );
    let package = std::fs::read(folder.join("iaStor.sys")).unwrap();
    common::assert_same_bytes(&sys, &package, "iaStor.sys");
    let scsi = "{4D36E97B-E325-11CE-BFC1-08002BE10318}";
    for cs in SETS {
        let svc = format!("\\{cs}\\Services\\iaStor");
        for (value, want) in [
            ("Type", "1"),
            ("Start", "0"),
            ("Group", "SCSI Miniport"),
            ("ErrorControl", "1"),
            ("ImagePath", "system32\\drivers\\iaStor.sys"),
        ] {
            assert_eq!(
                get(&f.hive, &svc, value).as_deref(),
                Some(want),
                "{svc} {value}"
            );
        }
        assert_eq!(
            get(
                &f.hive,
                &format!("{svc}\\Parameters"),
                "queuePriorityEnable"
            )
            .as_deref(),
            Some("0")
        );
        for id in [
            "pci#ven_8086&dev_2922",
            "pci#ven_8086&dev_2922&subsys_11001af4&rev_02",
        ] {
            let key = format!("\\{cs}\\Control\\CriticalDeviceDatabase\\{id}");
            assert_eq!(get(&f.hive, &key, "Service").as_deref(), Some("iaStor"));
            assert_eq!(get(&f.hive, &key, "ClassGUID").as_deref(), Some(scsi));
        }
        // cpu-driver is fixed in the same run.
        let ppm = format!("\\{cs}\\Services\\intelppm");
        assert_eq!(get(&f.hive, &ppm, "Start").as_deref(), Some("4"));
    }
    f.undo();
}

#[test]
fn windows_8_and_later_get_driver_database_entries_with_a_proper_label() {
    if !oracles() {
        return;
    }
    let d = drivers();
    // viostor installed without its DriverDatabase entries (driver-database), and not
    // installed at all (storage-driver injects it).
    for (name, rule) in [
        ("ws2016-nodd", "driver-database"),
        ("ws2019", "storage-driver"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let image = copy(name, dir.path());
        let store = "\\Windows\\System32\\DriverStore\\FileRepository";
        if name == "ws2019" {
            // A driver store as Windows keeps one (the fixture has none): one package in it,
            // put there by rehost (its folders created), the journal of that dropped so the
            // image with it is where the test starts.
            let inf = dir.path().join("disk.inf");
            std::fs::write(&inf, "[Version]\r\nSignature=\"$WINDOWS NT$\"\r\n").unwrap();
            let to = format!("{store}\\disk.inf_amd64_0123456789abcdef\\disk.inf");
            let out = rehost(&["put", s(&image), s(&inf), &to, "--in-place"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::remove_file(format!("{}.rehost-undo", image.display())).unwrap();
        }
        let f = accept_image(
            image,
            "kvm-virtio-blk",
            &["--drivers", s(&d)],
            rule,
            dir.path(),
        );
        let ddb = "\\DriverDatabase";
        let label = get(
            &f.hive,
            &format!("{ddb}\\DriverInfFiles\\viostor.inf"),
            "Active",
        )
        .expect("DriverInfFiles\\viostor.inf Active");
        let hex = label.strip_prefix("viostor.inf_amd64_").unwrap_or_default();
        assert!(
            hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}: {label}"
        );
        let id = "PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00";
        assert!(
            export(&f.hive, &format!("{ddb}\\DeviceIds\\{id}"))
                .contains("\"viostor.inf\"=hex(3):01,ff,00,00"),
            "{name}"
        );
        let cfg = get(
            &f.hive,
            &format!("{ddb}\\DriverPackages\\{label}\\Descriptors\\{id}"),
            "Configuration",
        )
        .unwrap();
        assert_eq!(
            get(
                &f.hive,
                &format!("{ddb}\\DriverPackages\\{label}\\Configurations\\{cfg}"),
                "Service"
            )
            .as_deref(),
            Some("viostor")
        );
        // No CriticalDeviceDatabase on Windows 8 and later.
        assert_eq!(
            get(
                &f.hive,
                "\\ControlSet001\\Control\\CriticalDeviceDatabase\\pci#ven_1af4&dev_1001&rev_00",
                "Service"
            ),
            None
        );
        let not_fixed = f.report["installs"][0]["not_fixed"].as_array().unwrap();
        let said = not_fixed
            .iter()
            .any(|n| n["why"].as_str().unwrap().contains("driver store"));
        if name == "ws2019" {
            let package = d.join("viostor/w10/amd64");
            let sys = ntfscat(
                &f.vol,
                &format!("{}\\System32\\drivers\\viostor.sys", f.root),
            );
            let driver = std::fs::read(package.join("viostor.sys")).unwrap();
            common::assert_same_bytes(&sys, &driver, "viostor.sys");
            // The package in a folder of its own in the driver store, named by its label.
            assert!(!said, "{name}: {not_fixed:?}");
            for file in ["viostor.inf", "viostor.sys"] {
                let stored = ntfscat(&f.vol, &format!("{store}\\{label}\\{file}"));
                let original = std::fs::read(package.join(file)).unwrap();
                common::assert_same_bytes(&stored, &original, file);
            }
        } else {
            // No driver store in the install: the package stays out of it, and that is said.
            assert!(said, "{name}: {not_fixed:?}");
        }
        f.undo();
    }
}

#[test]
fn a_vendor_driver_not_in_the_image_needs_drivers_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (name, target) in [
        ("win7", "kvm-virtio-blk"),
        ("ws2016-nodd", "kvm-virtio-blk"),
    ] {
        let image = copy(name, dir.path());
        let before = common::sha256_file(&image);
        let out = rehost(&["fix", s(&image), "-t", target, "--in-place", "--json"]);
        assert_eq!(out.status.code(), Some(3), "{name}");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["committed"], false);
        let why = common::fix_whys(&r["installs"][0], "");
        assert!(
            !why.is_empty() && why.iter().all(|w| w.contains("--drivers")),
            "{name}: {why:?}"
        );
        assert_eq!(common::sha256_file(&image), before, "{name}");
    }
    // A driver folder without a package for the install says what it left out.
    let image = copy("win7", dir.path());
    let empty = tempfile::tempdir().unwrap();
    let w10 = drivers().join("viostor/w10/amd64");
    for f in ["viostor.inf", "viostor.sys"] {
        std::fs::copy(w10.join(f), empty.path().join(f)).unwrap();
    }
    let out = rehost(&[
        "fix",
        s(&image),
        "-t",
        "kvm-virtio-blk",
        "--dry-run",
        "--json",
        "--drivers",
        s(empty.path()),
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let why = common::fix_whys(&r["installs"][0], "storage-driver");
    assert!(
        why.iter()
            .any(|w| w.contains("no INF below") && w.contains("x86 6.1")),
        "{why:?}"
    );
}

/// `image` with `edits` (`rehost reg` arguments after the image) written into a new image.
fn edited(image: &Path, edits: &[&[&str]], dir: &Path) -> PathBuf {
    let mut from = image.to_path_buf();
    for (n, e) in edits.iter().enumerate() {
        let ext = image.extension().unwrap().to_str().unwrap();
        let stem = from.file_stem().unwrap().to_str().unwrap().to_string();
        let to = dir.join(format!("{stem}-{n}.{ext}"));
        let mut args = vec!["reg", e[0], s(&from)];
        args.extend(&e[1..]);
        args.extend(["--output", s(&to)]);
        let out = rehost(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        from = to;
    }
    from
}

#[test]
fn a_driver_file_without_its_key_gets_the_minimal_key_and_its_device_entries() {
    if !oracles() {
        return;
    }
    for (name, target, svc, group) in [
        ("xp-sp3", "hyperv-gen1", "intelide", "System Bus Extender"),
        ("ws2019", "kvm-sata", "storahci", "SCSI miniport"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let base = copy(name, dir.path());
        let mut edits: Vec<Vec<String>> = Vec::new();
        for cs in SETS {
            edits.push(vec![
                "delete".into(),
                format!("HKLM\\SYSTEM\\{cs}\\Services\\{svc}"),
            ]);
        }
        if name == "xp-sp3" {
            // Without a CriticalDeviceDatabase entry for the controller either.
            for cs in SETS {
                edits.push(vec![
                    "delete".into(),
                    format!("HKLM\\SYSTEM\\{cs}\\Control\\CriticalDeviceDatabase\\pci#ven_8086&dev_7111"),
                ]);
            }
        }
        let refs: Vec<Vec<&str>> = edits
            .iter()
            .map(|e| e.iter().map(String::as_str).collect())
            .collect();
        let refs: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        let image = edited(&base, &refs, dir.path());
        let out = rehost(&["check", "--json", s(&image), "-t", target]);
        let c: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            c["installs"][0]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["case"] == "missing-service"),
            "{name}: {c:#}"
        );
        let f = accept_image(image, target, &[], "storage-driver", dir.path());
        for cs in SETS {
            let key = format!("\\{cs}\\Services\\{svc}");
            for (value, want) in [
                ("Type", "1"),
                ("Start", "0"),
                ("ErrorControl", "1"),
                ("Group", group),
            ] {
                assert_eq!(
                    get(&f.hive, &key, value).as_deref(),
                    Some(want),
                    "{name} {key}"
                );
            }
            let path = get(&f.hive, &key, "ImagePath").unwrap();
            assert!(path.eq_ignore_ascii_case(&format!("system32\\drivers\\{svc}.sys")));
            if name == "xp-sp3" {
                let key = format!("\\{cs}\\Control\\CriticalDeviceDatabase\\pci#ven_8086&dev_7111");
                assert_eq!(get(&f.hive, &key, "Service").as_deref(), Some("intelide"));
            }
        }
        f.undo();
    }
}

#[test]
fn a_package_the_driver_database_holds_is_bound_without_a_driver_folder() {
    if !oracles() {
        return;
    }
    // ws2016 as Windows installs viostor, less the DeviceIds entry of the virtio-blk device:
    // its package is still in DriverPackages, and the fix binds the device to it.
    let dir = tempfile::tempdir().unwrap();
    let base = copy("ws2016", dir.path());
    let id = "PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00";
    let key = format!("HKLM\\SYSTEM\\DriverDatabase\\DeviceIds\\{id}");
    let image = edited(&base, &[&["delete", &key]], dir.path());
    let f = accept_image(image, "kvm-virtio-blk", &[], "driver-database", dir.path());
    let label = "viostor.inf_amd64_3f9b2a1c5d4e6f70";
    assert!(
        export(&f.hive, &format!("\\DriverDatabase\\DeviceIds\\{id}"))
            .contains("\"viostor.inf\"=hex(3):01,ff,00,00")
    );
    assert_eq!(
        get(
            &f.hive,
            &format!("\\DriverDatabase\\DriverPackages\\{label}\\Descriptors\\{id}"),
            "Configuration"
        )
        .as_deref(),
        Some("rhelscsi_inst")
    );
    assert!(f.report["installs"][0]["not_fixed"]
        .as_array()
        .unwrap()
        .is_empty());
    f.undo();
}

#[test]
fn two_rules_taking_entries_out_of_one_filter_list_compose() {
    if !oracles() {
        return;
    }
    // The Xen image with a second, missing, lower filter beside xenfilt: class-filter takes
    // ghostflt out, hypervisor-driver xenfilt, from the same list.
    let dir = tempfile::tempdir().unwrap();
    let base = copy("ws2019-xen", dir.path());
    let class =
        "HKLM\\SYSTEM\\ControlSet001\\Control\\Class\\{4d36e967-e325-11ce-bfc1-08002be10318}";
    let image = edited(
        &base,
        &[&[
            "set",
            class,
            "--value",
            "LowerFilters",
            "--type",
            "REG_MULTI_SZ",
            "--data",
            "ghostflt\\0xenfilt\\0stayflt",
        ]],
        dir.path(),
    );
    // stayflt is a filter that is installed: planted beside the others.
    let image = edited(
        &image,
        &[
            &[
                "set",
                "HKLM\\SYSTEM\\ControlSet001\\Services\\stayflt",
                "--value",
                "Start",
                "--type",
                "REG_DWORD",
                "--data",
                "0",
            ],
            &[
                "set",
                "HKLM\\SYSTEM\\ControlSet001\\Services\\stayflt",
                "--value",
                "ImagePath",
                "--type",
                "REG_EXPAND_SZ",
                "--data",
                "System32\\drivers\\disk.sys",
            ],
        ],
        dir.path(),
    );
    let f = accept_image(image, "kvm-sata", &[], "hypervisor-driver", dir.path());
    let rules: Vec<&str> = f
        .changes()
        .iter()
        .map(|c| c["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"class-filter"), "{rules:?}");
    let key = "\\ControlSet001\\Control\\Class\\{4d36e967-e325-11ce-bfc1-08002be10318}";
    assert_eq!(
        get(&f.hive, key, "LowerFilters").as_deref(),
        Some("stayflt")
    );
    let key2 = key.replace("001", "002");
    assert_eq!(get(&f.hive, &key2, "LowerFilters"), None);
    f.undo();
}

#[test]
fn show_stop_screen_applies_without_a_san_policy_finding() {
    // XP has no SanPolicy: the option still keeps the STOP screen, in each control set.
    let dir = tempfile::tempdir().unwrap();
    let image = copy("xp-sp3", dir.path());
    let out = rehost(&[
        "fix",
        s(&image),
        "-t",
        "hyperv-gen1",
        "--show-stop-screen",
        "--dry-run",
        "--json",
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let diffs: String = r["installs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["diff"].as_str())
        .collect();
    for cs in SETS {
        assert!(
            diffs.contains(&format!("{cs}\\Control\\CrashControl]")),
            "{cs}: {diffs}"
        );
    }
    assert!(diffs.contains("\"AutoReboot\"=dword:00000000"), "{diffs}");
}
