//! Shared helpers for the integration tests: fixtures, outside tools, temporary files.
#![allow(dead_code)]

pub mod bounded;
pub mod ewf;
pub mod firmware;
pub mod ovmf;
pub mod report;
pub mod vhdx_builder;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when running under CI (`CI` set to anything but empty or "0").
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether an outside tool is on PATH. Outside CI a missing tool makes the caller skip, and
/// this says so on stderr; in CI a missing tool fails the test.
pub fn have_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if in_ci() {
            panic!("oracle tool `{tool}` is missing in CI: .ci/run must install it");
        }
        eprintln!("SKIP: oracle tool `{tool}` not installed; this check did not run");
        record_skip(tool);
    }
    found
}

/// The file where skipped oracle checks are counted, one line each (the tool or module
/// missing, a tab, the test): `scripts/test.sh` empties it before the tests and sums it up
/// after them (`scripts/oracle-skips.sh`), since cargo shows a skipped check as `ok`.
pub fn skips_file() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oracle-skips")
}

/// Counts one skipped oracle check for want of `what` in [`skips_file`].
pub fn record_skip(what: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let bin = std::env::args().next().unwrap_or_default();
    let bin = Path::new(&bin)
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .split('-')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    // One short line in append mode: lines of tests running at once do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skips_file())
    {
        let _ = f.write_all(format!("{what}\t{bin}::{test}\n").as_bytes());
    }
}

/// Runs a command and returns its stdout, panicking with its stderr on failure.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fixture from `testdata/`, decompressed (`.zst`, `.xz`) once into
/// `testdata/.cache/` and returned as a path. Uncompressed fixtures are returned in place.
pub fn fixture(name: &str) -> PathBuf {
    // Tests run in threads of one process: one decompresses while the others wait.
    static DECOMPRESSING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = DECOMPRESSING.lock().unwrap_or_else(|p| p.into_inner());
    let src = root().join("testdata").join(name);
    let (stem, codec) = if let Some(s) = name.strip_suffix(".zst") {
        (s, "zst")
    } else if let Some(s) = name.strip_suffix(".xz") {
        (s, "xz")
    } else {
        assert!(src.exists(), "missing fixture {}", src.display());
        return src;
    };
    let cache = root().join("testdata").join(".cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = cache.join(stem);
    // A fixture rebuilt since it was decompressed is decompressed again.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if out.exists() && modified(&out) >= modified(&src) {
        return out;
    }
    let bytes = std::fs::read(&src).unwrap_or_else(|e| panic!("fixture {}: {e}", src.display()));
    let plain = match codec {
        "zst" => zstd::decode_all(&bytes[..]).unwrap(),
        _ => run(Command::new("xz").args(["-dc"]).arg(&src)),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    // Write under a temporary name and rename, so parallel tests never see half a file.
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, plain).unwrap();
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// The first partition of the compressed MBR disk `testdata/<name>` (found through its
/// MBR), decompressed into `dir` as a sparse file holding that volume alone: a disk of a
/// gigabyte of zeros takes neither the memory nor the disk space its size says.
pub fn sparse_partition(name: &str, dir: &Path) -> PathBuf {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let src = root().join("testdata").join(name);
    let mut dec = zstd::stream::read::Decoder::new(std::fs::File::open(&src).unwrap()).unwrap();
    let mut mbr = [0u8; 512];
    dec.read_exact(&mut mbr).unwrap();
    let le32 = |o: usize| u32::from_le_bytes(mbr[o..o + 4].try_into().unwrap()) as u64;
    let (start, len) = (le32(454) * 512, le32(458) * 512);
    assert!(start >= 512 && len > 0, "{name}: MBR entry 1");
    std::io::copy(&mut (&mut dec).take(start - 512), &mut std::io::sink()).unwrap();
    let stem = Path::new(name).file_stem().unwrap().to_string_lossy();
    let out = dir.join(format!("{stem}.volume"));
    let f = std::fs::File::create(&out).unwrap();
    f.set_len(len).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        dec.read_exact(&mut buf[..n]).unwrap();
        if buf[..n].chunks(8).any(|w| w.iter().any(|b| *b != 0)) {
            f.write_all_at(&buf[..n], at).unwrap();
        }
        at += n as u64;
    }
    out
}

