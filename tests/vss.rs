//! Volume Shadow Copies: the NTFS volume with two shadow copies that Windows 7 made
//! (`testdata/vss/vsstest.vhd.zst`, from dfvfs's test data) read by rehost and by the
//! outside oracles (vshadowinfo of libvshadow, the Sleuth Kit's istat); a write in place
//! into it refused unless allowed, the image unchanged byte for byte; allowed, written and
//! undone; `--output` and `--dry-run` unaffected; a Windows 7 fixture given shadow copy
//! structures refused by `fix` and `reg set` in place; damaged catalogs said, never fatal.

mod common;

use rehost::fs::ntfs::vss::{self, VSS_IDENTIFIER};
use rehost::fs::staged::Mode;
use rehost::fs::{FileSystem, Image};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rehost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
}

fn run(args: &[&str], image: &Path, rest: &[&str]) -> Output {
    rehost().args(args).arg(image).args(rest).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A copy of the fixture in `dir`.
fn vsstest(dir: &Path) -> PathBuf {
    let to = dir.join("vsstest.vhd");
    std::fs::copy(common::fixture("vss/vsstest.vhd.zst"), &to).unwrap();
    to
}

/// The shadow copies `rehost volumes --json` gives for volume 1.
fn shadow_copies(image: &Path) -> Value {
    let o = run(&["volumes", "--json"], image, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["filesystems"][0]["facts"]["ntfs"]["shadow_copies"].clone()
}

/// The days from 1601-01-01 to `y-m-d`, counted year by year and month by month (not the
/// era arithmetic rehost uses).
fn days_since_1601(y: u64, m: u64, d: u64) -> u64 {
    let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days = 0;
    for year in 1601..y {
        days += if leap(year) { 366 } else { 365 };
    }
    let lengths = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days + lengths[..(m - 1) as usize].iter().sum::<u64>() + d - 1
}

/// vshadowinfo's "Dec 03, 2013 06:35:09.736378700 UTC" as a FILETIME.
fn filetime(s: &str) -> u64 {
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let w: Vec<&str> = s
        .split([' ', ',', ':', '.'])
        .filter(|w| !w.is_empty())
        .collect();
    let m = months.iter().position(|x| *x == w[0]).unwrap() as u64 + 1;
    let n = |i: usize| w[i].parse::<u64>().unwrap();
    let secs = days_since_1601(n(2), m, n(1)) * 86_400 + n(3) * 3600 + n(4) * 60 + n(5);
    assert_eq!(w[6].len(), 9, "{s}");
    secs * 10_000_000 + n(6) / 100
}

/// vshadowinfo -a's stores: each a map of its "name : value" lines.
fn vshadowinfo(raw: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let out = common::run(Command::new("vshadowinfo").arg("-a").arg(raw));
    let mut stores = Vec::new();
    for line in String::from_utf8_lossy(&out).lines() {
        if line.starts_with("Store:") {
            stores.push(std::collections::BTreeMap::new());
        } else if line.starts_with("Block:") {
            // Block descriptors follow each store's fields.
            continue;
        } else if let (Some(s), Some((k, v))) = (stores.last_mut(), line.split_once(':')) {
            if line.starts_with('\t') && !s.contains_key("Number of blocks") {
                s.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    stores
}

#[test]
fn shadow_copies_agree_with_vshadowinfo_and_istat() {
    if !common::have_tool("vshadowinfo") || !common::have_tool("qemu-img") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = vsstest(dir.path());
    let raw = dir.path().join("vsstest.raw");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "vpc", "-O", "raw"])
            .arg(&image)
            .arg(&raw),
    );
    let theirs = vshadowinfo(&raw);
    let ours = shadow_copies(&image);
    assert_eq!(ours["damaged"], Value::Null, "{ours}");
    let copies = ours["copies"].as_array().unwrap();
    assert_eq!(copies.len(), theirs.len());
    assert_eq!(copies.len(), 2);
    // The same volume read raw gives the same.
    assert_eq!(shadow_copies(&raw), ours);
    let dev = rehost::disk::open(&raw, &Default::default()).unwrap();
    let ctx = rehost::Ctx::new("vsstest.raw", rehost::Layer::Vss);
    for (c, t) in copies.iter().zip(&theirs) {
        assert_eq!(c["store_id"], t["Identifier"].as_str());
        assert_eq!(c["shadow_copy_id"], t["Shadow copy ID"].as_str());
        assert_eq!(c["shadow_copy_set_id"], t["Shadow copy set ID"].as_str());
        assert_eq!(c["creation_time"], filetime(&t["Creation time"]), "{t:?}");
        let volume_size = t["Volume size"].split(['(', ' ']).rev().nth(1).unwrap();
        assert_eq!(c["volume_size"].to_string(), volume_size);
        assert_eq!(
            format!("0x{:08x}", c["attribute_flags"].as_u64().unwrap()),
            t["Attribute flags"]
        );
        let blocks = vss::store::count_block_descriptors(
            &dev.reader(),
            &ctx,
            c["store"]["block_list_offset"].as_u64().unwrap(),
        )
        .unwrap();
        assert_eq!(blocks.to_string(), t["Number of blocks"]);
        eprintln!(
            "store {}: made {} ({}), {blocks} blocks, store {} bytes",
            t["Identifier"], c["created"], t["Creation time"], c["store_size"]
        );
    }
    // The times as vshadowinfo printed them, for the record.
    assert_eq!(copies[0]["created"], "2013-12-03T06:35:09.7363787Z");
    assert_eq!(copies[1]["created"], "2013-12-03T06:37:48.9190583Z");
    // The store sizes: the size of each store's file (the MFT record the catalog names),
    // as the Sleuth Kit's istat reads that record's $DATA attribute.
    if !common::have_tool("istat") {
        return;
    }
    for c in copies {
        let record = c["store"]["file_record"].as_u64().unwrap().to_string();
        let out = common::run(Command::new("istat").arg(&raw).arg(&record));
        let out = String::from_utf8_lossy(&out);
        let data = out
            .lines()
            .find(|l| l.starts_with("Type: $DATA (128-") && l.contains("Name: N/A"))
            .unwrap_or_else(|| panic!("istat {record}: {out}"));
        let size = data
            .split("size: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert_eq!(c["store_size"].to_string(), size, "record {record}");
    }
    assert_eq!(copies[0]["store_size"], 7_815_168);
    assert_eq!(copies[1]["store_size"], 335_544_320);
}

#[test]
fn volumes_and_inspect_say_the_shadow_copies() {
    let dir = tempfile::tempdir().unwrap();
    let image = vsstest(dir.path());
    let o = run(&["volumes"], &image, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("  1    2 shadow copies (Volume Shadow Copy snapshots;"),
        "{t}"
    );
    assert!(t.contains("shadow copy 1: made 2013-12-03 06:35:09 UTC, store 7.5 MiB (7815168 bytes), id {4e3c03c2-7bc6-4288-ad96-c1eac1a55f71}"), "{t}");
    assert!(
        t.contains(
            "shadow copy 2: made 2013-12-03 06:37:48 UTC, store 320.0 MiB (335544320 bytes)"
        ),
        "{t}"
    );
    let o = run(&["inspect"], &image, &[]);
    let t = text(&o);
    assert!(t.contains("  volume 1: 2 shadow copies"), "{t}");
    let o = run(&["inspect", "--json"], &image, &[]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["volumes"][0]["shadow_copies"];
    assert_eq!(s["copies"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(s["copies"][1]["created"], "2013-12-03T06:37:48.9190583Z");
    // A volume without VSS structures says nothing of them.
    let o = run(
        &["volumes", "--json"],
        Path::new("testdata/sample/sample.vhd"),
        &[],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["filesystems"][0]["facts"]["ntfs"]["shadow_copies"],
        Value::Null
    );
}

#[test]
fn put_in_place_is_refused_allowed_undone_and_output_and_dry_run_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let image = vsstest(dir.path());
    let local = dir.path().join("hello.txt");
    std::fs::write(&local, b"hello\n").unwrap();
    let sha = common::sha256_file(&image);
    let journal = dir.path().join("vsstest.vhd.rehost-undo");

    for op in [
        vec!["put", "--in-place"],
        vec!["rm", "--in-place"],
        vec!["mv", "--in-place"],
    ] {
        let rest: Vec<&str> = match op[0] {
            "put" => vec![local.to_str().unwrap(), "\\hello.txt"],
            "rm" => vec!["\\password.txt"],
            _ => vec!["\\password.txt", "\\moved.txt"],
        };
        let mut c = rehost();
        c.arg(op[0]).arg(&image).args(&rest).arg(op[1]);
        let o = c.output().unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{op:?}: {t}");
        assert!(
            t.contains("vsstest.vhd: vss at offset 0x1e00: refused: volume 1 has 2 shadow copies"),
            "{op:?}: {t}"
        );
        assert!(t.contains("--allow-shadow-copies"), "{t}");
        assert_eq!(common::sha256_file(&image), sha, "{op:?}");
        assert!(!journal.exists());
    }

    let o = run(
        &["put"],
        &image,
        &[local.to_str().unwrap(), "\\hello.txt", "--dry-run"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("volume 1 has 2 shadow copies: --in-place would refuse to write into it without --allow-shadow-copies"), "{t}");
    assert_eq!(common::sha256_file(&image), sha);

    let new = dir.path().join("new.vhd");
    let o = run(
        &["put"],
        &image,
        &[
            local.to_str().unwrap(),
            "\\hello.txt",
            "--output",
            new.to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("in "), "{t}");
    assert_eq!(common::sha256_file(&image), sha);
    let cat = run(&["cat"], &new, &["\\hello.txt"]);
    assert_eq!(cat.stdout, b"hello\n");

    let o = run(
        &["put"],
        &image,
        &[
            local.to_str().unwrap(),
            "\\hello.txt",
            "--in-place",
            "--allow-shadow-copies",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("volume 1 has 2 shadow copies, now stale (--allow-shadow-copies)"),
        "{t}"
    );
    assert_ne!(common::sha256_file(&image), sha);
    assert_eq!(run(&["cat"], &image, &["\\hello.txt"]).stdout, b"hello\n");
    // The catalog and stores are still there: the shadow copies are listed as before.
    assert_eq!(shadow_copies(&image)["copies"].as_array().unwrap().len(), 2);
    let o = run(&["undo"], &image, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::sha256_file(&image), sha);
}

/// Writes `bytes` at `offset` of volume 1 of `image` in place (the session allowed to, the
/// volume may have shadow copies), and removes the undo journal.
fn poke(image: &Path, offset: u64, bytes: &[u8]) {
    let s = Image::open_staged(image, Mode::InPlace)
        .unwrap()
        .allow_shadow_copies(true);
    let v = s.volume(1).unwrap().offset;
    s.write_raw(v + offset, bytes).unwrap();
    s.finish().unwrap();
    let mut j = image.as_os_str().to_owned();
    j.push(".rehost-undo");
    std::fs::remove_file(j).unwrap();
}

/// The volume offset of the single run of `path`'s data on volume 1.
fn place(image: &Path, path: &str) -> u64 {
    let img = Image::open(image).unwrap();
    let fs = img.fs(1).unwrap();
    let FileSystem::Ntfs(n) = &*fs else {
        panic!("not NTFS")
    };
    let f = n.lookup(path).unwrap();
    let s = n.data(&f, "").unwrap();
    let runs = &s.desc().runs;
    assert_eq!(runs.len(), 1, "{path}: {runs:?}");
    runs[0].lcn.unwrap() * n.boot().cluster_size as u64
}

fn block_header(b: &mut [u8], at: u64, record_type: u32) {
    b[..16].copy_from_slice(&VSS_IDENTIFIER);
    b[16..20].copy_from_slice(&1u32.to_le_bytes());
    b[20..24].copy_from_slice(&record_type.to_le_bytes());
    b[32..40].copy_from_slice(&at.to_le_bytes());
}

/// Gives volume 1 of `image` the VSS structures of one shadow copy, laid out as Windows
/// lays them out: the catalog and the store in files of `System Volume Information` named
/// after the VSS identifier, the volume header at 0x1E00 naming the catalog.
fn plant_one_shadow_copy(image: &Path) {
    let catalog = "\\System Volume Information\\{3808876b-c176-4e48-b7ae-04046e6cc752}";
    let store = "\\System Volume Information\\{000000aa-0000-0000-0000-000000000000}{3808876b-c176-4e48-b7ae-04046e6cc752}";
    let put = |path: &str, bytes: &[u8]| {
        let s = Image::open_staged(image, Mode::InPlace).unwrap();
        let mut w = s.volume_writer(1, Default::default()).unwrap();
        w.put(path, bytes).unwrap();
        drop(w);
        s.finish().unwrap();
        let mut j = image.as_os_str().to_owned();
        j.push(".rehost-undo");
        std::fs::remove_file(j).unwrap();
    };
    put(catalog, &[0xCC; 0x4000]);
    put(store, &[0x55; 0x4000]);
    let (c, s) = (place(image, catalog), place(image, store));
    let img = Image::open(image).unwrap();
    let fs = img.fs(1).unwrap();
    let FileSystem::Ntfs(n) = &*fs else { panic!() };
    let store_file = n.lookup(store).unwrap();
    let reference = ((store_file.sequence as u64) << 48) | store_file.record;
    drop((fs, img));

    let mut b = vec![0u8; 0x4000];
    block_header(&mut b, c, vss::VSS_RECORD_CATALOG);
    let e = 128;
    b[e] = 2;
    b[e + 8..e + 16].copy_from_slice(&(1u64 << 30).to_le_bytes());
    b[e + 16] = 0xAA;
    b[e + 48..e + 56].copy_from_slice(&133_000_000_000_000_000u64.to_le_bytes());
    let e = 256;
    b[e] = 3;
    b[e + 16] = 0xAA;
    b[e + 32..e + 40].copy_from_slice(&s.to_le_bytes());
    b[e + 56..e + 64].copy_from_slice(&reference.to_le_bytes());
    put(catalog, &b);
    let mut b = vec![0u8; 0x4000];
    block_header(&mut b, s, vss::VSS_RECORD_STORE_HEADER);
    b[48] = 70;
    b[128 + 16] = 0x11;
    put(store, &b);
    // The files kept their clusters.
    assert_eq!((place(image, catalog), place(image, store)), (c, s));
    let mut h = vec![0u8; 512];
    h[..16].copy_from_slice(&VSS_IDENTIFIER);
    h[16] = 1;
    h[20] = 1;
    h[24..32].copy_from_slice(&0x1E00u64.to_le_bytes());
    h[48..56].copy_from_slice(&c.to_le_bytes());
    poke(image, 0x1E00, &h);
}

#[test]
fn fix_and_reg_set_in_place_are_refused_on_windows_with_a_shadow_copy() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("win7.vhd");
    std::fs::copy(common::fixture("windows/win7.vhd.zst"), &image).unwrap();
    plant_one_shadow_copy(&image);
    let s = shadow_copies(&image);
    assert_eq!(s["damaged"], Value::Null, "{s}");
    assert_eq!(s["copies"][0]["damaged"], Value::Null, "{s}");
    assert_eq!(s["copies"][0]["store_size"], 0x4000, "{s}");
    let sha = common::sha256_file(&image);
    let journal = dir.path().join("win7.vhd.rehost-undo");

    let o = run(&["fix", "-t", "kvm-sata", "--in-place"], &image, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("not fixed: "), "{t}");
    assert!(
        t.contains("refused: volume 1 has 1 shadow copy (Volume Shadow Copy snapshots)"),
        "{t}"
    );
    assert_eq!(common::sha256_file(&image), sha);
    assert!(!journal.exists());

    let key = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\msahci";
    let o = run(
        &[
            "reg",
            "set",
            "--in-place",
            "--value",
            "Start",
            "--type",
            "REG_DWORD",
            "--data",
            "0",
        ],
        &image,
        &[key],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("refused: volume 1 has 1 shadow copy"), "{t}");
    assert_eq!(common::sha256_file(&image), sha);

    let o = run(&["fix", "-t", "kvm-sata", "--dry-run"], &image, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("volume 1 has 1 shadow copy: --in-place would refuse to write into it without --allow-shadow-copies"), "{t}");

    let o = run(
        &[
            "fix",
            "-t",
            "kvm-sata",
            "--in-place",
            "--allow-shadow-copies",
        ],
        &image,
        &[],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("win7.vhd: volume 1 has 1 shadow copy, now stale (--allow-shadow-copies)"),
        "{t}"
    );
    let o = run(
        &["fix", "-t", "kvm-sata", "--json", "--dry-run"],
        &image,
        &[],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["installs"][0]["before"], "boots", "{v}");
    let o = run(&["undo"], &image, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::sha256_file(&image), sha);
}

#[test]
fn damaged_catalogs_are_said_never_fatal_and_still_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let image = vsstest(dir.path());
    let catalog = shadow_copies(&image)["catalog_offset"].as_u64().unwrap();
    assert_eq!(catalog, 0x6e30000);
    // The first catalog block's next block points back at it: the copies of the first
    // block are kept, the loop is said.
    poke(&image, catalog + 40, &catalog.to_le_bytes());
    let o = run(&["volumes"], &image, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("2 shadow copies"), "{t}");
    assert!(t.contains("the shadow copy catalog is damaged: "), "{t}");
    assert!(t.contains("vsstest.vhd: vss at offset 0x6e30000: the catalog's chain of blocks loops back to this block"), "{t}");
    let o = run(&["inspect"], &image, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["put", "--in-place"], &image, &["Cargo.toml", "\\x"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("volume 1 has a damaged shadow copy catalog (2 shadow copies read from it before the damage, perhaps more)"), "{t}");

    // The catalog's identifier broken: no copy is read, the damage is said, writes in
    // place are still refused.
    poke(&image, catalog, &[0u8; 16]);
    let s = shadow_copies(&image);
    assert_eq!(s["copies"].as_array().unwrap().len(), 0, "{s}");
    let d = s["damaged"].as_str().unwrap();
    assert!(
        d.ends_with(
            "vss at offset 0x6e30000: the catalog block does not start with the VSS identifier"
        ),
        "{d}"
    );
    let o = run(&["put", "--in-place"], &image, &["Cargo.toml", "\\x"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // A store header out of place: that copy says so, the others read.
    let image = vsstest(dir.path());
    let header = shadow_copies(&image)["copies"][1]["store"]["header_offset"]
        .as_u64()
        .unwrap();
    poke(&image, header + 20, &[9]);
    let s = shadow_copies(&image);
    assert_eq!(s["damaged"], Value::Null);
    assert_eq!(s["copies"][0]["damaged"], Value::Null);
    let d = s["copies"][1]["damaged"].as_str().unwrap();
    assert!(
        d.contains("the store header has record type 9, not 4"),
        "{d}"
    );
    assert_eq!(s["copies"][1]["shadow_copy_id"], Value::Null);

    // The catalog offset past the end of the volume.
    poke(&image, 0x1E00 + 48, &(1u64 << 40).to_le_bytes());
    let s = shadow_copies(&image);
    let d = s["damaged"].as_str().unwrap();
    assert!(
        d.contains("vss at offset 0x10000000000: the catalog block would lie outside the volume"),
        "{d}"
    );
    // No VSS identifier at 0x1E00: no shadow copies, and writes in place go ahead.
    poke(&image, 0x1E00, &[0u8; 16]);
    assert_eq!(shadow_copies(&image), Value::Null);
    let o = run(&["put", "--in-place"], &image, &["Cargo.toml", "\\x"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// The fuzz target's seed is the fixture's own VSS blocks moved into a 144 KiB volume (the
/// catalog and each store's header and block list, their offsets rewritten): read whole,
/// so that the fuzzer starts from structures Windows wrote.
#[test]
fn the_fuzz_seed_reads_whole() {
    let seed = common::root().join("fuzz/corpus/vss/34c8b99f7144ca25c46232dee89d388d183a1063.zst");
    let bytes = zstd::decode_all(&std::fs::read(seed).unwrap()[..]).unwrap();
    let dev = rehost::disk::Memory::new("seed", bytes);
    let ctx = rehost::Ctx::new("seed", rehost::Layer::Vss);
    let s = vss::read(&dev, &ctx).unwrap().unwrap();
    assert_eq!(s.damaged, None);
    assert_eq!(s.count(), 2);
    let blocks: Vec<u64> = s
        .copies
        .iter()
        .map(|c| {
            assert_eq!(c.damaged, None);
            assert_eq!(c.attribute_flags, Some(0x0042_0009));
            let l = c.store.as_ref().unwrap();
            vss::store::count_block_descriptors(&dev, &ctx, l.block_list_offset).unwrap()
        })
        .collect();
    assert_eq!(blocks, [480, 485]);
}
