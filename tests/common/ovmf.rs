//! A real firmware boots an image: QEMU (q35) with OVMF starts a disk image and the stand-in
//! boot manager of `tests/uefi/standin.c` reports, on the serial port, the file path it was
//! loaded from.
//!
//! Two ways in, as a UEFI machine starts Windows:
//!
//! - [`Entry::Fallback`]: the NVRAM holds no boot entry (a new machine's empty
//!   `OVMF_VARS`), so the firmware tries each disk's removable-media path,
//!   `\EFI\Boot\bootx64.efi` on the EFI system partition.
//! - [`Entry::Bcd`]: the NVRAM holds the entry that bcdboot makes for the boot manager the
//!   BCD store's `{bootmgr}` names, `Boot0100` "Windows Boot Manager", with `BootNext`
//!   naming it. Its device path is the short form Windows writes:
//!   `HD(number, GPT, unique GUID, first LBA, sectors)/\EFI\Microsoft\Boot\bootmgfw.efi`,
//!   read from the image's own GPT. The firmware has to find the partition with that GUID,
//!   start and size on the disk, read its FAT, and load the file from that path: when any
//!   of that fails it drops the entry and falls back to the removable-media path (or the
//!   UEFI shell), and the stand-in's line says so.
//!
//! The variable is written into a copy of `OVMF_VARS` before the machine starts, in the
//! variable store format of the UEFI PI specification (volume 3, the firmware volume
//! header) and of EDK II's variable driver (a store header, then each variable's header,
//! name and data). The image itself is opened with `snapshot=on`: nothing reaches it.
//!
//! A test of a conversion puts the stand-in where the install keeps its boot manager
//! (`\Windows\Boot\EFI\bootmgfw.efi`, whose bytes rehost copies to both paths on the ESP),
//! converts, and expects `boots(&converted)` to be `[Marker::Fallback, Marker::Bcd]`.
//!
//! Acceleration: TCG, unless `REHOST_OVMF_ACCEL=kvm` (a `/dev/kvm` that exists does not
//! always run OVMF: nested hosts stop at its first FPU instruction). A boot takes 4 to 10
//! seconds under TCG. `REHOST_OVMF_TIMEOUT` (seconds, default 60) bounds each run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The line the stand-in prints, up to the path.
pub const STANDIN_LINE: &str = "REHOST-STANDIN loaded-from=";
/// Where bcdboot puts the boot manager on the ESP, and the path Windows' entry names.
pub const BOOTMGFW: &str = r"\EFI\Microsoft\Boot\bootmgfw.efi";
/// The removable-media path of an x64 machine (UEFI specification 3.5.1.1).
pub const BOOTX64: &str = r"\EFI\Boot\bootx64.efi";

/// Where Debian's ovmf package puts the firmware: code and variable templates, 4 MiB
/// flash first.
const FIRMWARE: [(&str, &str); 2] = [
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
];
/// The EFI system partition's type GUID, as stored on disk (mixed-endian).
const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
/// EFI_GLOBAL_VARIABLE 8BE4DF61-93CA-11D2-AA0D-00E098032B8C, as stored.
const GLOBAL_VARIABLE: [u8; 16] = [
    0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
];
/// The store header GUIDs: authenticated variables (gEfiAuthenticatedVariableGuid) and
/// plain ones (gEfiVariableGuid); their variable headers are 60 and 32 bytes.
const AUTHENTICATED_STORE: [u8; 16] = [
    0x78, 0x2c, 0xf3, 0xaa, 0x7b, 0x94, 0x9a, 0x43, 0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92,
];
const PLAIN_STORE: [u8; 16] = [
    0x16, 0x36, 0xcf, 0xdd, 0x75, 0x32, 0x64, 0x41, 0x98, 0xb6, 0xfe, 0x85, 0x70, 0x7f, 0xfe, 0x7d,
];
/// The boot option number the harness writes.
const OPTION: u16 = 0x0100;
/// Bytes of the image read for its GPT.
const PREFIX: u64 = 1 << 20;
/// Bytes of serial output kept.
const SERIAL_LIMIT: u64 = 1 << 20;

