//! The fix of `boot-config`: the boot.ini entry's ARC path, the BCD's device elements and
//! loader path, the NTFS boot sector's head count (Windows 2000 / XP) and the UEFI
//! fallback loader, each from the findings of its case; the active flag and the boot files
//! missing or rebuilt in [`missing`].

mod missing;

use super::ID;
use crate::finding::Finding;
use crate::fix::{reg, Change, FixOptions, Plan};
use crate::subject::Subject;
use crate::target::Target;
use missing::{loader_missing, no_entry, no_store, not_active, rebuild_store, STORE_CASES};
use rehost_core::error::{Layer, Result};
use rehost_formats::bcd::{self, Device, PartitionRef, RawElement, BOOTMGR};
use rehost_formats::bootini::{self, edit::Edit};
use rehost_regf::hive::Hive;
use rehost_regf::regtext::Op;
use rehost_regf::Log;
use rehost_windows::install;
use rehost_windows::registry::Mounts;
use rehost_windows::report::{describe, BootStore};
use serde::Deserialize;
use std::sync::OnceLock;

/// The boot manager every UEFI fallback loader is a copy of.
const BOOTMGFW: &str = "EFI/Microsoft/Boot/bootmgfw.efi";
/// ApplicationDevice and OSDevice.
const DEVICE: u32 = 0x1100_0001;
const OS_DEVICE: u32 = 0x2100_0001;

#[derive(Deserialize)]
struct HeadsRow {
    below: Option<u64>,
    heads: u16,
}

#[derive(Deserialize)]
struct BootData {
    ntfs_heads: Vec<HeadsRow>,
}

fn data() -> &'static BootData {
    static D: OnceLock<BootData> = OnceLock::new();
    D.get_or_init(|| {
        toml::from_str(include_str!("../../../../profiles/boot.toml"))
            .expect("profiles/boot.toml parses (a unit test checks it)")
    })
}

/// The NTFS head count for a boot disk of `size` bytes (profiles/boot.toml).
fn heads_for(size: u64) -> u16 {
    data()
        .ntfs_heads
        .iter()
        .find(|r| r.below.is_none_or(|b| size < b))
        .map(|r| r.heads)
        .unwrap_or(0xFF)
}

/// The fix.
pub fn fix(
    s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let of = |case: &str| -> Vec<&Finding> {
        findings
            .iter()
            .filter(|f| f.case == case)
            .copied()
            .collect()
    };
    not_active(s, &of("not-active"), plan);
    no_store(s, &of("no-store"), plan)?;
    let store_cases: Vec<&Finding> = STORE_CASES.iter().flat_map(|c| of(c)).collect();
    if o.rebuild_boot && !s.nt5() && !store_cases.is_empty() {
        rebuild_store(s, &store_cases, plan)?;
    } else {
        bootini_arc(s, &of("bootini-arc"), plan);
        let mut loaders = of("winload-firmware");
        loaders.extend(of("other-loader"));
        bcd_store(s, &of("bcd-device"), &loaders, plan)?;
        loader_missing(s, &of("loader-missing"), plan);
        no_entry(&of("no-entry"), plan);
        fallback(s, &of("no-fallback"), plan);
    }
    ntfs_heads(s, &of("ntfs-heads"), plan)?;
    Ok(())
}

/// boot.ini: each entry for this install that names another partition is rewritten to
/// `multi(0)disk(0)rdisk(0)partition(N)`, N the install volume's ARC number (`multi`: the
/// BIOS disk the machine boots, which is this one; a `scsi()` or `signature()` path would
/// need the old controller's ntbootdd.sys).
fn bootini_arc(s: &Subject, findings: &[&Finding], plan: &mut Plan) {
    let i = s.install;
    let mut done: Vec<String> = Vec::new();
    for e in findings.iter().flat_map(|f| &f.evidence) {
        let (Some(volume), Some(path), Some(from)) = (e.volume, &e.file, &e.data) else {
            continue;
        };
        if done.iter().any(|d| d.eq_ignore_ascii_case(from)) {
            continue;
        }
        done.push(from.clone());
        let Some(arc) = bootini::parse_arc(from) else {
            plan.cannot(ID, format!("boot.ini entry {from} is not an ARC path"));
            continue;
        };
        let Some(n) = s.scene.volume(i.volume).and_then(|v| v.arc_partition) else {
            plan.cannot(
                ID,
                format!("volume {} has no ARC partition number", i.volume),
            );
            continue;
        };
        let to = format!("multi(0)disk(0)rdisk(0)partition({n}){}", arc.path);
        plan.add(
            ID,
            format!(
                "boot.ini entry {from} names partition({}); the install is on partition({n})",
                arc.partition
            ),
            Change::BootIni {
                volume,
                path: path.clone(),
                edit: Edit::RewriteArc {
                    from: from.clone(),
                    to,
                },
            },
        );
    }
}

