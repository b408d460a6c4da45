//! `boot-config`: does the boot configuration the firmware finds start this install? On a
//! BIOS boot the active partition must hold boot.ini with ntldr (NT 5.x) or `\Boot\BCD` with
//! bootmgr; on a UEFI boot the EFI system partition holds `\EFI\Microsoft\Boot\BCD`,
//! bootmgfw.efi and the fallback loader a new machine starts. The entry must name this
//! disk's partitions, and its loader (winload.exe or .efi) must match the firmware.
//! The fix, in [`fix`], repairs what it can of that.

mod boot_files;
mod fix;
pub(crate) mod rebuild;
mod rebuild_nt5;
pub use fix::fix;

use super::finding::{Evidence, Finding};
use super::firmware::natural;
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;
use rehost_volume::ESP_TYPE;
use rehost_windows::report::{BootEntry, BootStore};

const ID: &str = "boot-config";

/// The evidence data of a `not-active` finding that names the volume its fix makes active.
const TO_BE_ACTIVE: &str = "to be made active";

/// The head counts Windows 2000 / XP boot code accepts on any geometry.
const GOOD_HEADS: [u16; 3] = [0x40, 0x80, 0xFF];

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let nt5 = s.version.is_some_and(|v| v.nt5())
        || (s.version.is_none()
            && s.install
                .hal
                .file_version
                .as_deref()
                .is_some_and(|v| v.starts_with("5.")));
    match natural(s.image.partitioning) {
        Some("bios") => bios(s, nt5, out),
        Some("uefi") => uefi(s, out),
        _ => {}
    }
    if nt5 && s.version.is_some_and(|v| v.minor <= 1) {
        heads(s, out)?;
    }
    Ok(())
}

fn missing(volume: u32, path: &str, what: &str) -> Finding {
    Finding::new(
        ID,
        "loader-missing",
        format!("{what} is missing: {path} on volume {volume}"),
    )
    .with(Evidence::file(volume, path, "missing"))
}

/// The partition the fix makes active when none is: a primary one that holds the boot
/// files already (a System Reserved partition that lost its flag), else the install's own
/// volume when it is a primary partition (the boot files are then rebuilt there).
fn system_candidate(s: &Subject, kind: &str, path: &str) -> Option<u32> {
    let primary = |index: u32| {
        s.scene
            .volume(index)
            .is_some_and(|v| !v.logical && (1..=4).contains(&v.index))
    };
    let holds = s
        .image
        .boot_stores
        .iter()
        .filter(|b| b.kind == kind && b.path.eq_ignore_ascii_case(path) && primary(b.volume))
        .map(|b| b.volume)
        .find(|v| kind == "boot.ini" || s.scene.is_file(*v, "bootmgr"));
    holds.or(Some(s.install.volume).filter(|v| primary(*v)))
}

