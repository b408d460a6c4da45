//! The fix of `gpt-on-bios`: a GPT disk started by UEFI made one a BIOS starts, offline,
//! where it can be done. One plan: the MBR (`rehost_volume::mbr_plan`: each partition that
//! carries over in the entry of its GPT number, at its offset, typed by `profiles/mbr.toml`;
//! Windows' boot code kept from the protective MBR; a new disk signature; the install's
//! partition active), the GPT's headers and arrays zeroed, bootmgr and a BIOS store on the
//! install's partition from its own `\Windows\Boot\PCAT` (as `bcdboot /f BIOS` puts them on
//! a disk without a System Reserved partition, and as `--rebuild-boot` does), the old
//! store's options that still apply carried into it, MountedDevices in MBR form for every
//! letter of the disk, and each carried NTFS boot sector's hidden-sector count set to its
//! partition's start where it says otherwise.
//!
//! Which partitions carry over, and why: basic data and recovery partitions hold the
//! volumes Windows uses, so each must have an entry, or the conversion is refused; the
//! Microsoft reserved partition holds nothing and is dropped; the EFI system partition holds
//! only the UEFI boot files, which a BIOS does not run, so the BIOS boot files go on the
//! install's own partition instead of it (bootmgr's NTFS boot code is there already, and a
//! FAT32 ESP's boot sector is not one that loads bootmgr), and it is kept as type 0xEF, with
//! its files, only where its entry number leaves room. Partitions keep their numbers, so the
//! session's volumes and every change after the table name the same volumes as before it.
//!
//! Refused, each condition named: an install a BIOS does not start (ARM64), no BIOS loader
//! (`winload.exe`), a dynamic disk, a BitLocker volume, no boot code in the protective MBR
//! (rehost never writes boot code), more partitions that must carry over than four or one
//! past GPT entry 4, a partition past what 32-bit sector numbers reach (2 TiB on 512-byte
//! sectors), a GPT type with no MBR type.

use super::ID;
use crate::boot_config::rebuild;
use crate::cannot::NoBiosConversion;
use crate::fix::{Change, Plan, ToMbr};
use crate::subject::Subject;
use rehost_core::error::{Layer, Result};
use rehost_formats::bcd::PartitionRef;
use rehost_formats::bcdboot::Firmware;
use rehost_volume::mbr_plan::{self, BootCode, Profile, Request};
use rehost_volume::{gpt, Content};
use sha2::{Digest, Sha256};

/// Where the NTFS boot sector keeps its hidden-sector count.
const HIDDEN_SECTORS: u64 = 0x1C;

type Outcome<T> = std::result::Result<T, NoBiosConversion>;

/// Plans the conversion of the disk of `s` for a BIOS, or says why not.
pub(super) fn plan(s: &Subject, plan: &mut Plan) -> Result<()> {
    let changes = match conversion(s)? {
        Ok(c) => c,
        Err(no) => {
            plan.cannot(ID, no.to_string());
            return Ok(());
        }
    };
    for (rule, why, change) in changes {
        plan.add(rule, why, change);
    }
    Ok(())
}

/// A new disk signature: never zero and not the one the protective MBR holds, as Windows
/// gives a disk a signature of its own when it writes an MBR (it makes a random one; this
/// one is made from the disk's GUID and size, so that check, a dry run and the write plan
/// the same bytes).
fn signature(s: &Subject, old: u32) -> u32 {
    let h = Sha256::digest(
        format!(
            "mbr signature|{:?}|{}",
            s.image.disk_guid, s.image.virtual_size
        )
        .as_bytes(),
    );
    h.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .find(|v| *v != 0 && *v != old)
        .unwrap_or(1)
}