/// How the firmware is asked to start the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Empty NVRAM: the removable-media path, `\EFI\Boot\bootx64.efi`.
    Fallback,
    /// A `Boot####` entry naming the ESP by its GPT identity and `\EFI\Microsoft\Boot\bootmgfw.efi`.
    Bcd,
}

/// What a stand-in's line says: which copy of it the firmware started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// Loaded from `\EFI\Microsoft\Boot\bootmgfw.efi`.
    Bcd,
    /// Loaded from `\EFI\Boot\bootx64.efi`.
    Fallback,
    /// Loaded from another path (as printed).
    Elsewhere(String),
}

impl Marker {
    fn from_path(path: &str) -> Marker {
        if path.eq_ignore_ascii_case(BOOTMGFW) {
            Marker::Bcd
        } else if path.eq_ignore_ascii_case(BOOTX64) {
            Marker::Fallback
        } else {
            Marker::Elsewhere(path.to_string())
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// QEMU exited by itself (the stand-in turned the machine off), with this status.
    Exited(Option<i32>),
    /// The firmware found nothing to boot on the disk and started its UEFI shell (stopped
    /// there).
    Shell,
    /// The firmware said it found no bootable option or device (stopped there).
    NoBootOption,
    /// Nothing of the above before the time limit; QEMU was killed.
    Timeout,
}

/// One boot of an image.
#[derive(Debug, Clone)]
pub struct Run {
    /// How the firmware was asked to start it.
    pub entry: Entry,
    /// The stand-in's line, when it ran.
    pub marker: Option<Marker>,
    /// How it ended.
    pub end: End,
    /// The serial console (its first MiB), with OVMF's terminal escapes as they came.
    pub serial: String,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Whether QEMU, OVMF, qemu-img and the MinGW-w64 compiler are here. Outside CI a missing
/// one is recorded as a skip (see `have_tool`) and the caller returns; in CI it fails.
pub fn available() -> bool {
    for tool in ["qemu-system-x86_64", "qemu-img", "x86_64-w64-mingw32-gcc"] {
        if !super::have_tool(tool) {
            return false;
        }
    }
    if firmware().is_none() {
        if super::in_ci() {
            panic!("OVMF is missing in CI (/usr/share/OVMF): .ci/run must install ovmf");
        }
        eprintln!("SKIP: OVMF not installed (/usr/share/OVMF); this check did not run");
        super::record_skip("ovmf");
        return false;
    }
    true
}

/// The firmware's code and variable template, the first pair present.
fn firmware() -> Option<(PathBuf, PathBuf)> {
    FIRMWARE
        .iter()
        .map(|(c, v)| (PathBuf::from(c), PathBuf::from(v)))
        .find(|(c, v)| c.is_file() && v.is_file())
}

/// The stand-in boot manager, built once per test process from `tests/uefi/standin.c` as a
/// PE32+ EFI application (subsystem 10, entry `efi_main`, no C library).
pub fn standin() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uefi");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let out = dir.join("standin.efi");
            // A name of this process's own, renamed over: test binaries build it at once.
            let part = dir.join(format!("standin.{}.efi", std::process::id()));
            let made = Command::new("x86_64-w64-mingw32-gcc")
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-Os"])
                .args(["-ffreestanding", "-fno-stack-protector", "-fshort-wchar"])
                .args(["-mno-red-zone", "-nostdlib"])
                .args(["-Wl,--subsystem,10", "-e", "efi_main", "-o"])
                .arg(&part)
                .arg(super::root().join("tests/uefi/standin.c"))
                .output()
                .map_err(|e| format!("x86_64-w64-mingw32-gcc: {e}"))?;
            if !made.status.success() {
                return Err(format!(
                    "building the stand-in: {}",
                    String::from_utf8_lossy(&made.stderr)
                ));
            }
            std::fs::rename(&part, &out).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(out)
        })
        .clone()
}

