//! `rehost check` on the phony installs of testdata/windows.
//!
//! - One table row per rule: an image with the rule's fault planted (scripts/fixtures/specs.py,
//!   `VARIANTS`) gives that finding on the target; the image it was derived from does not.
//! - The acceptance cases on the real Windows 7 SYSTEM hive (hyperv-gen1 boots; kvm-sata and
//!   kvm-virtio-blk stop with 0x7B; hyperv-gen2 cannot start it), with hivexget as the
//!   outside reader of the values that decide them.
//! - The real, dirty Windows 10 SYSTEM_B hive after log replay: for every target, the
//!   StartOverride values hivexget reads decide the verdict.
//! - The command line: JSON shape, exit codes, `rehost targets`, `--profiles`, read-only.

mod common;

use rehost::rules::{self, InstallCheck, Severity, Target, Verdict};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn spec(name: &str) -> Value {
    let text =
        std::fs::read_to_string(common::root().join(format!("testdata/windows/{name}.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn image(name: &str) -> PathBuf {
    let s = spec(name);
    common::fixture(&format!("windows/{}.zst", s["image"].as_str().unwrap()))
}

fn target(name: &str) -> Target {
    common::target(name)
}

/// The check of the image's one install on one target.
fn check(name: &str, t: &str) -> InstallCheck {
    let r = rules::check(&image(name), &[target(t)]).unwrap();
    assert_eq!(r.installs.len(), 1, "{name} on {t}");
    r.installs.into_iter().next().unwrap()
}

/// One rule's fault: on `faulty` (and `target`) the rule finds `case` with `severity` in
/// the control set the next boot uses; on `clean` it finds nothing.
struct Row {
    rule: &'static str,
    case: &'static str,
    severity: Severity,
    faulty: &'static str,
    clean: &'static str,
    target: &'static str,
}

const fn row(
    rule: &'static str,
    case: &'static str,
    severity: Severity,
    faulty: &'static str,
    clean: &'static str,
    target: &'static str,
) -> Row {
    Row {
        rule,
        case,
        severity,
        faulty,
        clean,
        target,
    }
}

use Severity::{Error, Info, Warning};

const TABLE: [Row; 21] = [
    row(
        "encrypted",
        "system-volume",
        Warning,
        "ws2019-bitlocker",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "firmware",
        "mbr-on-uefi",
        Error,
        "ws2019-bios",
        "ws2019",
        "hyperv-gen2",
    ),
    row(
        "firmware",
        "gpt-on-bios",
        Error,
        "ws2019",
        "ws2019-bios",
        "hyperv-gen1",
    ),
    row(
        "boot-config",
        "bootini-arc",
        Error,
        "xp-bootini",
        "xp-sp3",
        "hyperv-gen1",
    ),
    row(
        "boot-config",
        "bcd-device",
        Error,
        "ws2019-bcdguid",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "dirty-volume",
        "hibernated",
        Warning,
        "ws2019-hiber",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "dirty-hive",
        "unreplayed",
        Warning,
        "ws2019-dirtyhive",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "dirty-hive",
        "replayed",
        Info,
        "win10-dirty",
        "win11",
        "kvm-sata",
    ),
    row(
        "hal-kernel-pair",
        "up-mp",
        Error,
        "xp-upkernel",
        "xp-sp3",
        "hyperv-gen1",
    ),
    // The Standard PC HAL runs on one processor without ACPI (KB 309283): reduced.
    row(
        "hal-target",
        "reduced",
        Warning,
        "xp-stdpc",
        "xp-sp3",
        "hyperv-gen1",
    ),
    row(
        "storage-driver",
        "not-boot-start",
        Error,
        "ws2019-ahci-off",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "start-override",
        "disabled",
        Error,
        "ws2019-override",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "critical-device",
        "no-entry",
        Error,
        "xp-nocddb",
        "xp-sp3",
        "hyperv-gen1",
    ),
    row(
        "driver-database",
        "no-entry",
        Error,
        "ws2016-nodd",
        "ws2016",
        "kvm-virtio-blk",
    ),
    row(
        "class-filter",
        "missing-service",
        Error,
        "ws2019-filter",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "hypervisor-driver",
        "filter",
        Error,
        "ws2019-xen",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "hypervisor-driver",
        "left-boot-start",
        Warning,
        "ws2019-xen",
        "ws2019",
        "kvm-sata",
    ),
    // No STOP is documented for a power driver on a VM itself: a warning.
    row(
        "cpu-driver",
        "vm",
        Warning,
        "xp-sp3",
        "xp-ppm-off",
        "hyperv-gen1",
    ),
    row(
        "version-skew",
        "kernel-ntdll",
        Error,
        "w2k3-restored",
        "w2k3-sp2",
        "hyperv-gen1",
    ),
    row(
        "mounted-devices",
        "letter-taken",
        Error,
        "ws2019-letter",
        "ws2019",
        "kvm-sata",
    ),
    row(
        "san-policy",
        "offline",
        Warning,
        "ws2019-san",
        "ws2019",
        "kvm-sata",
    ),
];

#[test]
fn each_rule_finds_its_planted_fault_and_nothing_without_it() {
    for r in &rules::RULES {
        assert!(
            TABLE.iter().any(|row| row.rule == r.id),
            "rule {} has no row",
            r.id
        );
    }
    for row in &TABLE {
        let what = format!("{} on {} ({})", row.faulty, row.target, row.rule);
        // The faulty image and the clean one it was derived from (or derives from).
        let (f, c) = (spec(row.faulty), spec(row.clean));
        assert!(
            f["variant_of"] == row.clean
                || c["variant_of"] == row.faulty
                || row.rule == "version-skew"
                || row.rule == "dirty-hive",
            "{what}: {} and {} are not one install with and without the fault",
            row.faulty,
            row.clean
        );
        let got = check(row.faulty, row.target);
        let hits: Vec<_> = got
            .findings
            .iter()
            .filter(|x| x.rule == row.rule && x.case == row.case)
            .collect();
        assert!(
            !hits.is_empty(),
            "{what}: no {} finding: {:#?}",
            row.case,
            got.findings
        );
        assert!(
            hits.iter().any(|x| x.severity == row.severity),
            "{what}: {:?}",
            hits
        );
        for x in &hits {
            assert!(!x.evidence.is_empty(), "{what}: no evidence: {x:?}");
            assert!(!x.message.is_empty());
            let case = rules::finding::case(x.rule, x.case).unwrap();
            // Fixable here only where the case is fixable at all; where it is not here,
            // the finding says why.
            assert!(!x.fixable || case.fixable, "{what}");
            assert_eq!(
                x.fixable || !case.fixable,
                x.cannot_fix.is_none(),
                "{what}: {x:?}"
            );
            assert_eq!(x.stop, case.stop, "{what}");
        }
        match row.severity {
            Error => {
                assert_eq!(got.verdict, Verdict::NoBoot, "{what}");
                let first = got.findings.iter().find(|x| x.severity == Error).unwrap();
                assert_eq!(
                    got.stop, first.stop,
                    "{what}: the verdict's STOP is the first error's"
                );
            }
            _ => assert_ne!(got.verdict, Verdict::Boots, "{what}"),
        }
        let clean = check(row.clean, row.target);
        let stray: Vec<_> = clean
            .findings
            .iter()
            .filter(|x| x.rule == row.rule)
            .collect();
        assert!(
            stray.is_empty(),
            "{} on {}: {} finds {stray:#?} without the fault",
            row.clean,
            row.target,
            row.rule
        );
    }
}

#[test]
fn findings_carry_what_a_fix_needs_in_every_control_set() {
    // storahci Start=3 in both control sets Select names (Current/Default 1, LKG 2).
    let got = check("ws2019-ahci-off", "kvm-sata");
    let hits: Vec<_> = got
        .findings
        .iter()
        .filter(|x| x.rule == "storage-driver")
        .collect();
    let sets: Vec<Option<u32>> = hits.iter().map(|x| x.control_set).collect();
    assert_eq!(sets, vec![Some(1), Some(2)], "{hits:#?}");
    for x in &hits {
        assert_eq!(x.service.as_deref(), Some("storahci"));
        let e = &x.evidence[0];
        assert_eq!(
            e.key.as_deref(),
            Some(format!("ControlSet00{}\\Services\\storahci", x.control_set.unwrap()).as_str())
        );
        assert_eq!(
            (e.value.as_deref(), e.data.as_deref()),
            (Some("Start"), Some("3"))
        );
    }
    // In the Last Known Good set only, an error is a warning: the next boot uses set 1.
    assert_eq!(hits[0].severity, Severity::Error);
    assert_eq!(hits[1].severity, Severity::Warning);
    // The same install boots where its storage is not needed.
    assert_eq!(check("ws2019-ahci-off", "kvm-ide").verdict, Verdict::Boots);
}

fn hivexget(hive: &std::path::Path, key: &str, value: &str) -> Option<String> {
    let out = Command::new("hivexget")
        .arg(hive)
        .arg(key)
        .arg(value)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn windows7_real_hive_on_four_targets() {
    let hive = common::fixture("hives/regipy/SYSTEM.xz");
    let have_hivex = common::have_tool("hivexget");
    // hyperv-gen1: emulated PIIX4 IDE, intelide and atapi boot-start, CDDB entries present.
    let g1 = check("win7", "hyperv-gen1");
    assert_eq!(g1.verdict, Verdict::Boots, "{:#?}", g1.findings);
    assert!(g1.findings.is_empty(), "{:#?}", g1.findings);
    // kvm-sata: msahci is demand-start.
    let sata = check("win7", "kvm-sata");
    assert_eq!(
        (sata.verdict, sata.stop.as_deref()),
        (Verdict::NoBoot, Some("0x7B"))
    );
    let first = sata.findings.iter().find(|x| x.severity == Error).unwrap();
    assert_eq!(
        (first.rule, first.case),
        ("storage-driver", "not-boot-start")
    );
    assert_eq!(first.service.as_deref(), Some("msahci"));
    for x in sata.findings.iter().filter(|x| x.rule == "storage-driver") {
        let cs = x.control_set.unwrap();
        assert_eq!(x.evidence[0].data.as_deref(), Some("3"));
        if have_hivex {
            let start = hivexget(
                &hive,
                &format!("\\ControlSet00{cs}\\Services\\msahci"),
                "Start",
            );
            assert_eq!(
                start.as_deref(),
                x.evidence[0].data.as_deref(),
                "ControlSet00{cs}"
            );
        }
    }
    assert_eq!(
        sata.findings
            .iter()
            .filter(|x| x.rule == "storage-driver")
            .count(),
        2,
        "both control sets Select names: {:#?}",
        sata.findings
    );
    // kvm-virtio-blk: viostor is not installed.
    let vb = check("win7", "kvm-virtio-blk");
    assert_eq!(
        (vb.verdict, vb.stop.as_deref()),
        (Verdict::NoBoot, Some("0x7B"))
    );
    let first = vb.findings.iter().find(|x| x.severity == Error).unwrap();
    assert_eq!(
        (first.rule, first.case),
        ("storage-driver", "not-installed")
    );
    assert_eq!(first.service.as_deref(), Some("viostor"));
    if have_hivex {
        assert_eq!(
            hivexget(&hive, "\\ControlSet001\\Services\\viostor", "Start"),
            None
        );
    }
    // hyperv-gen2: UEFI only, 64-bit 8 / 2012 and later; this is x86 Windows 7 on an MBR disk.
    let g2 = check("win7", "hyperv-gen2");
    assert_eq!(g2.verdict, Verdict::NoBoot);
    let first = g2.findings.iter().find(|x| x.severity == Error).unwrap();
    assert_eq!((first.rule, first.case), ("firmware", "mbr-on-uefi"));
    assert!(
        g2.findings
            .iter()
            .any(|x| x.rule == "firmware" && x.message.contains("x86")),
        "{:#?}",
        g2.findings
    );
}

#[test]
fn windows10_dirty_hive_start_override_decides_after_replay() {
    if !common::have_tool("hivexget") {
        return;
    }
    // hivex reads the primary file; the logs replayed by rehost touch no StartOverride
    // key of this hive (its services' keys are the same before and after replay), so the
    // primary's values are what Windows sees after its own replay.
    let hive = common::fixture("hives/regipy/SYSTEM_B.xz");
    let all = rules::target::builtin().unwrap();
    let report = rules::check(&image("win10-dirty"), &all).unwrap();
    let v = rules::version::Version::parse("10.0").unwrap();
    let mut overridden_targets = 0;
    for (t, got) in all.iter().zip(&report.installs) {
        assert_eq!(got.target, t.name);
        assert!(
            got.findings
                .iter()
                .any(|x| x.rule == "dirty-hive" && x.case == "replayed"),
            "{}: the check did not read the replayed hive",
            t.name
        );
        let Some(driver) = t.controller.driver_for(v) else {
            continue; // no driver for Windows 10 (LSI parallel SCSI): storage-driver says so
        };
        let mut any = false;
        for svc in &driver.services {
            let key = format!("\\ControlSet001\\Services\\{svc}\\StartOverride");
            let theirs = hivexget(&hive, &key, "0").and_then(|x| x.parse::<u32>().ok());
            let ours = got.findings.iter().any(|x| {
                x.rule == "start-override"
                    && x.control_set == Some(1)
                    && x.service.as_deref() == Some(svc.as_str())
            });
            let exists = hivexget(&hive, &format!("\\ControlSet001\\Services\\{svc}"), "Start");
            if exists.is_none() {
                continue; // not installed: storage-driver's finding, not start-override's
            }
            assert_eq!(
                ours,
                theirs.is_some_and(|x| x != 0),
                "{}: {svc} StartOverride per hivex {theirs:?}",
                t.name
            );
            any |= ours;
        }
        if any {
            overridden_targets += 1;
            assert_eq!(got.verdict, Verdict::NoBoot, "{}", t.name);
        }
    }
    // Every inbox storage driver of this machine but its own (iaStorAV) is overridden.
    assert!(overridden_targets >= 10, "{overridden_targets}");
}

fn rehost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn command_line_json_exit_codes_and_profiles() {
    let w7 = image("win7");
    let ws = image("ws2019");
    let (w7, ws) = (w7.to_str().unwrap(), ws.to_str().unwrap());
    let before = common::sha256_file(std::path::Path::new(w7));
    // Several targets, one JSON document with installs[] per target.
    let out = rehost(&[
        "check",
        "--json",
        w7,
        "--target",
        "hyperv-gen1",
        "-t",
        "kvm-sata,kvm-virtio-blk",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let installs = doc["installs"].as_array().unwrap();
    let verdicts: Vec<(&str, &str)> = installs
        .iter()
        .map(|i| {
            (
                i["target"].as_str().unwrap(),
                i["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("hyperv-gen1", "boots"),
            ("kvm-sata", "no-boot"),
            ("kvm-virtio-blk", "no-boot")
        ]
    );
    for i in installs {
        assert_eq!(i["volume"], 1);
        assert_eq!(i["system_root"], "\\Windows");
    }
    assert_eq!(installs[1]["stop"], "0x7B");
    let f = &installs[1]["findings"][0];
    for field in ["rule", "severity", "stop", "message", "evidence", "fixable"] {
        assert!(f.get(field).is_some(), "finding without {field}: {f}");
    }
    assert_eq!(
        (f["rule"].as_str(), f["fixable"].as_bool()),
        (Some("storage-driver"), Some(true))
    );
    assert_eq!(
        common::sha256_file(std::path::Path::new(w7)),
        before,
        "check wrote to the image"
    );
    // Every install boots on every target asked: 0. A bad image: 1. An unknown target: 2.
    let out = rehost(&["check", ws, "-t", "kvm-sata", "-t", "hyperv-gen2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("kvm-sata") && text.contains("boots"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.vhdx");
    std::fs::write(&bad, b"vhdxfile but nothing else").unwrap();
    let out = rehost(&[
        "check",
        "--jsonl",
        "-j",
        "2",
        ws,
        bad.to_str().unwrap(),
        w7,
        "-t",
        "kvm-sata",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines.iter().filter(|l| l.get("installs").is_none()).count(),
        1
    );
    let out = rehost(&["check", ws, "-t", "no-such-machine"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hyperv-gen1"));
    // `rehost targets`: one line per profile.
    let out = rehost(&["targets"]);
    assert!(out.status.success());
    let list = String::from_utf8(out.stdout).unwrap();
    assert_eq!(list.lines().count(), 23, "{list}");
    // A profile of one's own, over the built-in ones: a physical AMD machine with the
    // PIIX4 IDE. XP's intelppm (Start=1) stops there with 0xFC: XP SP3 runs with DEP, and
    // so PAE, on a processor with NX (KB 953356: 0x7E without PAE, 0xFC with it).
    let amd = std::fs::read_to_string(common::root().join("profiles/targets/hyperv-gen1.toml"))
        .unwrap()
        .replace("name = \"hyperv-gen1\"", "name = \"amd-box\"")
        .replace("cpu_vendor = \"any\"", "cpu_vendor = \"amd\"")
        .replace("vm = true", "vm = false")
        .replace("platform = \"hyperv\"", "platform = \"physical\"");
    std::fs::write(dir.path().join("amd-box.toml"), amd).unwrap();
    let profiles = dir.path().to_str().unwrap();
    let out = rehost(&["targets", "--profiles", profiles]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 24);
    let xp = image("xp-sp3");
    let out = rehost(&[
        "check",
        "--json",
        xp.to_str().unwrap(),
        "--profiles",
        profiles,
        "-t",
        "amd-box",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let i = &doc["installs"][0];
    assert_eq!(
        (i["verdict"].as_str(), i["stop"].as_str()),
        (Some("no-boot"), Some("0xFC")),
        "{i}"
    );
    assert!(i["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "cpu-driver" && f["case"] == "other-vendor-pae"));
    // The same install with intelppm disabled boots there.
    let off = image("xp-ppm-off");
    let out = rehost(&[
        "check",
        off.to_str().unwrap(),
        "--profiles",
        profiles,
        "-t",
        "amd-box",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A broken profile is an error that names its file.
    std::fs::write(dir.path().join("broken.toml"), "name = 3").unwrap();
    let out = rehost(&["targets", "--profiles", profiles]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.toml"));
}

#[test]
fn every_image_on_every_target_gives_a_consistent_verdict() {
    let all = rules::target::builtin().unwrap();
    let dir = common::root().join("testdata/windows");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 25, "{names:?}");
    for name in names {
        let report = rules::check(&image(&name), &all).unwrap();
        assert_eq!(report.installs.len(), all.len(), "{name}");
        for i in &report.installs {
            let what = format!("{name} on {}", i.target);
            for f in &i.findings {
                assert!(
                    rules::finding::case(f.rule, f.case).is_some(),
                    "{what}: {}/{} is not in rules.toml",
                    f.rule,
                    f.case
                );
                if f.control_set.is_some() {
                    assert!(f.evidence.iter().any(|e| e.key.is_some()), "{what}: {f:?}");
                }
            }
            let errors = i.findings.iter().filter(|f| f.severity == Error).count();
            let warnings = i.findings.iter().filter(|f| f.severity == Warning).count();
            let expected = if errors > 0 {
                Verdict::NoBoot
            } else if !i.why.is_empty() {
                Verdict::Unknown
            } else if warnings > 0 {
                Verdict::BootsWithWarnings
            } else {
                Verdict::Boots
            };
            assert_eq!(i.verdict, expected, "{what}: {i:#?}");
            assert_eq!(i.stop.is_some(), i.verdict == Verdict::NoBoot, "{what}");
        }
    }
}