/// Whether the install and the disk are ones a BIOS can start after the conversion.
fn startable(s: &Subject, sector0: &[u8]) -> Option<NoBiosConversion> {
    let arch = s.install.arch.as_deref();
    if arch.is_none_or(|a| !Profile::builtin().bios_arch.iter().any(|x| x == a)) {
        return Some(NoBiosConversion::Arch {
            arch: arch.map(str::to_string),
        });
    }
    let root = s.install.system_root.trim_matches(['\\', '/']);
    let loader = format!("{root}/System32/winload.exe");
    if !s.scene.is_file(s.install.volume, &loader) {
        return Some(NoBiosConversion::NoLoader {
            path: format!("\\{}", loader.replace('/', "\\")),
        });
    }
    for v in &s.scene.layout.volumes {
        if v.content == Content::Ldm {
            return Some(NoBiosConversion::DynamicDisk { volume: v.index });
        }
        if v.content == Content::Bitlocker {
            return Some(NoBiosConversion::BitLocker { volume: v.index });
        }
    }
    match mbr_plan::boot_code(sector0, Profile::builtin()) {
        BootCode::Present(_) => None,
        BootCode::Empty => Some(NoBiosConversion::BootCode(
            "its first 440 bytes are zero, as the tool that made the GPT left them".into(),
        )),
        BootCode::NoSignature => Some(NoBiosConversion::BootCode(
            "sector 0 does not end in 0x55AA".into(),
        )),
        BootCode::Other(what) => Some(NoBiosConversion::BootCode(format!("it holds {what}"))),
    }
}

/// The GPT headers that read: the primary at LBA 1 and the backup it names (else the one at
/// the last LBA).
fn headers(s: &Subject) -> Vec<gpt::Header> {
    let ss = u64::from(s.scene.layout.sector_size);
    let ctx = s.scene.ctx.with_layer(Layer::Gpt);
    let last = (s.disk.size() / ss).saturating_sub(1);
    let mut out = Vec::new();
    let primary = gpt::header(s.disk, 1, ss, &ctx).ok();
    let backup_lba = primary
        .as_ref()
        .map(|h| h.alternate_lba)
        .filter(|l| *l > 1 && *l <= last)
        .unwrap_or(last);
    out.extend(primary);
    out.extend(gpt::header(s.disk, backup_lba, ss, &ctx).ok());
    out
}