fn bios(s: &Subject, nt5: bool, out: &mut Out) {
    let (kind, path) = if nt5 {
        ("boot.ini", "boot.ini")
    } else {
        ("bcd", "Boot/BCD")
    };
    let a = match s.scene.layout.volumes.iter().find(|v| v.bootable) {
        Some(active) => active.index,
        None => {
            // The fix makes a partition active; the rest is checked as it will be then, so
            // that the check shows every error the fix will meet.
            let to = system_candidate(s, kind, path);
            let mut f = Finding::new(
                ID,
                "not-active",
                match to {
                    Some(v) => format!(
                        "no partition of the MBR disk is marked active (the fix makes volume \
                         {v} active)"
                    ),
                    None => "no partition of the MBR disk is marked active".to_string(),
                },
            )
            .with(Evidence::fact("no active partition"));
            if let Some(v) = to {
                f = f.with(Evidence {
                    volume: Some(v),
                    data: Some(TO_BE_ACTIVE.into()),
                    ..Default::default()
                });
            }
            out.findings.push(f);
            match to {
                Some(v) => v,
                None => return,
            }
        }
    };
    let store = s
        .image
        .boot_stores
        .iter()
        .find(|b| b.kind == kind && b.volume == a && b.path.eq_ignore_ascii_case(path));
    let Some(store) = store else {
        let no_bootmgr = !nt5 && !s.scene.is_file(a, "bootmgr");
        let message = if no_bootmgr {
            let source = format!(
                "{}\\Boot\\PCAT",
                s.install.system_root.trim_end_matches('\\')
            );
            let how = if s.is_file(&format!("{source}\\bootmgr")) {
                format!("fix rebuilds them from the install's own {source}, as bcdboot does")
            } else {
                format!("the install's {source} holds no bootmgr to rebuild them from")
            };
            format!(
                "volume {a}, the partition the BIOS starts, holds neither bootmgr nor \\Boot\\BCD \
                 (a System Reserved partition left behind?): {how}"
            )
        } else if nt5 {
            let lacks: Vec<String> = rebuild_nt5::loader_files()
                .into_iter()
                .filter_map(|l| rebuild_nt5::source(s, l).err())
                .collect();
            if lacks.is_empty() {
                format!(
                    "the active partition (volume {a}) holds no {path}: fix rebuilds it, ntldr \
                     and NTDETECT.COM from the install's own copies"
                )
            } else {
                format!(
                    "the active partition (volume {a}) holds no {path}, and the install keeps \
                     no copy of its loader files to rebuild them from (none of {})",
                    lacks.join("; ")
                )
            }
        } else {
            format!(
                "the active partition (volume {a}) holds no {path}: fix writes a new store \
                 for the install, as bcdboot does"
            )
        };
        let mut f = Finding::new(ID, "no-store", message).with(Evidence::file(a, path, "missing"));
        if no_bootmgr {
            f = f.with(Evidence::file(a, "bootmgr", "missing"));
        }
        out.findings.push(f);
        return;
    };
    if nt5 {
        for f in ["ntldr", "NTDETECT.COM"] {
            if !s.scene.is_file(a, f) {
                out.findings.push(missing(a, f, f));
            }
        }
    } else {
        if !s.scene.is_file(a, "bootmgr") {
            out.findings.push(missing(a, "bootmgr", "the boot manager"));
        }
        bootmgr_device(store, out);
    }
    entries(s, store, if nt5 { None } else { Some("winload.exe") }, out);
}

fn uefi(s: &Subject, out: &mut Out) {
    let esp = s
        .scene
        .layout
        .volumes
        .iter()
        .find(|v| v.part_type.eq_ignore_ascii_case(ESP_TYPE));
    let Some(esp) = esp else {
        out.findings.push(
            Finding::new(ID, "no-store", "the GPT disk has no EFI system partition")
                .with(Evidence::fact(format!("no partition of type {ESP_TYPE}"))),
        );
        return;
    };
    let e = esp.index;
    let path = "EFI/Microsoft/Boot/BCD";
    let store = s
        .image
        .boot_stores
        .iter()
        .find(|b| b.kind == "bcd" && b.volume == e && b.path.eq_ignore_ascii_case(path));
    let Some(store) = store else {
        let source = format!(
            "{}\\Boot\\EFI",
            s.install.system_root.trim_end_matches('\\')
        );
        let how = if s.is_file(&format!("{source}\\bootmgfw.efi")) {
            format!("fix rebuilds the boot files from the install's own {source}, as bcdboot does")
        } else {
            format!("the install's {source} holds no bootmgfw.efi to rebuild them from")
        };
        out.findings.push(
            Finding::new(
                ID,
                "no-store",
                format!("the EFI system partition (volume {e}) holds no {path}: {how}"),
            )
            .with(Evidence::file(e, path, "missing")),
        );
        return;
    };
    let bootmgfw = "EFI/Microsoft/Boot/bootmgfw.efi";
    if !s.scene.is_file(e, bootmgfw) {
        out.findings.push(missing(e, bootmgfw, "the boot manager"));
    }
    let fallback = match s.install.arch.as_deref() {
        Some("arm64") => "EFI/Boot/bootaa64.efi",
        _ => "EFI/Boot/bootx64.efi",
    };
    if !s.scene.is_file(e, fallback) {
        out.findings.push(
            Finding::new(
                ID,
                "no-fallback",
                format!(
                    "the EFI system partition has no {fallback}: a new machine has no boot \
                     entry for Windows in its NVRAM and starts that file"
                ),
            )
            .with(Evidence::file(e, fallback, "missing")),
        );
    }
    bootmgr_device(store, out);
    entries(s, store, Some("winload.efi"), out);
}

