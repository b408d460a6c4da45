//! `rehost fix` of the HAL rules (hal-kernel-pair, hal-target, version-skew) on NT 5.x, and
//! of detecthal on Windows Vista x86, on the phony installs of testdata/windows, whose
//! driver caches hold driver.cab and spN.cab (scripts/fixtures/specs.py, `driver_cache`).
//!
//! Each case fixes a copy of a fixture through the command line and reads the result back
//! with outside tools: qemu-img converts the image to raw, ntfs-3g's ntfscat reads the
//! volume's files (boot.ini, the HAL and kernels written, the cabinets), cabextract opens
//! the cabinets, hivexget reads the hives. `check` must then pass for the target, and
//! `rehost undo` must bring back the image's SHA-256.

mod common;

use rehost::formats::bootini;
use rehost::rules::{self, Verdict};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn rehost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
        .args(args)
        .output()
        .expect("run rehost")
}

/// A copy of the fixture `name` in `dir`.
fn copy(name: &str, dir: &Path) -> PathBuf {
    let src = common::fixture(&format!("windows/{name}.vhd.zst"));
    let dst = dir.join(format!("{name}.vhd"));
    std::fs::copy(&src, &dst).unwrap();
    dst
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn target(name: &str) -> rehost::rules::Target {
    common::target(name)
}

/// `rehost fix IMAGE --target T ARGS... --json`, parsed.
fn fix(image: &Path, t: &str, args: &[&str]) -> Value {
    let mut all = vec!["fix", s(image), "--target", t, "--json"];
    all.extend(args);
    let out = rehost(&all);
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 3),
        "fix {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The changes of the report's one install.
fn changes(r: &Value) -> &Vec<Value> {
    r["installs"][0]["changes"].as_array().unwrap()
}

/// The check of the image's one install on `t`.
fn check(image: &Path, t: &str) -> rules::InstallCheck {
    let r = rules::check(image, &[target(t)]).unwrap();
    assert_eq!(r.installs.len(), 1);
    r.installs.into_iter().next().unwrap()
}

fn hal_rule(rule: &str) -> bool {
    ["hal-kernel-pair", "hal-target", "version-skew"].contains(&rule)
}

/// The outside tools every case reads with; `false` (outside CI) skips the reading back.
fn oracles() -> bool {
    ["qemu-img", "ntfscat", "cabextract", "hivexget"]
        .iter()
        .all(|t| common::have_tool(t))
}

/// A file of a volume, read by ntfs-3g.
fn ntfscat(vol: &Path, path: &str) -> Vec<u8> {
    common::run(Command::new("ntfscat").arg(vol).arg(path))
}

/// Asserts two files' bytes are equal, naming them by SHA-256 when they are not.
fn same(a: &[u8], b: &[u8], what: &str) {
    assert!(a == b, "{what}: {} differs from {}", sha256(a), sha256(b));
}

/// Whether ntfs-3g finds `path` on the volume.
fn ntfs_has(vol: &Path, path: &str) -> bool {
    Command::new("ntfscat")
        .arg(vol)
        .arg(path)
        .output()
        .unwrap()
        .status
        .success()
}

/// A file of a cabinet, extracted by cabextract.
fn cab_member(cab: &[u8], name: &str, dir: &Path) -> Vec<u8> {
    let work = dir.join(format!("cab-{name}"));
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("in.cab");
    std::fs::write(&file, cab).unwrap();
    common::run(
        Command::new("cabextract")
            .args(["-q", "-F", name, "-d"])
            .arg(&work)
            .arg(&file),
    );
    std::fs::read(work.join(name)).unwrap()
}

/// A value read by hivexget from a hive file.
fn hivexget(hive: &Path, key: &str, value: &str) -> String {
    let out = common::run(Command::new("hivexget").arg(hive).arg(key).arg(value));
    String::from_utf8_lossy(&out).trim().to_string()
}

fn sha256(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(b))
}

/// FileVersion of a PE image.
fn file_version(bytes: &[u8]) -> String {
    let ctx = rehost::error::Ctx::new("test", rehost::error::Layer::Pe);
    let pe = rehost::formats::pe::parse(bytes, &ctx, "x").unwrap();
    pe.version.unwrap().file_version.unwrap()
}