/// Boots `image` both ways (the fallback path, then the BCD's entry) and returns the
/// marker of each run in which the stand-in ran, in that order. A converted image whose
/// ESP holds the stand-in at both paths gives `[Marker::Fallback, Marker::Bcd]`; one the
/// firmware finds nothing on gives `[]`. An error is a harness failure: QEMU or OVMF
/// missing or failing to start, an image qemu-img cannot read, no GPT or no ESP on it.
/// The caller checks [`available`] first.
pub fn boots(image: &Path) -> Result<Vec<Marker>, String> {
    let mut markers = Vec::new();
    for entry in [Entry::Fallback, Entry::Bcd] {
        markers.extend(boot(image, entry)?.marker);
    }
    Ok(markers)
}

/// Boots `image` once, asked `entry`'s way, and returns what happened. The image is read
/// in any format qemu-img names (raw, vpc, vhdx, vmdk, qcow2) and never written.
pub fn boot(image: &Path, entry: Entry) -> Result<Run, String> {
    let (code, vars_template) = firmware().ok_or("OVMF is not installed")?;
    let format = image_format(image)?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let mut vars =
        std::fs::read(&vars_template).map_err(|e| format!("{}: {e}", vars_template.display()))?;
    if entry == Entry::Bcd {
        let prefix = image_prefix(image, &format, dir.path())?;
        let esp = find_esp(&prefix).map_err(|e| format!("{}: {e}", image.display()))?;
        let option = load_option(&esp);
        add_variable(&mut vars, &format!("Boot{OPTION:04X}"), &option)
            .and_then(|()| add_variable(&mut vars, "BootNext", &OPTION.to_le_bytes()))
            .map_err(|e| format!("{}: {e}", vars_template.display()))?;
    }
    let vars_path = dir.path().join("vars.fd");
    std::fs::write(&vars_path, &vars).map_err(|e| format!("{}: {e}", vars_path.display()))?;
    run_qemu(image, &format, &code, &vars_path, dir.path(), entry)
}

