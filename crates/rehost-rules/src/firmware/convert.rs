//! The fix of `mbr-on-uefi`: an MBR disk started by BIOS made one a UEFI firmware starts,
//! offline, as MBR2GPT does from inside Windows. One plan: the GPT (each partition at its
//! offset with its GPT type, an EFI system partition in free space or in space added at
//! the disk's end, an MSR where it fits), the ESP formatted FAT32, the install's own UEFI
//! boot files on it and a new UEFI store naming the GPT partitions (as bcdboot makes them),
//! and MountedDevices in GPT form for every letter of the disk. Every partition keeps its
//! offset, so the NTFS boot sectors' hidden-sector counts stay right. A System Reserved
//! partition is kept as a basic data partition (its BIOS boot files left as they are), not
//! reformatted as the ESP as MBR2GPT does: that would drop its NTFS content and the
//! session's opened file system under the check that follows; where no free space holds
//! the ESP, the disk grows instead.

use super::ID;
use crate::boot_config::rebuild;
use crate::cannot::NoConversion;
use crate::fix::{Change, Conversion, Plan};
use crate::subject::Subject;
use crate::target::Target;
use crate::version::Version;
use rehost_core::error::{Ctx, Layer, Result};
use rehost_disk::Ids;
use rehost_formats::bcd::PartitionRef;
use rehost_formats::bcdboot::Firmware;
use rehost_regf::regtext::Op;
use rehost_volume::gpt_plan::{self, Origin, Profile, Refusal, Request};
use rehost_volume::gpt_write;
use rehost_volume::Content;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The MBR partition type of an LDM dynamic disk's partition.
const LDM: &str = "0x42";
/// The architecture every UEFI target here starts, where its profile says none.
const UEFI_ARCH: &str = "x64";

/// Everything the conversion stages, planned.
struct Planned {
    conversion: Conversion,
    why: String,
    /// (path on the ESP, bytes, why).
    files: Vec<(String, Vec<u8>, String)>,
    mounted: Vec<Op>,
    mounted_why: String,
}

/// Plans the conversion of the disk of `s` for `t`, or says why not.
pub(super) fn plan(s: &Subject, t: &Target, plan: &mut Plan) -> Result<()> {
    let p = match conversion(s, t)? {
        Ok(p) => p,
        Err(no) => {
            plan.cannot(ID, no.to_string());
            return Ok(());
        }
    };
    let esp = p.conversion.esp_volume;
    plan.add(ID, p.why, Change::Gpt(Box::new(p.conversion)));
    for (path, bytes, why) in p.files {
        plan.add(
            "boot-config",
            why,
            Change::Put {
                volume: esp,
                path,
                bytes,
            },
        );
    }
    if p.mounted.len() > 1 {
        plan.add("mounted-devices", p.mounted_why, Change::system(p.mounted));
    }
    Ok(())
}

/// Whether the install is one the target's UEFI starts: its architecture and version.
fn startable(s: &Subject, t: &Target) -> Option<NoConversion> {
    let arch = s.install.arch.as_deref();
    let arches: Vec<&str> = match &t.requires {
        Some(r) if !r.arch.is_empty() => r.arch.iter().map(String::as_str).collect(),
        _ => vec![UEFI_ARCH],
    };
    if arch.is_none_or(|a| !arches.contains(&a)) {
        return Some(NoConversion::Arch {
            arch: arch.map(str::to_string),
        });
    }
    let (first, why) = match t.requires.as_ref().and_then(|r| Some((r.min_version?, r))) {
        Some((v, r)) => (v, r.why.clone()),
        None => (
            Version::VISTA,
            "UEFI starts 64-bit Windows Vista SP1 / Server 2008 and later".to_string(),
        ),
    };
    if s.version.is_none_or(|v| v < first) {
        return Some(NoConversion::Version {
            version: s.install.version.clone(),
            first: first.to_string(),
            why,
        });
    }
    None
}