/// Undoes the commit and asserts the image is as it was.
fn undo_restores(image: &Path, sha: &str) {
    let out = rehost(&["undo", s(image)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::sha256_file(image), sha, "undo restores the image");
}

/// The files a fix put, by path, with the SHA-256 the report gives.
fn puts(r: &Value) -> Vec<(String, String, String)> {
    changes(r)
        .iter()
        .filter(|c| c["kind"] == "put")
        .map(|c| {
            (
                c["file"].as_str().unwrap().to_string(),
                c["sha256"].as_str().unwrap().to_string(),
                c["why"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_uniprocessor_hal_gets_the_mp_set_and_a_new_default_entry() {
    // Server 2003 SP2 on the ACPI uniprocessor HAL, for a Hyper-V VM (ACPI APIC MP).
    let dir = tempfile::tempdir().unwrap();
    let img = copy("w2k3-sp2", dir.path());
    let sha = common::sha256_file(&img);
    let before = check(&img, "hyperv-gen1");
    assert!(before
        .findings
        .iter()
        .any(|f| f.rule == "hal-target" && f.case == "reduced"));

    let dry = fix(&img, "hyperv-gen1", &["--dry-run"]);
    assert_eq!(dry["committed"], false);
    assert_eq!(common::sha256_file(&img), sha, "a dry run writes nothing");
    let ini = changes(&dry)
        .iter()
        .find(|c| c["kind"] == "boot.ini")
        .expect("a boot.ini change");
    let diff = ini["diff"].as_str().unwrap();
    // XP SP2+ and 2003 SP1+ boot PAE on NX hardware: the entry names the PAE MP kernel.
    assert!(
        diff.contains("/fastdetect /HAL=halmacpi.dll /KERNEL=ntkrpamp.exe"),
        "{diff}"
    );
    assert!(!diff.contains("\n-"), "the old entry is kept: {diff}");
    let files: Vec<String> = puts(&dry).into_iter().map(|p| p.0).collect();
    assert_eq!(
        files,
        [
            "\\WINDOWS\\System32\\halmacpi.dll",
            "\\WINDOWS\\System32\\ntkrnlmp.exe",
            "\\WINDOWS\\System32\\ntkrpamp.exe"
        ]
    );

    let r = fix(&img, "hyperv-gen1", &["--in-place"]);
    assert_eq!(r["committed"], true, "{r:#}");
    assert_eq!(r["installs"][0]["after"], "boots");
    let after = check(&img, "hyperv-gen1");
    assert_eq!(after.verdict, Verdict::Boots, "{:#?}", after.findings);
    assert!(after.findings.is_empty(), "{:#?}", after.findings);

    if oracles() {
        let vol = common::partition_file(&img, 1, dir.path()).0;
        let text = ntfscat(&vol, "/boot.ini");
        let ini = bootini::parse(&text);
        let d = ini.default_entry().expect("a default entry");
        assert_eq!(d.hal.as_deref(), Some("halmacpi.dll"));
        assert_eq!(d.kernel.as_deref(), Some("ntkrpamp.exe"));
        assert_eq!(
            ini.entries.len(),
            3,
            "the old entry and the recovery console kept"
        );
        let old = &ini.entries[1];
        assert_eq!(old.target, d.target);
        assert_eq!(old.switches, ["/fastdetect"]);
        assert_eq!(old.description, "Microsoft Windows Server 2003");
        assert!(String::from_utf8_lossy(&text).contains("\r\n"));
        // The files are the cabinet's, byte for byte, and the report's SHA-256 is theirs.
        let cab = ntfscat(&vol, "/WINDOWS/Driver Cache/i386/sp2.cab");
        for (path, sha, _) in puts(&r) {
            let name = path.rsplit('\\').next().unwrap();
            let written = ntfscat(&vol, &format!("/WINDOWS/System32/{name}"));
            same(&written, &cab_member(&cab, name, dir.path()), name);
            assert_eq!(sha256(&written), sha, "{name}");
            assert_eq!(file_version(&written), "5.2.3790.3959", "{name}");
        }
        // hal.dll and the kernels are untouched: the old entry still starts them.
        let orig =
            common::partition_file(&common::fixture("windows/w2k3-sp2.vhd.zst"), 1, dir.path()).0;
        for f in ["hal.dll", "ntoskrnl.exe", "ntkrnlpa.exe"] {
            let p = format!("/WINDOWS/System32/{f}");
            same(&ntfscat(&vol, &p), &ntfscat(&orig, &p), f);
        }
        common::run(Command::new("ntfsfix").arg("-n").arg(&vol));
    }
    undo_restores(&img, &sha);
}

#[test]
fn the_seeds_restore_gets_the_sp2_pair_from_sp2_cab() {
    // hal.dll and the kernels of SP1, kernel32.dll and ntdll.dll of SP2, the HAL of the old
    // machine (ACPI uniprocessor); the driver cache holds driver.cab, sp1.cab and sp2.cab.
    let dir = tempfile::tempdir().unwrap();
    let img = copy("w2k3-restored", dir.path());
    let sha = common::sha256_file(&img);
    let before = check(&img, "hyperv-gen1");
    let rules_found: Vec<&str> = before.findings.iter().map(|f| f.rule).collect();
    assert!(rules_found.contains(&"version-skew"), "{rules_found:?}");
    assert!(rules_found.contains(&"hal-target"), "{rules_found:?}");

    let r = fix(&img, "hyperv-gen1", &["--in-place"]);
    assert_eq!(r["committed"], true, "{r:#}");
    let hal_changes: Vec<&Value> = changes(&r)
        .iter()
        .filter(|c| hal_rule(c["rule"].as_str().unwrap()))
        .collect();
    // One set repairs both rules: planned once, saying so.
    assert_eq!(hal_changes.len(), 4, "{hal_changes:#?}");
    assert!(hal_changes.iter().all(|c| c["why"]
        .as_str()
        .unwrap()
        .contains("Also repairs version-skew")));
    for (path, _, why) in puts(&r) {
        assert!(
            why.contains("5.2.3790.3959 from \\WINDOWS\\Driver Cache\\i386\\sp2.cab"),
            "{path}: {why}"
        );
    }
    let after = check(&img, "hyperv-gen1");
    assert_eq!(after.verdict, Verdict::Boots, "{:#?}", after.findings);
    assert!(after.findings.is_empty(), "{:#?}", after.findings);

    if oracles() {
        let vol = common::partition_file(&img, 1, dir.path()).0;
        let sp1 = ntfscat(&vol, "/WINDOWS/Driver Cache/i386/sp1.cab");
        let sp2 = ntfscat(&vol, "/WINDOWS/Driver Cache/i386/sp2.cab");
        for name in ["halmacpi.dll", "ntkrnlmp.exe", "ntkrpamp.exe"] {
            let written = ntfscat(&vol, &format!("/WINDOWS/System32/{name}"));
            same(&written, &cab_member(&sp2, name, dir.path()), name);
            assert!(written != cab_member(&sp1, name, dir.path()), "{name}");
        }
        let d = bootini::parse(&ntfscat(&vol, "/boot.ini"));
        let d = d.default_entry().unwrap();
        assert_eq!(
            (d.hal.as_deref(), d.kernel.as_deref()),
            (Some("halmacpi.dll"), Some("ntkrpamp.exe"))
        );
    }
    undo_restores(&img, &sha);
}

#[test]
fn replace_hal_swaps_the_files_and_the_hal_record() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("w2k3-sp2", dir.path());
    let sha = common::sha256_file(&img);
    let r = fix(&img, "hyperv-gen1", &["--in-place", "--replace-hal"]);
    assert_eq!(r["committed"], true, "{r:#}");
    let kinds: Vec<(&str, &str)> = changes(&r)
        .iter()
        .filter(|c| hal_rule(c["rule"].as_str().unwrap()))
        .map(|c| {
            (
                c["kind"].as_str().unwrap(),
                c["file"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(!kinds.iter().any(|k| k.0 == "boot.ini"), "{kinds:?}");
    for f in ["hal.dll", "ntoskrnl.exe", "ntkrnlpa.exe"] {
        let p = format!("\\WINDOWS\\System32\\{f}");
        assert!(
            kinds.contains(&("rename", &format!("{p} -> {p}.rehost-orig"))),
            "{f}"
        );
        assert!(kinds.contains(&("put", &p)), "{f}");
    }
    let after = check(&img, "hyperv-gen1");
    assert_eq!(after.verdict, Verdict::Boots, "{:#?}", after.findings);
    let i = rules::check(&img, &[target("hyperv-gen1")]).unwrap();
    assert!(i.installs[0].findings.is_empty());

    if oracles() {
        let vol = common::partition_file(&img, 1, dir.path()).0;
        let orig =
            common::partition_file(&common::fixture("windows/w2k3-sp2.vhd.zst"), 1, dir.path()).0;
        let cab = ntfscat(&vol, "/WINDOWS/Driver Cache/i386/sp2.cab");
        for (installed, variant) in [
            ("hal.dll", "halmacpi.dll"),
            ("ntoskrnl.exe", "ntkrnlmp.exe"),
            ("ntkrnlpa.exe", "ntkrpamp.exe"),
        ] {
            let p = format!("/WINDOWS/System32/{installed}");
            same(
                &ntfscat(&vol, &p),
                &cab_member(&cab, variant, dir.path()),
                installed,
            );
            let kept = ntfscat(&vol, &format!("{p}.rehost-orig"));
            same(&kept, &ntfscat(&orig, &p), "the original kept");
            // No loose copies under the variants' names: nothing names them.
            assert!(!ntfs_has(&vol, &format!("/WINDOWS/System32/{variant}")));
        }
        same(
            &ntfscat(&vol, "/boot.ini"),
            &ntfscat(&orig, "/boot.ini"),
            "boot.ini",
        );
        let hive = dir.path().join("SYSTEM");
        std::fs::write(&hive, ntfscat(&vol, "/WINDOWS/System32/config/SYSTEM")).unwrap();
        for cs in ["ControlSet001", "ControlSet002"] {
            let record = format!("\\{cs}\\Enum\\Root\\ACPI_HAL\\0000");
            assert_eq!(hivexget(&hive, &record, "HardwareID"), "acpiapic_mp");
            assert_eq!(
                hivexget(&hive, &record, "DeviceDesc"),
                "ACPI Multiprocessor PC"
            );
            let class =
                format!("\\{cs}\\Control\\Class\\{{4D36E966-E325-11CE-BFC1-08002BE10318}}\\0000");
            assert_eq!(
                hivexget(&hive, &class, "DriverDesc"),
                "ACPI Multiprocessor PC"
            );
            assert_eq!(hivexget(&hive, &class, "InfSection"), "ACPIAPIC_MP_HAL");
            assert_eq!(hivexget(&hive, &class, "MatchingDeviceId"), "acpiapic_mp");
            // What the fix does not own is left as setup wrote it.
            assert_eq!(hivexget(&hive, &class, "InfPath"), "hal.inf");
        }
    }
    undo_restores(&img, &sha);
}

#[test]
fn service_pack_files_supply_the_set_when_no_cabinet_has_kernel32s_build() {
    // XP SP3 over SP2: driver.cab and sp2.cab, the SP3 files loose in ServicePackFiles;
    // UP kernels under the MP HAL (STOP 0x79).
    let dir = tempfile::tempdir().unwrap();
    let img = copy("xp-upkernel", dir.path());
    let sha = common::sha256_file(&img);
    let r = fix(&img, "kvm-ide", &["--in-place"]);
    assert_eq!(r["committed"], true, "{r:#}");
    assert_eq!(r["installs"][0]["before_stop"], "0x79");
    for (path, _, why) in puts(&r) {
        assert!(
            why.contains("5.1.2600.5512 from \\WINDOWS\\ServicePackFiles\\i386\\"),
            "{path}: {why}"
        );
    }
    assert_eq!(check(&img, "kvm-ide").verdict, Verdict::Boots);
    if oracles() {
        let vol = common::partition_file(&img, 1, dir.path()).0;
        for name in ["halmacpi.dll", "ntkrnlmp.exe", "ntkrpamp.exe"] {
            same(
                &ntfscat(&vol, &format!("/WINDOWS/System32/{name}")),
                &ntfscat(&vol, &format!("/WINDOWS/ServicePackFiles/i386/{name}")),
                name,
            );
        }
        let ini = bootini::parse(&ntfscat(&vol, "/boot.ini"));
        assert_eq!(
            ini.default_entry().unwrap().kernel.as_deref(),
            Some("ntkrpamp.exe")
        );
    }
    undo_restores(&img, &sha);
}

#[test]
fn a_standard_pc_hal_is_not_swapped_for_an_acpi_one() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("xp-stdpc", dir.path());
    let sha = common::sha256_file(&img);
    let r = fix(&img, "hyperv-gen1", &["--in-place"]);
    let i = &r["installs"][0];
    assert!(changes(&r)
        .iter()
        .all(|c| !hal_rule(c["rule"].as_str().unwrap())));
    let why = common::fix_whys(i, "hal-target");
    assert!(
        why.iter().any(|w| w.contains("a non-ACPI HAL")),
        "hal-target says why it did not fix: {why:?}"
    );
    // The Standard PC HAL starts on the VM on one processor, without ACPI (KB 309283): a
    // warning the fix leaves. What it does write is the cpu-driver's (intelppm disabled).
    assert_eq!(i["after"], "boots-with-warnings");
    assert_eq!(r["committed"], true);
    assert!(changes(&r).iter().all(|c| c["rule"] == "cpu-driver"), "{r}");
    undo_restores(&img, &sha);
}

#[test]
fn no_set_of_kernel32s_build_means_no_fix() {
    // The seed's restore without sp2.cab: sp1.cab has a complete set, but of SP1.
    let dir = tempfile::tempdir().unwrap();
    let img = copy("w2k3-restored", dir.path());
    let cab = "\\WINDOWS\\Driver Cache\\i386\\sp2.cab";
    let out = rehost(&["rm", s(&img), cab, "--in-place"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = fix(&img, "hyperv-gen1", &["--dry-run"]);
    assert!(changes(&r)
        .iter()
        .all(|c| !hal_rule(c["rule"].as_str().unwrap())));
    for rule in ["hal-target", "version-skew"] {
        let why = common::fix_whys(&r["installs"][0], rule);
        assert!(!why.is_empty(), "{rule} says why: {r}");
        assert!(
            why.iter().all(
                |w| w.contains("kernel32.dll is 5.2.3790.3959") || w.contains("could not plan")
            ),
            "{why:?}"
        );
    }
    assert!(common::fix_whys(&r["installs"][0], "hal-target")
        .iter()
        .any(|w| w.contains("5.2.3790.1830")));
}

#[test]
fn an_entry_with_dep_off_gets_the_non_pae_kernel() {
    // Server 2003 SP2 with /EXECUTE: DEP off, and with it PAE.
    let dir = tempfile::tempdir().unwrap();
    let img = copy("w2k3-sp2", dir.path());
    let ini = "[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS\r\n\
               [operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(1)\\WINDOWS=\"Microsoft Windows \
               Server 2003\" /fastdetect /execute\r\n";
    let local = dir.path().join("boot.ini");
    std::fs::write(&local, ini).unwrap();
    let out = rehost(&["put", s(&img), s(&local), "\\boot.ini", "--in-place"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = fix(&img, "hyperv-gen1", &["--dry-run"]);
    let diff = changes(&r)
        .iter()
        .find(|c| c["kind"] == "boot.ini")
        .unwrap()["diff"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        diff.contains("/fastdetect /execute /HAL=halmacpi.dll /KERNEL=ntkrnlmp.exe"),
        "{diff}"
    );
    assert_eq!(r["installs"][0]["after"], "boots");
}

#[test]
fn vista_gets_detecthal_in_its_bcd() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy("vista-x86", dir.path());
    let sha = common::sha256_file(&img);
    let before = check(&img, "hyperv-gen1");
    assert!(before
        .findings
        .iter()
        .any(|f| f.rule == "hal-target" && f.case == "detecthal"));
    let dry = fix(&img, "hyperv-gen1", &["--dry-run"]);
    assert_eq!(common::sha256_file(&img), sha);
    let c = &changes(&dry)[0];
    assert_eq!(
        (c["kind"].as_str(), c["hive"].as_str()),
        (Some("registry"), Some("BCD"))
    );
    assert!(c["diff"]
        .as_str()
        .unwrap()
        .contains("\\Elements\\26000010]\n+\"Element\"=hex:01"));
    let r = fix(&img, "hyperv-gen1", &["--in-place"]);
    assert_eq!(r["committed"], true);
    let after = check(&img, "hyperv-gen1");
    assert_eq!(after.verdict, Verdict::Boots, "{:#?}", after.findings);
    if oracles() {
        // The BCD is on the active System Reserved partition, the second.
        let vol = common::partition_file(&img, 2, dir.path()).0;
        let bcd = dir.path().join("BCD");
        std::fs::write(&bcd, ntfscat(&vol, "/Boot/BCD")).unwrap();
        let key = "\\Objects\\{11111111-2222-4333-8444-555555555555}\\Elements\\26000010";
        let out = common::run(Command::new("hivexget").arg(&bcd).arg(key).arg("Element"));
        assert_eq!(out, [1], "hivexget prints a binary value's bytes");
    }
    undo_restores(&img, &sha);
}

#[test]
fn windows_7_x86_chooses_its_hal_itself_when_both_are_in_system32() {
    // Windows 7 x86 on the ACPI PIC HAL: hal-target finds it unless System32 holds the
    // HAL the target wants, which the 6.1 loader then chooses itself. The stand-ins come
    // from the Vista image, which has both HALs in System32.
    let dir = tempfile::tempdir().unwrap();
    let img = copy("win7", dir.path());
    let vista = common::fixture("windows/vista-x86.vhd.zst");
    for (from, to) in [("halacpi.dll", "hal.dll"), ("halmacpi.dll", "halmacpi.dll")] {
        let out = rehost(&["cat", s(&vista), &format!("\\Windows\\System32\\{from}")]);
        assert!(out.status.success());
        let local = dir.path().join(from);
        std::fs::write(&local, &out.stdout).unwrap();
        let dst = format!("\\Windows\\System32\\{to}");
        let put = rehost(&["put", s(&img), s(&local), &dst, "--in-place"]);
        assert!(
            put.status.success(),
            "{}",
            String::from_utf8_lossy(&put.stderr)
        );
        let hal_target: Vec<_> = check(&img, "hyperv-gen1")
            .findings
            .into_iter()
            .filter(|f| f.rule == "hal-target")
            .collect();
        if to == "hal.dll" {
            assert!(
                hal_target.iter().any(|f| f.case == "reduced"),
                "{hal_target:#?}"
            );
        } else {
            assert!(hal_target.is_empty(), "{hal_target:#?}");
        }
    }
}

#[test]
fn one_set_repairs_the_pair_and_the_record_of_a_mixed_restore() {
    // XP SP2: an MP HAL over UP kernels and an acpiapic_up record (0x79, and a warning).
    let dir = tempfile::tempdir().unwrap();
    let img = copy("xp-mismatch", dir.path());
    let sha = common::sha256_file(&img);
    let r = fix(&img, "kvm-ide", &["--dry-run"]);
    assert_eq!(common::sha256_file(&img), sha);
    let i = &r["installs"][0];
    assert_eq!(
        (&i["before_stop"], &i["after"]),
        (&Value::from("0x79"), &Value::from("boots"))
    );
    let hal: Vec<&Value> = changes(&r)
        .iter()
        .filter(|c| hal_rule(c["rule"].as_str().unwrap()))
        .collect();
    assert!(
        hal.iter().all(|c| c["rule"] == "hal-kernel-pair"),
        "{hal:#?}"
    );
    assert!(hal.iter().all(|c| c["why"].as_str().unwrap().contains(
        "Also repairs hal-target: hal.dll is halmacpi.dll but setup recorded acpiapic_up"
    )));
    for (path, _, why) in puts(&r) {
        assert!(
            why.contains("5.1.2600.2180 from \\WINDOWS\\Driver Cache\\i386\\sp2.cab"),
            "{path}: {why}"
        );
    }
    assert!(i["not_fixed"].as_array().unwrap().is_empty(), "{i:#}");
}

/// `rehost inspect IMAGE --json`, parsed.
fn inspect_json(image: &Path) -> Value {
    let out = rehost(&["inspect", "--json", s(image)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// After the fix adds a boot.ini entry that loads another HAL and kernel, inspect reports
/// what that default entry loads (as check judges it), not hal.dll and ntoskrnl.exe, and
/// marks only it as the default; undone, it reports hal.dll again, naming the HAL in its
/// version-skew line as its HAL line does.
#[test]
fn inspect_reports_the_hal_and_kernel_the_default_entry_loads() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("s.vhd");
    std::fs::copy(common::root().join("testdata/sample/sample.vhd"), &img).unwrap();
    let sha = common::sha256_file(&img);

    let before = inspect_json(&img);
    let i = &before["installs"][0];
    assert_eq!(i["hal"]["file"], "hal.dll");
    assert_eq!(i["hal"]["original_filename"], "halaacpi.dll");
    assert_eq!(i["versions"]["skew"], true);
    let text = String::from_utf8(rehost(&["inspect", s(&img)]).stdout).unwrap();
    assert!(
        text.contains(
            "! version skew: service pack levels differ: the HAL (hal.dll, halaacpi.dll)"
        ),
        "{text}"
    );
    assert!(
        text.contains("    HAL halaacpi.dll 5.2.3790.1830 ("),
        "{text}"
    );

    fix(&img, "hyperv-gen1", &["--in-place"]);
    assert_eq!(check(&img, "hyperv-gen1").verdict, Verdict::Boots);
    let after = inspect_json(&img);
    // boot.ini has two lines with the install's path now: ntldr starts the first.
    let entries = after["boot_stores"][0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let defaults: Vec<&Value> = entries.iter().filter(|e| e["default"] == true).collect();
    assert_eq!(defaults.len(), 1, "{entries:?}");
    assert_eq!(defaults[0]["hal"], "halmacpi.dll");
    assert_eq!(defaults[0]["kernel"], "ntkrpamp.exe");
    let i = &after["installs"][0];
    let links = i["boot"]["entries"].as_array().unwrap();
    assert_eq!(
        links.iter().filter(|l| l["default"] == true).count(),
        1,
        "{links:?}"
    );
    // The HAL and kernel that entry loads, and their versions, without skew.
    assert_eq!(i["hal"]["file"], "halmacpi.dll");
    assert_eq!(i["hal"]["original_filename"], "halmacpi.dll");
    assert_eq!(i["hal"]["file_version"], "5.2.3790.3959");
    assert_eq!(i["hal"]["loaded_by"], "/HAL= of the default boot.ini entry");
    let loaded: Vec<&str> = i["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["loaded"] == true)
        .map(|k| k["file"].as_str().unwrap())
        .collect();
    assert_eq!(loaded, ["ntkrpamp.exe"]);
    assert_eq!(i["versions"]["hal"], "5.2.3790.3959");
    assert_eq!(i["versions"]["ntoskrnl"], "5.2.3790.3959");
    assert_eq!(i["versions"]["skew"], false, "{}", i["versions"]);
    assert_eq!(i["flags"], serde_json::json!([]));
    let text = String::from_utf8(rehost(&["inspect", s(&img)]).stdout).unwrap();
    assert!(
        text.contains(
            "    HAL halmacpi.dll 5.2.3790.3959, loaded by /HAL= of the default boot.ini entry"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "    kernel ntkrpamp.exe 5.2.3790.3959, loaded by /KERNEL= of the default boot.ini \
             entry"
        ),
        "{text}"
    );
    assert!(!text.contains("version skew"), "{text}");

    undo_restores(&img, &sha);
    assert_eq!(inspect_json(&img)["installs"][0]["hal"]["file"], "hal.dll");
}