/// The format qemu-img reads `image` as (`raw`, `vpc`, `vhdx`, ...).
fn image_format(image: &Path) -> Result<String, String> {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(image)
        .output()
        .map_err(|e| format!("qemu-img: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "qemu-img info {}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let info: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("qemu-img info: {e}"))?;
    info["format"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("qemu-img info {}: no format", image.display()))
}

/// The disk's first MiB (less on a smaller disk), as the guest sees it.
fn image_prefix(image: &Path, format: &str, dir: &Path) -> Result<Vec<u8>, String> {
    let path = if format == "raw" {
        image.to_path_buf()
    } else {
        let out = dir.join("prefix.raw");
        let done = Command::new("qemu-img")
            .args(["dd", "-f", format, "-O", "raw", "bs=512"])
            .arg(format!("count={}", PREFIX / 512))
            .arg(format!("if={}", image.display()))
            .arg(format!("of={}", out.display()))
            .output()
            .map_err(|e| format!("qemu-img: {e}"))?;
        if !done.status.success() {
            return Err(format!(
                "qemu-img dd {}: {}",
                image.display(),
                String::from_utf8_lossy(&done.stderr)
            ));
        }
        out
    };
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(PREFIX).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// The EFI system partition as a boot entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Esp {
    /// Its entry's number in the GPT array, from 1.
    pub number: u32,
    /// Its unique partition GUID, as stored (mixed-endian).
    pub unique_guid: [u8; 16],
    /// First LBA.
    pub first_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The first EFI system partition of the GPT in `prefix` (a disk's first bytes, 512-byte
/// sectors), every field read checked against what is there.
pub fn find_esp(prefix: &[u8]) -> Result<Esp, String> {
    if prefix.len() < 1024 || &prefix[512..520] != b"EFI PART" {
        let at_4k = prefix.len() >= 4104 && &prefix[4096..4104] == b"EFI PART";
        return Err(if at_4k {
            "a GPT of 4 KiB sectors: the harness boots 512-byte sector disks".into()
        } else {
            "no GPT header at LBA 1".into()
        });
    }
    let h = &prefix[512..1024];
    let (array_lba, count, size) = (u64_at(h, 72), u32_at(h, 80) as u64, u32_at(h, 84) as u64);
    if !(128..=4096).contains(&size) || size % 8 != 0 || count > 4096 {
        return Err(format!(
            "GPT header: {count} entries of {size} bytes is not a table"
        ));
    }
    let start = array_lba
        .checked_mul(512)
        .filter(|s| s.saturating_add(count * size) <= prefix.len() as u64)
        .ok_or_else(|| format!("GPT array at LBA {array_lba} is past the first MiB"))?;
    for i in 0..count {
        let e = &prefix[(start + i * size) as usize..(start + (i + 1) * size) as usize];
        if e[..16] == ESP_TYPE {
            let (first, last) = (u64_at(e, 32), u64_at(e, 40));
            if last < first {
                return Err(format!("ESP entry {}: last LBA before first", i + 1));
            }
            return Ok(Esp {
                number: i as u32 + 1,
                unique_guid: e[16..32].try_into().unwrap(),
                first_lba: first,
                sectors: last - first + 1,
            });
        }
    }
    Err("no EFI system partition in the GPT".into())
}

fn node(kind: u8, sub: u8, data: &[u8]) -> Vec<u8> {
    let mut n = vec![kind, sub];
    n.extend_from_slice(&(4 + data.len() as u16).to_le_bytes());
    n.extend_from_slice(data);
    n
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The EFI_LOAD_OPTION of Windows' boot entry (UEFI specification 3.1.3): active, the
/// description, and the device path `HD(...)` (media, hard drive: partition number,
/// start, size, GUID signature, GPT) / file path node / end.
pub fn load_option(esp: &Esp) -> Vec<u8> {
    let mut hd = Vec::new();
    hd.extend_from_slice(&esp.number.to_le_bytes());
    hd.extend_from_slice(&esp.first_lba.to_le_bytes());
    hd.extend_from_slice(&esp.sectors.to_le_bytes());
    hd.extend_from_slice(&esp.unique_guid);
    hd.extend_from_slice(&[0x02, 0x02]); // MBRType GPT, SignatureType GUID
    let mut path = node(4, 1, &hd);
    path.extend(node(4, 4, &utf16z(BOOTMGFW)));
    path.extend([0x7f, 0xff, 4, 0]);
    let mut option = 1u32.to_le_bytes().to_vec(); // LOAD_OPTION_ACTIVE
    option.extend_from_slice(&(path.len() as u16).to_le_bytes());
    option.extend(utf16z("Windows Boot Manager"));
    option.extend(path);
    option
}

/// Appends a non-volatile, boot- and runtime-visible EFI_GLOBAL_VARIABLE to the variable
/// store of an OVMF_VARS image, after the variables already there.
pub fn add_variable(vars: &mut [u8], name: &str, data: &[u8]) -> Result<(), String> {
    if vars.len() < 0x48 || &vars[0x28..0x2c] != b"_FVH" {
        return Err("no firmware volume header".into());
    }
    let store = u16::from_le_bytes([vars[0x30], vars[0x31]]) as usize;
    let header = vars
        .get(store..store + 28)
        .ok_or("variable store header past the end")?;
    let authenticated = match &header[..16] {
        g if g == AUTHENTICATED_STORE => true,
        g if g == PLAIN_STORE => false,
        _ => return Err("unknown variable store GUID".into()),
    };
    let end = (store + u32_at(header, 16) as usize).min(vars.len());
    let align = |n: usize| (n + 3) & !3;
    let head = if authenticated { 60 } else { 32 };
    let mut at = align(store + 28);
    // Past the variables already there (each a header with StartId 0x55AA).
    while at + head <= end && vars[at..at + 2] == [0xaa, 0x55] {
        let (n, d) = (head - 24, head - 20);
        let sizes = u32_at(vars, at + n) as usize + u32_at(vars, at + d) as usize;
        at = align(at + head + sizes);
    }
    let name = utf16z(name);
    let mut v = vec![0xaa, 0x55, 0x3f, 0]; // StartId, State VAR_ADDED, Reserved
    v.extend_from_slice(&7u32.to_le_bytes()); // NON_VOLATILE | BOOTSERVICE | RUNTIME
    if authenticated {
        v.extend_from_slice(&[0; 8 + 16 + 4]); // MonotonicCount, TimeStamp, PubKeyIndex
    }
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&GLOBAL_VARIABLE);
    v.extend(name);
    v.extend_from_slice(data);
    let room = vars
        .get_mut(at..at + v.len())
        .filter(|_| at + v.len() <= end);
    match room {
        Some(room) if room.iter().all(|&b| b == 0xff) => {
            room.copy_from_slice(&v);
            Ok(())
        }
        _ => Err(format!("no free room for a variable at offset {at:#x}")),
    }
}

fn timeout() -> Duration {
    let secs = std::env::var("REHOST_OVMF_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

fn read_serial(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(SERIAL_LIMIT).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn marker_in(serial: &str) -> Option<Marker> {
    let at = serial.find(STANDIN_LINE)? + STANDIN_LINE.len();
    let rest = &serial[at..];
    let end = rest.find(['\r', '\n'])?;
    Some(Marker::from_path(&rest[..end]))
}

/// Whether the firmware gave up on the disk's entries and started its UEFI shell (OVMF's
/// boot manager names each option it starts; the shell's prompt, should the line be lost).
fn shell_started(serial: &str) -> bool {
    serial
        .lines()
        .any(|l| l.contains("BdsDxe: starting") && l.contains("\"EFI Internal Shell\""))
        || serial.contains("Shell> ")
}

fn run_qemu(
    image: &Path,
    format: &str,
    code: &Path,
    vars: &Path,
    dir: &Path,
    entry: Entry,
) -> Result<Run, String> {
    let serial = dir.join("serial.txt");
    let stderr = dir.join("qemu.stderr");
    let accel = match std::env::var("REHOST_OVMF_ACCEL") {
        Ok(a) if a == "kvm" => "kvm",
        _ => "tcg",
    };
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-accel", accel, "-m", "256"])
        .args([
            "-display",
            "none",
            "-vga",
            "none",
            "-nodefaults",
            "-no-reboot",
        ])
        .args(["-monitor", "none", "-serial"])
        .arg(format!("file:{}", serial.display()))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,readonly=on,file={}",
            code.display()
        ))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.display()))
        .arg("-drive")
        .arg(format!(
            "file={},format={format},if=none,id=disk,snapshot=on",
            image.display().to_string().replace(',', ",,")
        ))
        .args(["-device", "ide-hd,drive=disk,bus=ide.0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).map_err(|e| format!("{e}"))?);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let limit = timeout();
    let end = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("qemu: {e}"))? {
            break End::Exited(status.code());
        }
        let text = read_serial(&serial);
        let stop = if marker_in(&text).is_some() {
            None // the stand-in turns the machine off itself
        } else if shell_started(&text) {
            Some(End::Shell)
        } else if text.contains("No bootable option") {
            Some(End::NoBootOption)
        } else if started.elapsed() > limit {
            Some(End::Timeout)
        } else {
            None
        };
        if let Some(end) = stop {
            let _ = child.kill();
            let _ = child.wait();
            break end;
        }
        if started.elapsed() > limit + Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break End::Timeout;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = read_serial(&serial);
    if let End::Exited(code) = end {
        if code != Some(0) && marker_in(&text).is_none() {
            return Err(format!(
                "qemu-system-x86_64 exited with {code:?}: {}",
                read_serial(&stderr)
            ));
        }
    }
    Ok(Run {
        entry,
        marker: marker_in(&text),
        end,
        serial: text,
        elapsed: started.elapsed(),
    })
}