fn bcd_evidence(store: &BootStore, object: &str, element: &str, data: String) -> Evidence {
    Evidence {
        hive: Some("BCD".into()),
        key: Some(format!("Objects\\{object}\\Elements\\{element}")),
        value: Some("Element".into()),
        data: Some(data),
        file: Some(store.path.clone()),
        volume: Some(store.volume),
        offset: None,
    }
}

fn bootmgr_device(store: &BootStore, out: &mut Out) {
    if let Some(d) = &store.bootmgr_device {
        if d.volume.is_none() {
            out.findings.push(
                Finding::new(
                    ID,
                    "bcd-device",
                    format!(
                        "the boot manager's device is {}, not a partition of this disk",
                        d.device
                    ),
                )
                .with(bcd_evidence(
                    store,
                    rehost_formats::bcd::BOOTMGR,
                    "11000001",
                    d.device.clone(),
                )),
            );
        }
    }
}

/// Whether an entry's OS device lies on this disk (its partition, or the partition
/// holding its RAM disk's image).
fn on_this_disk(e: &BootEntry) -> bool {
    e.os_device.as_ref().and_then(|d| d.on_volume).is_some()
}

/// An entry's OS device, in words.
fn device_name(e: &BootEntry) -> String {
    e.os_device
        .as_ref()
        .map(|d| d.device.clone())
        .unwrap_or_else(|| "no device".into())
}

fn same_root(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| {
        a.trim_end_matches('\\')
            .eq_ignore_ascii_case(b.trim_end_matches('\\'))
    })
}

fn entries(s: &Subject, store: &BootStore, loader: Option<&str>, out: &mut Out) {
    let i = s.install;
    let mine: Vec<&BootEntry> = store
        .entries
        .iter()
        .filter(|e| same_root(e.system_root.as_deref(), &i.system_root))
        .collect();
    let here: Vec<&BootEntry> = mine
        .iter()
        .copied()
        .filter(|e| e.os_device.as_ref().and_then(|d| d.volume) == Some(i.volume))
        .collect();
    // Entries other than the default one that name a partition not on this disk: a
    // warning in every check, before a fix and after it (the default entry decides whether
    // the install boots).
    let has_default = mine.iter().any(|e| e.default);
    if store.kind != "boot.ini" && has_default {
        for e in mine.iter().filter(|e| !e.default && !on_this_disk(e)) {
            let device = device_name(e);
            out.findings.push(
                Finding::new(
                    ID,
                    "other-entry",
                    format!(
                        "BCD entry {} ({}) starts {} from {device}, which is not on this disk: \
                         that entry will not start",
                        e.id, e.description, i.system_root
                    ),
                )
                .with(bcd_evidence(store, &e.id, "21000001", device)),
            );
        }
    }
    if here.is_empty() {
        if mine.is_empty() {
            out.findings.push(
                Finding::new(
                    ID,
                    "no-entry",
                    format!(
                        "no entry of {} on volume {} starts {}",
                        store.path, store.volume, i.system_root
                    ),
                )
                .with(Evidence::file(
                    store.volume,
                    &store.path,
                    "no entry for this install",
                )),
            );
        }
        let others_warned = store.kind != "boot.ini" && has_default;
        for e in mine.iter().filter(|e| !others_warned || e.default) {
            let device = device_name(e);
            let f = if store.kind == "boot.ini" {
                Finding::new(
                    ID,
                    "bootini-arc",
                    format!(
                        "boot.ini entry {} names {device}, which is not the install's volume {}",
                        e.id, i.volume
                    ),
                )
                .with(Evidence::file(store.volume, &store.path, e.id.clone()))
            } else {
                Finding::new(
                    ID,
                    "bcd-device",
                    format!(
                        "BCD entry {} ({}) starts {} from {device}, not from this disk's volume {}",
                        e.id, e.description, i.system_root, i.volume
                    ),
                )
                .with(bcd_evidence(store, &e.id, "21000001", device))
            };
            out.findings.push(f);
        }
        if store.kind == "boot.ini" {
            return;
        }
    }
    // While no entry names this disk's volume, the fix will make the entries that start this
    // install name it: what they load is checked as it will be then, so that the check shows
    // every error the fix will meet.
    let here = if here.is_empty() { mine.clone() } else { here };
    if here.is_empty() {
        return;
    }
    if !here.iter().any(|e| e.default) {
        out.findings.push(
            Finding::new(
                ID,
                "not-default",
                format!(
                    "entry {} of {} starts this install, but it is not the default entry",
                    here[0].id, store.path
                ),
            )
            .with(Evidence::file(
                store.volume,
                &store.path,
                here[0].id.clone(),
            )),
        );
    }
    let Some(loader) = loader else {
        return;
    };
    let e = here.iter().find(|e| e.default).unwrap_or(&here[0]);
    other_loaders(store, &mine, &e.id, loader, out);
    if let Some(d) = &e.device {
        if d.volume != Some(i.volume) {
            out.findings.push(
                Finding::new(
                    ID,
                    "bcd-device",
                    format!(
                        "BCD entry {} loads winload from {}, not from the install's volume {}",
                        e.id, d.device, i.volume
                    ),
                )
                .with(bcd_evidence(store, &e.id, "11000001", d.device.clone())),
            );
        }
    }
    let Some(path) = &e.path else {
        return;
    };
    let file = path.rsplit(['\\', '/']).next().unwrap_or(path);
    let ext = |x: &str| x.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    if ext(file) != ext(loader) {
        out.findings.push(
            Finding::new(
                ID,
                "winload-firmware",
                format!(
                    "BCD entry {} loads {file}, but this disk starts by {} and needs {loader}",
                    e.id,
                    if loader.ends_with(".efi") {
                        "UEFI"
                    } else {
                        "BIOS"
                    }
                ),
            )
            .with(bcd_evidence(store, &e.id, "12000002", path.clone())),
        );
    } else if !s.is_file(path) {
        out.findings
            .push(missing(i.volume, path, "the Windows loader"));
    }
}