/// A number the same disk always gives: the GPT's GUIDs and the ESP's serial number are
/// made from it, so that check, a dry run and the write plan the same bytes.
fn seed(s: &Subject) -> u64 {
    let h = Sha256::digest(
        format!(
            "{:?}|{}|{}",
            s.image.disk_signature, s.image.virtual_size, s.install.system_root
        )
        .as_bytes(),
    );
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// The GPT layout: planned with growth allowed, and without where the container cannot
/// grow.
fn layout_plan(
    s: &Subject,
    req: &mut Request,
) -> Result<std::result::Result<gpt_plan::Plan, NoConversion>> {
    let no_room = |r: &Refusal| {
        matches!(
            r,
            Refusal::NoRoomForBackup { .. }
                | Refusal::NoRoomForEsp(_)
                | Refusal::NoRoomForPrimary { .. }
        )
    };
    let p = match gpt_plan::plan(&s.scene.layout, req) {
        Ok(p) => p,
        Err(r) if no_room(&r) => {
            return Ok(Err(NoConversion::NoRoom {
                plan: r.to_string(),
                grow: None,
            }))
        }
        Err(r) => return Ok(Err(NoConversion::Table(r.to_string()))),
    };
    if p.grow_by == 0 {
        return Ok(Ok(p));
    }
    let Err(e) = rehost_disk::refuse_growth(Path::new(&s.image.image), p.disk_size) else {
        return Ok(Ok(p));
    };
    req.can_grow = false;
    Ok(match gpt_plan::plan(&s.scene.layout, req) {
        Ok(p) => Ok(p),
        Err(r) => Err(NoConversion::NoRoom {
            plan: r.to_string(),
            grow: Some(e.to_string()),
        }),
    })
}

fn conversion(s: &Subject, t: &Target) -> Result<std::result::Result<Planned, NoConversion>> {
    if let Some(no) = startable(s, t) {
        return Ok(Err(no));
    }
    let root = s.install.system_root.trim_matches(['\\', '/']);
    let loader = format!("{root}/System32/winload.efi");
    if !s.scene.is_file(s.install.volume, &loader) {
        return Ok(Err(NoConversion::NoLoader {
            path: format!("\\{}", loader.replace('/', "\\")),
        }));
    }
    let layout = &s.scene.layout;
    for v in &layout.volumes {
        if v.part_type.eq_ignore_ascii_case(LDM) {
            return Ok(Err(NoConversion::DynamicDisk { volume: v.index }));
        }
        if v.content == Content::Bitlocker {
            return Ok(Err(NoConversion::BitLocker { volume: v.index }));
        }
    }
    let mut indexes: Vec<u32> = layout.volumes.iter().map(|v| v.index).collect();
    indexes.sort_unstable();
    if indexes.iter().zip(1u32..).any(|(a, b)| *a != b) {
        return Ok(Err(NoConversion::Numbering));
    }
    let ss = layout.sector_size;
    let mut req = Request {
        disk_size: s.image.virtual_size,
        esp_size: Profile::builtin().esp_size(ss),
        can_grow: true,
        reuse_system_reserved: false,
        install_volumes: s.image.installs.iter().map(|i| i.volume).collect(),
    };
    let mut p = match layout_plan(s, &mut req)? {
        Ok(p) => p,
        Err(no) => return Ok(Err(no)),
    };
    // The old partitions keep their numbers: entries 1 to N in the old order, then the
    // ESP and the MSR.
    p.entries.sort_by_key(|e| match e.origin {
        Origin::Mbr(i) => (0, i),
        Origin::Esp => (1, 0),
        Origin::Msr => (2, 0),
    });
    let Some(esp_at) = p.entries.iter().position(|e| e.origin == Origin::Esp) else {
        return Ok(Err(NoConversion::Table("the plan holds no ESP".into())));
    };
    if !matches!(
        p.esp_source,
        gpt_plan::EspSource::FreeSpace | gpt_plan::EspSource::Grown
    ) {
        return Ok(Err(NoConversion::Table(format!(
            "the ESP would be an existing partition ({}), which rehost does not reformat",
            p.esp_reason
        ))));
    }
    let ctx = Ctx::new(s.image.image.clone(), Layer::Gpt);
    let ssu = ss as u64;
    let mut sector0 = vec![0u8; ss as usize];
    s.disk.read_at(0, &mut sector0)?;
    let seed = seed(s);
    let sectors = gpt_write::build(&p.table(Some(sector0)), &mut Ids::new(Some(seed)), &ctx)?;
    let disk = sectors.disk_guid.to_string();
    let guid_of = |volume: u32| {
        p.entries
            .iter()
            .position(|e| e.origin == Origin::Mbr(volume))
            .and_then(|at| sectors.unique_guids.get(at))
            .map(|g| PartitionRef::Gpt {
                disk: disk.clone(),
                partition: g.to_string(),
            })
    };
    let esp_part = &p.entries[esp_at].partition;
    let (Some(esp_guid), Some(esp_offset), Some(esp_len)) = (
        sectors.unique_guids.get(esp_at),
        esp_part.first_lba.checked_mul(ssu),
        esp_part
            .last_lba
            .checked_sub(esp_part.first_lba)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(ssu)),
    ) else {
        return Err(ctx.invalid("the planned ESP has no GUID or no valid extent"));
    };
    let esp_ref = PartitionRef::Gpt {
        disk: disk.clone(),
        partition: esp_guid.to_string(),
    };
    let Some(os_ref) = guid_of(s.install.volume) else {
        return Ok(Err(NoConversion::Table(format!(
            "the install's volume {} has no entry in the plan",
            s.install.volume
        ))));
    };
    let rebuilt = match rebuild::files(s, Firmware::Uefi, esp_ref, os_ref)? {
        Ok(r) => r,
        Err(no) => return Ok(Err(NoConversion::BootFiles(no))),
    };
    let esp_volume = esp_at as u32 + 1;
    let conversion = Conversion {
        grow_by: p.grow_by,
        writes: sectors.writes,
        esp_offset,
        esp_len,
        sector_size: ss,
        volume_id: seed as u32,
        esp_volume,
        kept: layout.volumes.iter().map(|v| (v.index, v.offset)).collect(),
    };
    let entries: Vec<String> = p
        .entries
        .iter()
        .zip(1..)
        .map(|(e, n)| {
            let what = match e.origin {
                Origin::Mbr(i) => format!("volume {i}"),
                Origin::Esp => "the EFI system partition".into(),
                Origin::Msr => "the Microsoft reserved partition".into(),
            };
            format!(
                "{n}: {what}, {} (sectors {}..={})",
                e.partition.name, e.partition.first_lba, e.partition.last_lba
            )
        })
        .collect();
    let mut why = format!(
        "the disk becomes GPT, started by UEFI (disk {disk}; {}). The ESP: {}. The MSR: {}. \
         Every partition keeps its offset, so the NTFS boot sectors' hidden-sector counts stay",
        entries.join("; "),
        p.esp_reason,
        p.msr_reason
    );
    if p.grow_by > 0 {
        why.push_str(&format!(
            ". The disk grows by {} MiB to {} bytes (undo gives back its old size)",
            p.grow_by >> 20,
            p.disk_size
        ));
    }
    for n in &p.notes {
        why.push_str(&format!(". {n}"));
    }
    let win = |x: &str| format!("\\{}", x.replace('/', "\\"));
    let mut files: Vec<(String, Vec<u8>, String)> = rebuilt
        .files
        .into_iter()
        .map(|(to, bytes, from)| {
            let why = format!("{} on the new ESP from {}", win(&to), win(&from));
            (win(&to), bytes, why)
        })
        .collect();
    let (store, carried) = super::carried_store(s, rebuilt.store)?;
    files.push((
        rebuilt.store_path.to_string(),
        store,
        format!("{} on the new ESP{carried}", rebuilt.what),
    ));
    let (mounted, renamed) = super::mounted_devices(s, guid_of);
    let mounted_why = format!(
        "MountedDevices in GPT form (DMIO:ID: and the partition GUID) for the disk's \
         volumes: {}",
        renamed.join(", ")
    );
    Ok(Ok(Planned {
        conversion,
        why,
        files,
        mounted,
        mounted_why,
    }))
}