/// `Objects\{id}\Elements\<code>` of a finding's evidence.
fn element_of(key: &str) -> Option<(String, u32)> {
    let rest = key.strip_prefix("Objects\\")?;
    let mut parts = rest.split('\\');
    let (object, elements, code) = (parts.next()?, parts.next()?, parts.next()?);
    if !elements.eq_ignore_ascii_case("Elements") {
        return None;
    }
    Some((object.to_lowercase(), u32::from_str_radix(code, 16).ok()?))
}

/// The BCD store the findings name, read with its logs replayed.
fn read_store<'a>(s: &'a Subject, findings: &[&Finding]) -> Result<Option<(&'a BootStore, Hive)>> {
    let place = findings
        .iter()
        .flat_map(|f| &f.evidence)
        .find_map(|e| Some((e.volume?, e.file.clone()?)));
    let Some((volume, path)) = place else {
        return Ok(None);
    };
    let Some(store) = s
        .image
        .boot_stores
        .iter()
        .find(|b| b.kind == "bcd" && b.volume == volume && b.path.eq_ignore_ascii_case(&path))
    else {
        return Ok(None);
    };
    let (dir, file) = store.path.rsplit_once('/').unwrap_or(("", &store.path));
    let ctx = s.scene.ctx.with_layer(Layer::Bcd);
    let Some((_, primary, logs)) = install::read_hive_files(s.scene, volume, dir, file) else {
        return Ok(None);
    };
    let logs: Vec<Log> = logs
        .iter()
        .map(|(name, bytes)| Log { name, bytes })
        .collect();
    let hive = Hive::parse_with_logs(primary?, &logs, ctx)?;
    Ok(Some((store, hive)))
}

fn element_key(e: &RawElement) -> String {
    let mount = Mounts::builtin()
        .for_file("BCD")
        .map(|m| m.mount.clone())
        .unwrap_or_else(|| "HKEY_LOCAL_MACHINE\\BCD00000000".into());
    format!("{mount}\\Objects\\{}\\Elements\\{}", e.object, e.element)
}

/// The BCD: device elements and loader paths.
fn bcd_store(
    s: &Subject,
    devices: &[&Finding],
    loaders: &[&Finding],
    plan: &mut Plan,
) -> Result<()> {
    let all: Vec<&Finding> = devices.iter().chain(loaders).copied().collect();
    if all.is_empty() {
        return Ok(());
    }
    let Some((store, hive)) = read_store(s, &all)? else {
        plan.cannot(ID, "the BCD store the findings name could not be read");
        return Ok(());
    };
    let elements = bcd::binary_elements(&hive)?;
    if !devices.is_empty() {
        bcd_devices(s, store, &elements, devices, plan);
    }
    if !loaders.is_empty() {
        bcd_loaders(s, store, &hive, loaders, plan)?;
    }
    Ok(())
}

/// A device element and the volume it must name: the store's for the boot manager, the
/// install's for its loaders (their device and their OS device).
struct Role {
    object: String,
    code: u32,
    volume: u32,
}

/// Old partition identities and the volume each now is (`None`: two roles disagree, so
/// only the elements with a role are rewritten).
type Moves = Vec<(PartitionRef, Option<u32>)>;