type Planned = Vec<(&'static str, String, Change)>;

fn conversion(s: &Subject) -> Result<Outcome<Planned>> {
    let layout = &s.scene.layout;
    let ss = layout.sector_size as usize;
    let mut sector0 = vec![0u8; ss];
    s.disk.read_at(0, &mut sector0)?;
    if let Some(no) = startable(s, &sector0) {
        return Ok(Err(no));
    }
    let old = u32::from_le_bytes([sector0[440], sector0[441], sector0[442], sector0[443]]);
    let req = Request {
        sector0: &sector0,
        headers: headers(s),
        signature: signature(s, old),
        active: s.install.volume,
        disk_size: s.disk.size(),
    };
    let p = match mbr_plan::plan(layout, &req) {
        Ok(p) => p,
        Err(r) => return Ok(Err(NoBiosConversion::Table(r.to_string()))),
    };
    let sig = format!("{:08x}", p.signature);
    let offset_of = |index: u32| {
        layout
            .volumes
            .iter()
            .find(|v| v.index == index)
            .map(|v| v.offset)
    };
    let mbr_ref = |index: u32| {
        let carried = p.entries.iter().any(|e| e.slot == index);
        offset_of(index)
            .filter(|_| carried)
            .map(|offset| PartitionRef::Mbr {
                signature: sig.clone(),
                offset,
            })
    };
    let Some(os_ref) = mbr_ref(s.install.volume) else {
        return Ok(Err(NoBiosConversion::Table(format!(
            "the install's volume {} has no entry in the plan",
            s.install.volume
        ))));
    };
    let rebuilt = match rebuild::files(s, Firmware::Bios, os_ref.clone(), os_ref)? {
        Ok(r) => r,
        Err(no) => return Ok(Err(NoBiosConversion::BootFiles(no))),
    };
    let mut out: Planned = Vec::new();
    let mut writes = vec![(0u64, p.sector0.clone())];
    writes.extend(
        p.zero
            .iter()
            .map(|(at, len)| (*at, vec![0u8; *len as usize])),
    );
    let kept: Vec<(u32, u64)> = p
        .entries
        .iter()
        .filter_map(|e| offset_of(e.slot).map(|o| (e.slot, o)))
        .collect();
    out.push((
        ID,
        why(&p, &sig, s.install.volume),
        Change::Mbr(Box::new(ToMbr {
            writes,
            signature: sig.clone(),
            active: s.install.volume,
            kept,
        })),
    ));
    let win = |x: &str| format!("\\{}", x.replace('/', "\\"));
    for (to, bytes, from) in rebuilt.files {
        out.push((
            "boot-config",
            format!(
                "{} on volume {}, the partition the BIOS starts, from {}",
                win(&to),
                s.install.volume,
                win(&from)
            ),
            Change::Put {
                volume: s.install.volume,
                path: win(&to),
                bytes,
            },
        ));
    }
    let (store, carried) = super::carried_store(s, rebuilt.store)?;
    out.push((
        "boot-config",
        format!("{} on volume {}{carried}", rebuilt.what, s.install.volume),
        Change::Put {
            volume: s.install.volume,
            path: rebuilt.store_path.to_string(),
            bytes: store,
        },
    ));
    let (mounted, renamed) = super::mounted_devices(s, mbr_ref);
    if mounted.len() > 1 {
        out.push((
            "mounted-devices",
            format!(
                "MountedDevices in MBR form (the disk signature {sig} and the partition's \
                 offset) for the disk's volumes: {}",
                renamed.join(", ")
            ),
            Change::system(mounted),
        ));
    }
    for e in &p.entries {
        hidden_sectors(s, e.slot, u64::from(e.first_lba), &mut out)?;
    }
    Ok(Ok(out))
}

/// The plan's reason, in words.
fn why(p: &mbr_plan::Plan, sig: &str, active: u32) -> String {
    let entries: Vec<String> = p
        .entries
        .iter()
        .map(|e| {
            format!(
                "{}: volume {}, {}, type {:#04x} (sectors {}..={}){}",
                e.slot,
                e.slot,
                e.what,
                e.kind,
                e.first_lba,
                u64::from(e.first_lba) + u64::from(e.sectors).saturating_sub(1),
                if e.active { ", active" } else { "" }
            )
        })
        .collect();
    let mut why = format!(
        "the disk becomes MBR, started by BIOS (signature {sig}, new; {}). Every partition \
         keeps its number and offset; Windows' boot code in the protective MBR is kept, and \
         the GPT's primary and backup headers and arrays are zeroed, so that no tool finds a \
         stale GPT",
        entries.join("; ")
    );
    for d in &p.dropped {
        why.push_str(&format!(
            ". Volume {} ({}) is dropped: {}",
            d.volume, d.what, d.why
        ));
    }
    for n in &p.notes {
        why.push_str(&format!(". {n}"));
    }
    if p.entries.iter().any(|e| e.kind == 0xEF) {
        why.push_str(
            ". The EFI system partition is kept as type 0xEF with its files (a BIOS does not \
             run them; a move back to UEFI finds them)",
        );
    }
    why.push_str(&format!(
        ". bootmgr and \\Boot\\BCD go on volume {active}, the install's own, made active (a \
         FAT32 ESP's boot sector does not load bootmgr; the NTFS one does)"
    ));
    why
}

/// The changes that set the hidden-sector count of the NTFS boot sector (and its backup)
/// of volume `index` to `first_lba`, where it says otherwise.
fn hidden_sectors(s: &Subject, index: u32, first_lba: u64, out: &mut Planned) -> Result<()> {
    let Some(v) = s.scene.volume(index).filter(|v| v.content == Content::Ntfs) else {
        return Ok(());
    };
    let Ok(want) = u32::try_from(first_lba) else {
        return Ok(());
    };
    let mut boot = [0u8; 512];
    s.disk.read_at(v.offset, &mut boot)?;
    let had = u32::from_le_bytes([boot[0x1C], boot[0x1D], boot[0x1E], boot[0x1F]]);
    if had == want {
        return Ok(());
    }
    let bps = u64::from(u16::from_le_bytes([boot[0x0B], boot[0x0C]]));
    let total = u64::from_le_bytes(boot[0x28..0x30].try_into().unwrap_or_default());
    let mut at = vec![(v.offset, "boot sector")];
    if let Some(b) = total
        .checked_mul(bps)
        .filter(|b| bps >= 512 && b.checked_add(bps).is_some_and(|e| e <= v.size))
    {
        let mut sector = [0u8; 512];
        s.disk.read_at(v.offset + b, &mut sector)?;
        if &sector[3..11] == b"NTFS    " {
            at.push((v.offset + b, "backup boot sector"));
        }
    }
    let why = format!(
        "volume {index}'s NTFS boot sector says the volume starts at sector {had}; it starts \
         at {want}, and the NTFS boot code a BIOS runs reads the rest of itself from there"
    );
    for (offset, what) in at {
        out.push((
            "boot-config",
            why.clone(),
            Change::Bytes {
                offset: offset + HIDDEN_SECTORS,
                bytes: want.to_le_bytes().to_vec(),
                what: format!("hidden sectors of volume {index}'s {what}"),
            },
        ));
    }
    Ok(())
}
