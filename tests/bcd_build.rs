//! The BCD store bcdboot would write, built from nothing (`rehost_formats::bcdboot`):
//! - for UEFI, compared object by object and element by element (registry type, data, which
//!   elements exist) with a real store Windows 10 wrote (`testdata/hives/regipy/BCD.xz`),
//!   every difference named and explained;
//! - for BIOS, compared with the UEFI store less the differences bcdboot makes for BIOS
//!   (documented in `crates/rehost-formats/src/bcdboot.rs`), and with the element list of a
//!   BIOS install's store as `bcdedit /enum all` shows it;
//! - both read by hivexregedit, hivexget and nt-hive alike, and by rehost's own boot-store
//!   reader through `rehost put` and `rehost inspect` on a fixture image: the default entry,
//!   its devices resolved to the install's volume, its loader path and system root.

mod common;

#[allow(dead_code)]
#[path = "regf_edit/model.rs"]
mod model;

use model::Tree;
use rehost::formats::bcd::{self, Element, Object, PartitionRef};
use rehost::formats::bcd_ids::{self as ids, bootmgr, library, osloader};
use rehost::formats::bcdboot::{self, Firmware, Install};
use rehost::formats::hive::Hive;
use rehost::formats::regf::cells::Cells;
use rehost_core::{Ctx, Layer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn ctx() -> Ctx {
    Ctx::new("BCD", Layer::Bcd)
}

fn objects(b: &[u8]) -> BTreeMap<String, Object> {
    let h = Hive::parse(b.to_vec(), ctx()).unwrap();
    bcd::objects(&h)
        .unwrap()
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect()
}

/// The registry type and data of a value, as stored.
fn raw(hive: &[u8], key: &str, name: &str) -> Option<(u32, Vec<u8>)> {
    let c = Cells::new(hive);
    let k = c.find(&c.root(hive).unwrap(), key).unwrap()?;
    for v in c.values(&k).unwrap() {
        let vk = c.vk(v).unwrap();
        if vk.name.eq_ignore_ascii_case(name) {
            return Some((vk.kind, c.data(&vk).unwrap()));
        }
    }
    None
}

fn element_raw(hive: &[u8], object: &str, code: u32) -> (u32, Vec<u8>) {
    raw(
        hive,
        &format!("Objects\\{object}\\Elements\\{code:08x}"),
        "Element",
    )
    .unwrap_or_else(|| panic!("{object} {code:08x}"))
}

fn real_uefi() -> Vec<u8> {
    std::fs::read(common::fixture("hives/regipy/BCD.xz")).unwrap()
}

fn object_id(o: &Object, code: u32) -> String {
    match o.element(code) {
        Some(Element::Object(g)) => g.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

fn partition_of(o: &Object, code: u32) -> PartitionRef {
    match o.element(code) {
        Some(Element::Device(bcd::Device::Partition { partition })) => partition.clone(),
        other => panic!("{} {code:08x}: {other:?}", o.id),
    }
}

/// The install the real store describes: its partitions, its loader and resume objects'
/// identifiers, so that the built store may be compared with it value for value.
fn install_of_real(real: &BTreeMap<String, Object>) -> Install {
    let manager = &real[bcd::BOOTMGR];
    let loader = object_id(manager, bootmgr::DEFAULT_OBJECT);
    let resume = object_id(&real[&loader], osloader::ASSOCIATED_RESUME_OBJECT);
    Install {
        firmware: Firmware::Uefi,
        system: partition_of(manager, library::APPLICATION_DEVICE),
        os: partition_of(&real[&loader], osloader::OS_DEVICE),
        system_root: "\\Windows".into(),
        description: "Windows 10".into(),
        locale: "en-US".into(),
        loader,
        resume,
    }
}

const TIMESTAMP: u64 = 0x01d7_8a15_358a_127a;

#[test]
fn the_uefi_store_holds_what_windows_10_s_store_holds_less_what_belongs_to_the_machine() {
    let real_bytes = real_uefi();
    let real = objects(&real_bytes);
    let install = install_of_real(&real);
    let built_bytes = bcdboot::store(&install, TIMESTAMP, &ctx()).unwrap();
    let built = objects(&built_bytes);

    // Objects the real store has that a new one has not, each for a reason of its own:
    // - {fwbootmgr} and the firmware applications (type 0x101fffff: Linux Boot Manager,
    //   UEFI OS, Windows Boot Manager): the firmware's boot variables, mirrored into the
    //   store by Windows when it loads it as the system store;
    // - the WinRE loader the OS loader's recoverysequence names, and the RAM disk options
    //   (type 0x30000000) its device names: added by reagentc when it registers WinRE.
    let loader = &real[&install.loader];
    let winre: Vec<String> = match loader.element(library::RECOVERY_SEQUENCE) {
        Some(Element::ObjectList(l)) => l.clone(),
        other => panic!("recoverysequence: {other:?}"),
    };
    let extra: BTreeSet<&String> = real.keys().filter(|k| !built.contains_key(*k)).collect();
    for id in &extra {
        let o = &real[*id];
        let why = id.as_str() == bcd::FWBOOTMGR
            || o.kind == 0x101f_ffff
            || winre.contains(id)
            || o.kind == 0x3000_0000;
        assert!(
            why,
            "the real store's {id} (type {:#x}) is not explained",
            o.kind
        );
    }
    assert_eq!(extra.len(), 6, "{extra:?}");
    assert!(built.keys().all(|k| real.contains_key(k)));

    // Elements the real loader and resume application have that built ones have not: those
    // reagentc writes with WinRE's registration.
    let reagentc = [
        library::RECOVERY_SEQUENCE,
        library::AUTO_RECOVERY_ENABLED,
        library::DISPLAY_MESSAGE_OVERRIDE,
    ];
    for (id, b) in &built {
        let r = &real[id];
        assert_eq!(b.kind, r.kind, "{id}: object type");
        let codes = |o: &Object| o.elements.iter().map(|(c, _)| *c).collect::<BTreeSet<_>>();
        let missing: Vec<_> = codes(r).difference(&codes(b)).copied().collect();
        assert!(
            missing.iter().all(|c| reagentc.contains(c)),
            "{id}: the real store has {missing:x?} more"
        );
        assert!(
            codes(b).is_subset(&codes(r)),
            "{id}: built has elements the real has not"
        );
        for (code, e) in &b.elements {
            assert_eq!(Some(e), r.element(*code), "{id} {code:08x}");
            let (bk, bd) = element_raw(&built_bytes, id, *code);
            let (rk, mut rd) = element_raw(&real_bytes, id, *code);
            assert_eq!(bk, rk, "{id} {code:08x}: registry type");
            // {bootmgr}'s path in the real store ends with two NULs, not one, as the
            // firmware applications' paths do (presumably written back from the
            // firmware's boot entry, whose path it shares); every other string, one.
            if id == bcd::BOOTMGR && *code == library::APPLICATION_PATH {
                assert_eq!(rd.split_off(rd.len() - 2), [0, 0]);
            }
            assert_eq!(bd, rd, "{id} {code:08x}: data");
        }
    }
    // Description: KeyName, System, TreatAsSystem as in the real store (which also has
    // GuidCache, Windows' cache of the firmware's objects).
    for name in ["KeyName", "System", "TreatAsSystem"] {
        assert_eq!(
            raw(&built_bytes, "Description", name),
            raw(&real_bytes, "Description", name),
            "{name}"
        );
    }
    assert!(raw(&built_bytes, "Description", "GuidCache").is_none());
    // The hive: version 1.3, the root's name, the security descriptor of every key.
    let c = |b: &[u8]| {
        let cells = Cells::new(b);
        let root = cells.root(b).unwrap();
        let sk = cells.cell(root.security).unwrap();
        let len = u32::from_le_bytes(sk[16..20].try_into().unwrap()) as usize;
        (b[24], root.name, root.flags, sk[20..20 + len].to_vec())
    };
    assert_eq!(c(&built_bytes), c(&real_bytes));
}

/// The elements of each object of the store bcdboot writes for a BIOS install of Windows
/// 10, less WinRE's: the loader as Microsoft's "Boot Options Identifiers" lists a BIOS
/// install's `{current}` (device, path `winload.exe`, description, locale, inherit,
/// allowedinmemorysettings, osdevice, systemroot, resumeobject, nx, bootmenupolicy), and
/// the other objects as BCD-SYS (a re-creation of bcdboot) writes them for BIOS: {bootmgr}
/// without a path (the boot sector loads \bootmgr), no isolatedcontext anywhere.
fn bios_listing() -> Vec<(&'static str, Vec<u32>)> {
    vec![
        (
            "bootmgr",
            vec![
                0x11000001, 0x12000004, 0x12000005, 0x14000006, 0x23000003, 0x23000006, 0x24000001,
                0x24000010, 0x25000004,
            ],
        ),
        (
            "loader",
            vec![
                0x11000001, 0x12000002, 0x12000004, 0x12000005, 0x14000006, 0x17000077, 0x21000001,
                0x22000002, 0x23000003, 0x25000020, 0x250000c2,
            ],
        ),
        (
            "resume",
            vec![
                0x11000001, 0x12000002, 0x12000004, 0x12000005, 0x14000006, 0x17000077, 0x21000001,
                0x22000002, 0x25000008, 0x26000006,
            ],
        ),
        (
            "memdiag",
            vec![
                0x11000001, 0x12000002, 0x12000004, 0x12000005, 0x14000006, 0x1600000b,
            ],
        ),
    ]
}

fn bios_install() -> Install {
    Install {
        firmware: Firmware::Bios,
        system: PartitionRef::Mbr {
            signature: "2019b105".into(),
            offset: 42_991_616,
        },
        os: PartitionRef::Mbr {
            signature: "2019b105".into(),
            offset: 1_048_576,
        },
        system_root: "\\Windows".into(),
        description: "Windows Server 2019".into(),
        locale: "en-US".into(),
        loader: "{0b5e6f1a-58c3-4c1e-9f7e-2b1d3c4e5f60}".into(),
        resume: "{0b5e6f1b-58c3-4c1e-9f7e-2b1d3c4e5f60}".into(),
    }
}

#[test]
fn the_bios_store_is_the_uefi_one_with_bcdboot_s_bios_differences() {
    let bios = bios_install();
    let uefi = Install {
        firmware: Firmware::Uefi,
        ..bios.clone()
    };
    let b = objects(&bcdboot::store(&bios, TIMESTAMP, &ctx()).unwrap());
    let u = objects(&bcdboot::store(&uefi, TIMESTAMP, &ctx()).unwrap());
    assert_eq!(b.keys().collect::<Vec<_>>(), u.keys().collect::<Vec<_>>());
    let named = |n: &str| match n {
        "bootmgr" => bcd::BOOTMGR.to_string(),
        "loader" => bios.loader.clone(),
        "resume" => bios.resume.clone(),
        _ => ids::MEMDIAG.to_string(),
    };
    for (name, codes) in bios_listing() {
        let o = &b[&named(name)];
        let have: Vec<u32> = o.elements.iter().map(|(c, _)| *c).collect();
        assert_eq!(have, codes, "{name}");
    }
    let path = |o: &Object| match o.element(library::APPLICATION_PATH) {
        Some(Element::String(s)) => Some(s.clone()),
        _ => None,
    };
    assert_eq!(path(&b[bcd::BOOTMGR]), None);
    assert_eq!(
        path(&u[bcd::BOOTMGR]).as_deref(),
        Some("\\EFI\\Microsoft\\Boot\\bootmgfw.efi")
    );
    assert_eq!(
        path(&b[&bios.loader]).as_deref(),
        Some("\\Windows\\system32\\winload.exe")
    );
    assert_eq!(
        path(&b[&bios.resume]).as_deref(),
        Some("\\Windows\\system32\\winresume.exe")
    );
    assert_eq!(
        path(&b[ids::MEMDIAG]).as_deref(),
        Some("\\boot\\memtest.exe")
    );
    // Past paths and isolatedcontext, the two stores are the same.
    for (id, bo) in &b {
        let mut uo = u[id].clone();
        uo.elements
            .retain(|(c, _)| *c != library::ISOLATED_CONTEXT && *c != library::APPLICATION_PATH);
        let mut bo = bo.clone();
        bo.elements.retain(|(c, _)| *c != library::APPLICATION_PATH);
        assert_eq!(bo.elements, uo.elements, "{id}");
    }
    // Devices are MBR partitions: the signature and the partition's offset.
    assert_eq!(
        partition_of(&b[bcd::BOOTMGR], library::APPLICATION_DEVICE),
        bios.system
    );
}

#[test]
fn bad_identifiers_are_refused() {
    let mut i = bios_install();
    i.resume = i.loader.clone();
    assert!(bcdboot::store(&i, 1, &ctx()).is_err());
    i.resume = bcd::BOOTMGR.into();
    assert!(bcdboot::store(&i, 1, &ctx()).is_err());
    i.resume = "not a guid".into();
    assert!(bcdboot::store(&i, 1, &ctx()).is_err());
    i = bios_install();
    i.os = PartitionRef::Mbr {
        signature: "xyz".into(),
        offset: 0,
    };
    assert!(bcdboot::store(&i, 1, &ctx()).is_err());
}

#[test]
fn hivex_and_nt_hive_read_both_stores_as_rehost_does() {
    let bios = bios_install();
    let stores = [
        bcdboot::store(&bios, TIMESTAMP, &ctx()).unwrap(),
        bcdboot::store(&install_of_real(&objects(&real_uefi())), TIMESTAMP, &ctx()).unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (n, b) in stores.iter().enumerate() {
        let ours = Tree::from_rehost(b, "");
        assert_eq!(ours.difference(&Tree::from_nt_hive(b, "")), None);
        assert!(ours.keys.len() > 60, "{}", ours.keys.len());
        if !common::have_tool("hivexregedit") || !common::have_tool("hivexget") {
            continue;
        }
        let f = dir.path().join(format!("BCD{n}"));
        std::fs::write(&f, b).unwrap();
        assert_eq!(
            ours.difference(&Tree::from_hivex(&f, "")),
            None,
            "store {n}"
        );
        let key_name = common::run(
            Command::new("hivexget")
                .arg(&f)
                .args(["\\Description", "KeyName"]),
        );
        assert_eq!(String::from_utf8_lossy(&key_name).trim(), "BCD00000000");
    }
}

fn rehost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
}

/// The Windows fixture `name` decompressed into `dir`.
fn image(name: &str, dir: &Path) -> std::path::PathBuf {
    let src = common::fixture(&format!("windows/{name}.vhdx.zst"));
    let dst = dir.join(format!("{name}.vhdx"));
    std::fs::copy(&src, &dst).unwrap();
    dst
}

/// Puts `store` at `path` on `volume` of `image` and returns what inspect says of the
/// store it then finds there.
fn put_and_inspect(image: &Path, store: &[u8], volume: u32, path: &str) -> Value {
    let local = image.with_extension("bcd");
    std::fs::write(&local, store).unwrap();
    let put = rehost()
        .arg("put")
        .arg(image)
        .arg(&local)
        .arg(path)
        .args(["--volume", &volume.to_string(), "--in-place"])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let out = rehost()
        .args(["inspect", "--json"])
        .arg(image)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = path.trim_start_matches('\\').replace('\\', "/");
    report["boot_stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["volume"] == volume && s["path"] == want.as_str())
        .unwrap_or_else(|| panic!("no store at {path} on volume {volume}: {report:#}"))
        .clone()
}

fn check_default(store: &Value, install: &Install, system_volume: u32, os_volume: u32, ext: &str) {
    assert_eq!(store["kind"], "bcd");
    assert_eq!(
        store["bootmgr_device"]["volume"], system_volume,
        "{store:#}"
    );
    let entries = store["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{store:#}");
    let e = &entries[0];
    assert_eq!(e["default"], true);
    assert_eq!(e["id"], install.loader.as_str());
    assert_eq!(e["description"], install.description.as_str());
    assert_eq!(e["device"]["volume"], os_volume, "{e:#}");
    assert_eq!(e["os_device"]["volume"], os_volume, "{e:#}");
    assert_eq!(e["path"], format!("\\Windows\\system32\\winload.{ext}"));
    assert_eq!(e["system_root"], "\\Windows");
    let resume = store["resume"].as_array().unwrap();
    assert_eq!(resume.len(), 1);
    assert_eq!(resume[0]["id"], install.resume.as_str());
    assert_eq!(resume[0]["device"]["volume"], os_volume);
}

#[test]
fn rehost_inspect_finds_the_default_entry_of_a_built_store_on_a_fixture_image() {
    let dir = tempfile::tempdir().unwrap();
    // BIOS: ws2019-bios is an MBR disk (signature 2019b105) with C: at 1 MiB (volume 1) and
    // System Reserved at 41 MiB (volume 2); the built store replaces its \Boot\BCD.
    let bios = bios_install();
    let img = image("ws2019-bios", dir.path());
    let store = bcdboot::store(&bios, TIMESTAMP, &ctx()).unwrap();
    let found = put_and_inspect(&img, &store, 2, "\\Boot\\BCD");
    check_default(&found, &bios, 2, 1, "exe");
    // UEFI: ws2019 is a GPT disk with the ESP (volume 1, FAT) and C: (volume 3). `rehost
    // put` writes NTFS only, so the store goes to C:'s \EFI\Microsoft\Boot\BCD, where
    // inspect reads it as it reads the ESP's; its devices name the ESP and C: by GUID.
    let img = image("ws2019", dir.path());
    let disk = "33333333-aaaa-4bbb-8ccc-000000000000".to_string();
    let uefi = Install {
        firmware: Firmware::Uefi,
        system: PartitionRef::Gpt {
            disk: disk.clone(),
            partition: "33333333-aaaa-4bbb-8ccc-000000000001".into(),
        },
        os: PartitionRef::Gpt {
            disk,
            partition: "33333333-aaaa-4bbb-8ccc-000000000003".into(),
        },
        ..bios
    };
    let store = bcdboot::store(&uefi, TIMESTAMP, &ctx()).unwrap();
    let found = put_and_inspect(&img, &store, 3, "\\EFI\\Microsoft\\Boot\\BCD");
    check_default(&found, &uefi, 1, 3, "efi");
}