fn bcd_devices(
    s: &Subject,
    store: &BootStore,
    elements: &[RawElement],
    findings: &[&Finding],
    plan: &mut Plan,
) {
    let mut roles: Vec<Role> = Vec::new();
    for key in findings
        .iter()
        .flat_map(|f| &f.evidence)
        .filter_map(|e| e.key.as_deref())
    {
        let Some((object, _)) = element_of(key) else {
            continue;
        };
        let (codes, volume): (&[u32], u32) = if object == BOOTMGR {
            (&[DEVICE], store.volume)
        } else {
            (&[DEVICE, OS_DEVICE], s.install.volume)
        };
        for &code in codes {
            if !roles.iter().any(|r| r.object == object && r.code == code) {
                roles.push(Role {
                    object: object.clone(),
                    code,
                    volume,
                });
            }
        }
    }
    let role_of = |e: &RawElement| {
        roles
            .iter()
            .find(|r| r.code == e.code && r.object.eq_ignore_ascii_case(&e.object))
    };
    // What each role's old partition now is.
    let mut moves: Moves = Vec::new();
    for e in elements {
        let Some(r) = role_of(e) else { continue };
        match bcd::device(&e.bytes) {
            Device::Partition { partition } => {
                if s.scene.resolve(&partition).is_some() {
                    continue;
                }
                match moves.iter_mut().find(|(p, _)| *p == partition) {
                    Some((_, v)) if *v != Some(r.volume) => *v = None,
                    Some(_) => {}
                    None => moves.push((partition, Some(r.volume))),
                }
            }
            // Rewritten below when the partition holding its image moved.
            Device::Ramdisk { .. } => {}
            Device::Boot if store.volume == r.volume => {}
            Device::Boot => plan.cannot(
                ID,
                format!(
                    "BCD {} element {} names the boot device, not volume {}: left as it is",
                    e.object, e.element, r.volume
                ),
            ),
            Device::Other { device_type } => plan.cannot(
                ID,
                format!(
                    "BCD {} element {} is a device of type {device_type}, not a partition: \
                     left as it is",
                    e.object, e.element
                ),
            ),
        }
    }
    let mut ops = Vec::new();
    let mut what = Vec::new();
    for e in elements {
        let mut b = e.bytes.clone();
        let own = role_of(e).filter(|_| matches!(bcd::device(&b), Device::Partition { .. }));
        for (at, old) in bcd::partitions(&e.bytes) {
            let to = match own {
                Some(r) if at == 0x10 => Some(r.volume),
                _ => moves.iter().find(|(p, _)| *p == old).and_then(|(_, v)| *v),
            };
            let Some(v) = to.filter(|v| s.scene.resolve(&old) != Some(*v)) else {
                continue;
            };
            let Some(new) = s.scene.identity(v) else {
                plan.cannot(ID, format!("volume {v} has no identity a BCD can name"));
                continue;
            };
            if bcd::set_partition(&mut b, at, &new).is_some() {
                what.push(format!("{}\\{} -> volume {v}", e.object, e.element));
            }
        }
        if b != e.bytes {
            ops.push(Op::Key(element_key(e)));
            ops.push(reg::set("Element", 3, b.clone()));
        }
        // What still names no partition of this disk, in the objects the findings name.
        if roles
            .iter()
            .any(|r| r.object.eq_ignore_ascii_case(&e.object))
        {
            for (_, p) in bcd::partitions(&b) {
                if s.scene.resolve(&p).is_none() {
                    plan.cannot(
                        ID,
                        format!(
                            "BCD {} element {} names {}, which is not on this disk and no \
                             other element says what it now is: left as it is",
                            e.object,
                            e.element,
                            describe(&p)
                        ),
                    );
                }
            }
        }
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!(
                "name this disk's partitions in the BCD: {}",
                what.join("; ")
            ),
            Change::Registry {
                hive: "BCD".into(),
                store: Some(store.volume),
                ops,
            },
        );
    }
}

/// `winload.exe` <-> `winload.efi`, keeping the rest of the path as written.
fn swap_loader(path: &str) -> Option<String> {
    let (stem, ext) = path.rsplit_once('.')?;
    let ext = match ext.to_ascii_lowercase().as_str() {
        "exe" => "efi",
        "efi" => "exe",
        _ => return None,
    };
    Some(format!("{stem}.{ext}"))
}

fn bcd_loaders(
    s: &Subject,
    store: &BootStore,
    hive: &Hive,
    findings: &[&Finding],
    plan: &mut Plan,
) -> Result<()> {
    let stored = hive.subkeys("Objects")?;
    let mut ops = Vec::new();
    let mut what = Vec::new();
    for e in findings.iter().flat_map(|f| &f.evidence) {
        let (Some(key), Some(path)) = (&e.key, &e.data) else {
            continue;
        };
        let Some((object, code)) = element_of(key) else {
            continue;
        };
        let Some(new) = swap_loader(path) else {
            plan.cannot(
                ID,
                format!("BCD {object}: {path} is not winload.exe or .efi"),
            );
            continue;
        };
        if !s.is_file(&new) {
            plan.cannot(
                ID,
                format!(
                    "BCD {object} loads {path}; the install's volume has no {new} to load \
                     instead (an entry on a RAM disk loads from inside its image, which rehost \
                     does not read): `bcdedit /set {object} path {new}` on the running system"
                ),
            );
            continue;
        }
        let name = stored
            .iter()
            .find(|o| o.eq_ignore_ascii_case(&object))
            .cloned()
            .unwrap_or(object);
        let raw = RawElement {
            object: name.clone(),
            element: format!("{code:08x}"),
            code,
            bytes: Vec::new(),
        };
        ops.push(Op::Key(element_key(&raw)));
        ops.push(reg::set("Element", 1, reg::sz(&new)));
        what.push(format!("{name}: {path} -> {new}"));
    }
    if !ops.is_empty() {
        plan.add(
            ID,
            format!(
                "load the Windows loader this disk's firmware starts: {}",
                what.join("; ")
            ),
            Change::Registry {
                hive: "BCD".into(),
                store: Some(store.volume),
                ops,
            },
        );
    }
    Ok(())
}