/// The other applications of the store that start this install (another OS loader entry,
/// WinRE's, the resume loader) follow the disk's firmware too: a warning, since the
/// default entry decides whether the install boots.
fn other_loaders(
    store: &BootStore,
    mine: &[&BootEntry],
    default: &str,
    loader: &str,
    out: &mut Out,
) {
    let ext = |x: &str| x.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let want = if ext(loader) == "efi" { "efi" } else { "exe" };
    let others = mine
        .iter()
        .copied()
        .filter(|x| x.id != default)
        .map(|x| (x, "entry"))
        .chain(store.resume.iter().map(|x| (x, "resume loader")));
    for (x, what) in others {
        let Some(path) = &x.path else {
            continue;
        };
        let file = path.rsplit(['\\', '/']).next().unwrap_or(path);
        if !matches!(ext(file).as_str(), "efi" | "exe") || ext(file) == want {
            continue;
        }
        out.findings.push(
            Finding::new(
                ID,
                "other-loader",
                format!(
                    "BCD {what} {} ({}) loads {file}, but this disk starts by {}: it needs \
                     the .{want} one{}",
                    x.id,
                    x.description,
                    if want == "efi" { "UEFI" } else { "BIOS" },
                    if what == "resume loader" {
                        " (resuming from hibernation fails)"
                    } else {
                        " (that entry will not start)"
                    }
                ),
            )
            .with(bcd_evidence(store, &x.id, "12000002", path.clone())),
        );
    }
}

/// Windows 2000 / XP: the NTFS boot sector's head count.
fn heads(s: &Subject, out: &mut Out) -> Result<()> {
    let Some(v) = s.scene.volume(s.install.volume) else {
        return Ok(());
    };
    let mut sector = [0u8; 512];
    s.disk.read_at(v.offset, &mut sector)?;
    let heads = u16::from_le_bytes([sector[0x1A], sector[0x1B]]);
    if !GOOD_HEADS.contains(&heads) {
        out.findings.push(
            Finding::new(
                ID,
                "ntfs-heads",
                format!(
                    "the boot sector of volume {} says {heads} heads; Windows 2000 / XP boot code \
                     fails with \"A disk read error occurred\" on a disk whose geometry differs",
                    v.index
                ),
            )
            .with(Evidence {
                offset: Some(v.offset + 0x1A),
                volume: Some(v.index),
                data: Some(format!("{heads:#x}")),
                ..Default::default()
            }),
        );
    }
    Ok(())
}