/// SHA-256 of a file, as hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("{:x}", h.finalize())
}

/// `fls -r -p` of a volume at `sector_offset` sectors into `image`: relative path (with `/`)
/// to record number, for names only (named attributes `name:stream` and the virtual
/// `$OrphanFiles` left out).
pub fn fls_tree(image: &Path, sector_offset: u64) -> std::collections::BTreeMap<String, u64> {
    let out = run(Command::new("fls")
        .args(["-r", "-p", "-o", &sector_offset.to_string()])
        .arg(image));
    let mut map = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let Some((head, path)) = line.split_once(":\t") else {
            continue;
        };
        if path.starts_with("$OrphanFiles") || head.contains('*') {
            continue;
        }
        // `name:attr` is a named attribute; files with only named attributes (`$Secure`)
        // appear only so: keep the file's name.
        let path = match path.rsplit_once('/') {
            Some((dir, leaf)) => format!("{dir}/{}", leaf.split(':').next().unwrap_or(leaf)),
            None => path.split(':').next().unwrap_or(path).to_string(),
        };
        let inode = head
            .split_whitespace()
            .last()
            .and_then(|i| i.split('-').next())
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse fls line {line:?}"));
        map.insert(path, inode);
    }
    map
}

/// Asserts two maps are equal, showing only the first differences.
pub fn assert_same_map<V: PartialEq + std::fmt::Debug>(
    ours: &std::collections::BTreeMap<String, V>,
    theirs: &std::collections::BTreeMap<String, V>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (k, v) in ours {
        match theirs.get(k) {
            None => diffs.push(format!("only ours: {k} = {v:?}")),
            Some(t) if t != v => diffs.push(format!("{k}: ours {v:?}, theirs {t:?}")),
            _ => {}
        }
    }
    for (k, v) in theirs {
        if !ours.contains_key(k) {
            diffs.push(format!("only theirs: {k} = {v:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences (of {} / {} entries), first:\n{}",
        diffs.len(),
        ours.len(),
        theirs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `icat` of a record's unnamed data (or `inode-128-<id>` style attribute when given).
pub fn icat(image: &Path, sector_offset: u64, inode: &str) -> Vec<u8> {
    run(Command::new("icat")
        .args(["-o", &sector_offset.to_string()])
        .arg(image)
        .arg(inode))
}

/// `ntfsls -R -l -i -s` of a bare NTFS volume file: relative path to (record, size).
pub fn ntfsls_tree(volume: &Path) -> std::collections::BTreeMap<String, (u64, u64)> {
    let out = Command::new("ntfsls")
        .args(["-R", "-l", "-i", "-s", "-a"])
        .arg(volume)
        .output()
        .expect("run ntfsls");
    let mut map = std::collections::BTreeMap::new();
    let mut dir = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(d) = line.strip_suffix(':').filter(|l| l.starts_with('/')) {
            dir = d.trim_start_matches('/').to_string();
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(inode), Some(size)) = (f.next(), f.next()) else {
            continue;
        };
        let (Ok(inode), Ok(size)) = (inode.parse::<u64>(), size.parse::<u64>()) else {
            continue;
        };
        // Then "Mon DD HH:MM YYYY" and the name, which may hold spaces: the name starts one
        // space after the end of the sixth field.
        let name = field_end(line, 6)
            .and_then(|end| line.get(end + 1..))
            .unwrap_or_default()
            .to_string();
        if name == "." || name == ".." || name.is_empty() {
            continue;
        }
        let path = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        map.insert(path, (inode, size));
    }
    map
}

/// Byte offset just past the `n`-th whitespace-separated field of `line` (1-based).
fn field_end(line: &str, n: usize) -> Option<usize> {
    let mut count = 0;
    let mut in_field = false;
    for (i, c) in line.char_indices() {
        if c.is_whitespace() {
            if in_field {
                count += 1;
                if count == n {
                    return Some(i);
                }
            }
            in_field = false;
        } else {
            in_field = true;
        }
    }
    None
}

/// Asserts two byte strings are equal; on failure reports lengths and the first difference
/// instead of the bytes.
pub fn assert_same_bytes(ours: &[u8], theirs: &[u8], what: &str) {
    if ours == theirs {
        return;
    }
    let first = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    panic!(
        "{what}: ours {} bytes, theirs {} bytes, first difference at offset {first} ({:?} vs {:?})",
        ours.len(),
        theirs.len(),
        ours.get(first),
        theirs.get(first)
    );
}

/// Whether a Python module is importable (an oracle from PyPI). Skips outside CI, fails in
/// CI, like [`have_tool`].
pub fn have_python_module(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if in_ci() {
            panic!("oracle Python module `{module}` is missing in CI: .ci/run must install it");
        }
        eprintln!("SKIP: oracle Python module `{module}` not installed; this check did not run");
        record_skip(&format!("Python module {module}"));
    }
    ok
}

/// The whole virtual disk of a VHD or VHDX as libvhdi reads it (parents opened from the
/// image's directory). It reads one sector at a time: libvhdi's reads that span sectors of
/// a differencing block from both child and parent can return the wrong sectors.
pub fn libvhdi_read(image: &Path) -> Vec<u8> {
    let script = r#"
import sys, os, pyvhdi
def open_chain(path):
    f = pyvhdi.file()
    f.open(path)
    if f.disk_type == 4:
        name = f.parent_filename.replace("\\", "/").split("/")[-1]
        f.set_parent(open_chain(os.path.join(os.path.dirname(path), name)))
    return f
f = open_chain(sys.argv[1])
out = sys.stdout.buffer
left = f.media_size
while left:
    chunk = f.read_buffer(min(left, 512))
    out.write(chunk)
    left -= len(chunk)
"#;
    run(Command::new("python3").args(["-c", script]).arg(image))
}

/// Reads a whole device through rehost.
pub fn read_all(dev: &dyn rehost::disk::ReadAt) -> Vec<u8> {
    let mut v = vec![0u8; dev.size() as usize];
    dev.read_at(0, &mut v).unwrap();
    v
}

/// Deterministic pseudo-random bytes (xorshift), with some all-zero 64 KiB stretches.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let block = v.len() / 65536;
        if block % 5 == 3 {
            v.push(0);
        } else {
            v.extend_from_slice(&x.to_le_bytes()[..(len - v.len()).min(8)]);
        }
    }
    v
}

/// A disk image from `testdata/disks` (see its MANIFEST): decompressed, or rebuilt from its
/// zstd patch against its base image, once, into `testdata/.cache/disks/`; its SHA-256 is
/// checked against the manifest.
pub fn disk_fixture(name: &str) -> PathBuf {
    // Tests run in threads of one process: one builds an image while the others wait.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    build_disk_fixture(name)
}

fn build_disk_fixture(name: &str) -> PathBuf {
    let dir = root().join("testdata/disks");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).expect("testdata/disks/MANIFEST");
    let (base, sha) = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("image "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .map(|f| (f[1].to_string(), f[2].to_string()))
        .unwrap_or_else(|| panic!("{name} is not in testdata/disks/MANIFEST"));
    let cache = root().join("testdata/.cache/disks");
    std::fs::create_dir_all(&cache).unwrap();
    let out = cache.join(name);
    if out.exists() {
        return out;
    }
    let tmp = cache.join(format!("{name}.tmp{}", std::process::id()));
    if base == "-" {
        let bytes = std::fs::read(dir.join(format!("{name}.zst"))).unwrap();
        std::fs::write(&tmp, zstd::decode_all(&bytes[..]).unwrap()).unwrap();
    } else {
        let base_path = build_disk_fixture(&base);
        run(Command::new("zstd")
            .args(["-q", "-d", "-f", "--memory=1024MB"])
            .arg(format!("--patch-from={}", base_path.display()))
            .arg(dir.join(format!("{name}.zpatch")))
            .arg("-o")
            .arg(&tmp));
    }
    let got = sha256_file(&tmp);
    assert_eq!(got, sha, "{name}: rebuilt image has the wrong SHA-256");
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// The container variants the fixtures hold for each disk, with qemu-img's format name.
pub const CONTAINERS: [(&str, &str); 6] = [
    ("raw", "raw"),
    ("fixed.vhd", "vpc"),
    ("dynamic.vhd", "vpc"),
    ("fixed.vhdx", "vhdx"),
    ("dynamic-1m.vhdx", "vhdx"),
    ("dynamic-32m.vhdx", "vhdx"),
];

/// A seeded xorshift generator for mutation tests (no dependency, same sequence everywhere).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Partition `n` (from 1, as sfdisk numbers them) of a disk image, written to a file of
/// its own in `dir`: qemu-img converts a VHD, VHDX, VMDK or qcow2 to raw (a `.raw` or `.img` is read as
/// it is), sfdisk reads the partition table. Returns the file and the partition's byte
/// offset on the disk. Both tools are outside rehost, so the volume a test checks is found
/// without rehost's own readers.
pub fn partition_file(image: &Path, n: usize, dir: &Path) -> (PathBuf, u64) {
    use std::io::{Read, Seek, SeekFrom};
    static STEM: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let stem = STEM.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ext = image.extension().and_then(|e| e.to_str()).unwrap_or("");
    let converted = match ext {
        "vhd" => Some("vpc"),
        "vhdx" => Some("vhdx"),
        "vmdk" => Some("vmdk"),
        "qcow2" => Some("qcow2"),
        _ => None,
    }
    .map(|fmt| {
        let raw = dir.join(format!("disk-{stem}.raw"));
        run(Command::new("qemu-img")
            .args(["convert", "-f", fmt, "-O", "raw"])
            .arg(image)
            .arg(&raw));
        raw
    });
    let disk = converted.as_deref().unwrap_or(image);
    let table: serde_json::Value =
        serde_json::from_slice(&run(Command::new("sfdisk").arg("-J").arg(disk))).unwrap();
    let p = &table["partitiontable"]["partitions"][n - 1];
    let sector = table["partitiontable"]["sectorsize"]
        .as_u64()
        .unwrap_or(512);
    let (offset, len) = (
        p["start"].as_u64().expect("partition start") * sector,
        p["size"].as_u64().expect("partition size") * sector,
    );
    let mut f = std::fs::File::open(disk).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut bytes = vec![0u8; len as usize];
    f.read_exact(&mut bytes).unwrap();
    let out = dir.join(format!("volume-{stem}-{n}.ntfs"));
    std::fs::write(&out, &bytes).unwrap();
    if let Some(raw) = converted {
        std::fs::remove_file(raw).unwrap();
    }
    (out, offset)
}

/// The built-in target profile `name`.
pub fn target(name: &str) -> rehost::rules::Target {
    rehost::rules::target::builtin()
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"))
}

/// The fixture image of testdata/windows/`name`.json (decompressed, cached).
pub fn windows_image(name: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(root().join(format!("testdata/windows/{name}.json"))).unwrap();
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    fixture(&format!("windows/{}.zst", spec["image"].as_str().unwrap()))
}

/// The `rehost` binary under test.
pub fn rehost_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rehost"))
}

/// `rehost ARGS IMAGE` with `--json` among ARGS: its report, parsed. The command must
/// exit 0 (every install boots) or 3 (one does not).
pub fn json_report(args: &[&str], image: &Path) -> serde_json::Value {
    let out = rehost_command().args(args).arg(image).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "rehost {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Why a fix left `rule`'s findings (every rule's for ""): what the fix could not do
/// (`not_fixed`), and what check already said it would not (each remaining finding's
/// `cannot_fix`).
pub fn fix_whys(install: &serde_json::Value, rule: &str) -> Vec<String> {
    let planned = install["not_fixed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| rule.is_empty() || n["rule"] == rule)
        .map(|n| n["why"].as_str().unwrap().to_string());
    let told = install["remaining"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| rule.is_empty() || f["rule"] == rule)
        .filter_map(|f| f["cannot_fix"].as_str().map(str::to_string));
    planned.chain(told).collect()
}

/// A sparse raw disk of `size` bytes partitioned by sfdisk as Windows 7 setup lays one out
/// (disk signature 5cbea03e; System Reserved, 100 MiB from sector 2048, active; Windows from
/// sector 206848 to the last MiB). Returns the sector where the last MiB begins.
pub fn sfdisk_win7_mbr(path: &Path, size: u64) -> u64 {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let end = size / 512 - 2048;
    let script = format!(
        "label: dos\nlabel-id: 0x5cbea03e\nunit: sectors\n\
         start=2048, size=204800, type=7, bootable\nstart=206848, size={}, type=7\n",
        end - 206848
    );
    sfdisk(&[], path, &script);
    end
}

/// Runs `sfdisk -q ARGS DISK` with `script` on its standard input; it must succeed.
pub fn sfdisk(args: &[&str], disk: &Path, script: &str) {
    use std::io::Write;
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .args(args)
        .arg(disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk {args:?} {disk:?}");
}

/// The first sectors of a disk's partitions, as `sfdisk --json` reads them.
pub fn sfdisk_starts(disk: &Path) -> Vec<u64> {
    let json: serde_json::Value =
        serde_json::from_slice(&run(Command::new("sfdisk").arg("--json").arg(disk))).unwrap();
    json["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["start"].as_u64().unwrap())
        .collect()
}

/// Runs qemu-img with `args`; it must succeed. Returns what it printed.
pub fn qemu_img(args: &[&str]) -> String {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The README's sample converted by qemu-img to `format` (with `-o` options `opts`, if
/// any) at `dir/name`.
pub fn sample_as(dir: &Path, name: &str, format: &str, opts: &str) -> PathBuf {
    let sample = root().join("testdata/sample/sample.vhd");
    let image = dir.join(name);
    let (sample_s, image_s) = (sample.to_string_lossy(), image.to_string_lossy());
    let mut args = vec!["convert", "-q", "-f", "vpc", "-O", format];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend([&*sample_s, &*image_s]);
    qemu_img(&args);
    image
}

/// qemu-img's name of an image's format, from its file name (raw unless the extension names
/// another).
pub fn qemu_format(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "vhd" => "vpc",
        "vhdx" => "vhdx",
        "vmdk" => "vmdk",
        "qcow2" => "qcow2",
        _ => "raw",
    }
}

/// `qemu-img compare` of two images, each read as the format its name says: identical.
pub fn assert_identical(a: &Path, b: &Path) {
    let (x, y) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = qemu_img(&["compare", "-f", qemu_format(a), "-F", qemu_format(b), x, y]);
    assert!(out.contains("Images are identical"), "{a:?} {b:?}: {out}");
}

/// Bytes the file takes on disk.
pub fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// The conversion tests' sources: the sample (VHD), Windows 7 (VHD), Server 2019 (VHDX),
/// and the sample made VMDK and qcow2 by qemu-img in `dir`.
pub fn convert_sources(dir: &Path) -> Vec<PathBuf> {
    let sample = root().join("testdata/sample/sample.vhd");
    let mut v = vec![
        sample.clone(),
        windows_image("win7"),
        windows_image("ws2019"),
    ];
    for fmt in ["vmdk", "qcow2"] {
        let out = dir.join(format!("sample.{fmt}"));
        let (from, to) = (sample.to_str().unwrap(), out.to_str().unwrap());
        qemu_img(&["convert", "-f", "vpc", "-O", fmt, from, to]);
        v.push(out);
    }
    v
}