/// Windows 2000 / XP: the head count in the NTFS boot sector and in its backup (at the
/// sector the boot sector's total sector count names, the volume's last but for a
/// partition of odd length), as the disk's size wants it.
fn ntfs_heads(s: &Subject, findings: &[&Finding], plan: &mut Plan) -> Result<()> {
    let heads = heads_for(s.image.virtual_size);
    let mut done: Vec<u32> = Vec::new();
    for index in findings
        .iter()
        .flat_map(|f| &f.evidence)
        .filter_map(|e| e.volume)
    {
        let Some(v) = s.scene.volume(index).filter(|_| !done.contains(&index)) else {
            continue;
        };
        done.push(index);
        let mut boot = [0u8; 512];
        s.disk.read_at(v.offset, &mut boot)?;
        let bps = u16::from_le_bytes([boot[0x0B], boot[0x0C]]) as u64;
        let total = u64::from_le_bytes(boot[0x28..0x30].try_into().unwrap_or_default());
        let mut at = vec![v.offset];
        let backup = total
            .checked_mul(bps)
            .filter(|b| bps >= 512 && b.checked_add(bps).is_some_and(|e| e <= v.size));
        let mut why = format!(
            "{heads} heads in volume {index}'s NTFS boot sector, as a disk of {} bytes wants",
            s.image.virtual_size
        );
        match backup {
            Some(b) => {
                let mut sector = [0u8; 512];
                s.disk.read_at(v.offset + b, &mut sector)?;
                if &sector[3..11] == b"NTFS    " {
                    at.push(v.offset + b);
                    why.push_str(" (and in its backup)");
                } else {
                    why.push_str(" (the sector its backup belongs in holds none)");
                }
            }
            None => why.push_str(" (its total sector count names no backup inside it)"),
        }
        for (n, offset) in at.into_iter().enumerate() {
            plan.add(
                ID,
                why.clone(),
                Change::Bytes {
                    offset: offset + 0x1A,
                    bytes: heads.to_le_bytes().to_vec(),
                    what: format!(
                        "heads of volume {index}'s {}",
                        if n == 0 {
                            "boot sector"
                        } else {
                            "backup boot sector"
                        }
                    ),
                },
            );
        }
    }
    Ok(())
}

/// UEFI: the fallback loader a machine with no boot entry starts, a copy of bootmgfw.efi.
fn fallback(s: &Subject, findings: &[&Finding], plan: &mut Plan) {
    for e in findings.iter().flat_map(|f| &f.evidence) {
        let (Some(volume), Some(path)) = (e.volume, &e.file) else {
            continue;
        };
        match s.scene.read(volume, BOOTMGFW) {
            Ok(bytes) => plan.add(
                ID,
                format!("copy {BOOTMGFW} to {path}, the loader a new machine starts"),
                Change::Put {
                    volume,
                    path: path.clone(),
                    bytes,
                },
            ),
            Err(err) => plan.cannot(ID, format!("no {BOOTMGFW} to copy to {path}: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heads_table_parses_and_follows_the_disk_size() {
        assert_eq!(heads_for(64 << 20), 0x40);
        assert_eq!(heads_for(2_114_445_311), 0x40);
        assert_eq!(heads_for(2_114_445_312), 0x80);
        assert_eq!(heads_for(4_228_374_780), 0xFF);
        assert_eq!(heads_for(u64::MAX), 0xFF);
    }

    #[test]
    fn loader_paths_swap_and_keys_parse() {
        assert_eq!(
            swap_loader("\\Windows\\system32\\winload.EXE").as_deref(),
            Some("\\Windows\\system32\\winload.efi")
        );
        assert_eq!(
            swap_loader("\\Windows\\system32\\winload.efi").as_deref(),
            Some("\\Windows\\system32\\winload.exe")
        );
        assert_eq!(swap_loader("\\x\\bootmgr"), None);
        assert_eq!(
            element_of("Objects\\{ABC}\\Elements\\21000001"),
            Some(("{abc}".into(), 0x2100_0001))
        );
        assert_eq!(element_of("Objects\\{abc}\\Description"), None);
    }
}
