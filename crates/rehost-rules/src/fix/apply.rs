//! Applying a plan into an image's staging overlay: the registry changes of each hive one
//! after another on the hive as it is (its logs replayed), each read back through nt-hive,
//! the result written over the hive file by the writer of its volume (NTFS, or FAT for a
//! BCD on an EFI system partition); files put and renamed by the writer of their volume; raw bytes staged at their offset. Nothing reaches the image:
//! the caller commits.

use super::{Change, Conversion, FixOptions, Plan, ToMbr};
use rehost_core::error::{Ctx, Layer, Result};
use rehost_fat::format::{format, Options};
use rehost_formats::bootini;
use rehost_image::staged::{self, Writers};
use rehost_image::Image;
use rehost_regf::diff;
use rehost_volume::Partitioning;
use rehost_windows::hive_edit::HiveEdits;
use rehost_windows::registry::Mounts;
use rehost_windows::report::Install;
use rehost_windows::Opened;
use serde::Serialize;
use std::sync::Arc;

/// The label Windows setup gives an EFI system partition it formats.
const ESP_LABEL: &str = "SYSTEM";
use sha2::{Digest, Sha256};

/// A change as applied, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The rule whose fix made it.
    pub rule: String,
    /// Why.
    pub why: String,
    /// The round of the fix that made it (1: from the first check).
    pub round: usize,
    /// "registry", "boot.ini", "put", "rename", "active" (the MBR's active flag), "gpt"
    /// (a new partition table and EFI system partition), "mbr" (a GPT disk's new MBR) or
    /// "bytes".
    pub kind: &'static str,
    /// The hive, for a registry change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hive: Option<String>,
    /// The diff: .reg style for a registry change, lines for a boot.ini.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The volume of a file change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<u32>,
    /// The file written or renamed (`from -> to` for a rename).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// SHA-256 of the bytes written (a file's, or the raw bytes').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Bytes written (a file's size, or the raw bytes').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// The lines of `after` not in `before` (+) and of `before` not in `after` (-).
fn text_diff(before: &str, after: &str) -> String {
    let mut out = String::new();
    for l in before.lines().filter(|l| !after.lines().any(|a| a == *l)) {
        out.push_str(&format!("-{l}\n"));
    }
    for l in after.lines().filter(|l| !before.lines().any(|b| b == *l)) {
        out.push_str(&format!("+{l}\n"));
    }
    out
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Applies `plan` for `install` of the image opened (over the overlay) as `opened`. With
/// `opts.accept_dirty_hive` a dirty hive whose logs cannot be replayed is edited as it
/// stands; with `opts.discard_hibernation` a hibernated volume is written (the plan then
/// holds the emptying of its `hiberfil.sys`).
pub fn apply(
    staged: &Image,
    opened: &Opened,
    install: &Install,
    plan: &Plan,
    opts: &FixOptions,
) -> Result<Vec<Applied>> {
    let ctx = Ctx::new(opened.report.image.clone(), Layer::Windows);
    let mut out = Vec::new();
    let mut write_opts = staged::image_options(false, false);
    write_opts.allow_hibernated = opts.discard_hibernation;
    // A new partition table first: the changes after it name its volumes.
    for p in &plan.changes {
        if let Change::Gpt(c) = &p.change {
            let (file, bytes) = convert(staged, c, &ctx)?;
            out.push(Applied {
                rule: p.rule.to_string(),
                why: p.why.clone(),
                round: 1,
                kind: "gpt",
                hive: None,
                diff: None,
                volume: Some(c.esp_volume),
                file: Some(file),
                sha256: None,
                bytes: Some(bytes),
            });
        }
        if let Change::Mbr(c) = &p.change {
            let (file, bytes) = to_mbr(staged, c, &ctx)?;
            out.push(Applied {
                rule: p.rule.to_string(),
                why: p.why.clone(),
                round: 1,
                kind: "mbr",
                hive: None,
                diff: None,
                volume: Some(c.active),
                file: Some(file),
                sha256: Some(sha(&c
                    .writes
                    .first()
                    .map(|w| w.1.clone())
                    .unwrap_or_default())),
                bytes: Some(bytes),
            });
        }
    }
    let mut writers = Writers::new(staged, write_opts);
    // Registry changes, hive by hive, in plan order within each hive.
    let mut hives = HiveEdits::new().accepting_dirty(opts.accept_dirty_hive);
    for p in &plan.changes {
        let Change::Registry { hive, store, ops } = &p.change else {
            continue;
        };
        let m = Mounts::builtin()
            .for_file(hive)
            .ok_or_else(|| ctx.invalid(format!("no hive named {hive}")))?;
        // A boot store on the volume the change names; an install's hive on its own.
        let volume = if m.boot_store {
            *store
        } else {
            Some(install.volume)
        };
        let changes = hives.edit(opened, volume, m, ops, None, false)?;
        let prefix = hives.hive(opened, volume, m)?.prefix(None);
        let why = match hives.as_it_stands(volume, m) {
            Some(logs) => format!(
                "{} ({hive} was dirty and its logs could not be replayed ({logs}): edited as \
                 its primary file stood and written back consistent, as --accept-dirty-hive \
                 asks; what its logs held is lost)",
                p.why
            ),
            None => p.why.clone(),
        };
        out.push(Applied {
            rule: p.rule.to_string(),
            why,
            round: 1,
            kind: "registry",
            hive: Some(hive.clone()),
            diff: Some(diff::render(&changes, &prefix)),
            volume: None,
            file: None,
            sha256: None,
            bytes: None,
        });
    }
    hives.stage(&mut writers)?;
    // A dirty hive written back carries what its logs held: say so once per hive, since its
    // dirty-hive finding is gone from the check after.
    let mut folded: Vec<&str> = Vec::new();
    for p in &plan.changes {
        let Change::Registry {
            hive, store: None, ..
        } = &p.change
        else {
            continue;
        };
        let Some(h) = install
            .hives
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(hive) && h.dirty && h.replayed.is_some())
        else {
            continue;
        };
        if folded.iter().any(|f| f.eq_ignore_ascii_case(hive)) {
            continue;
        }
        folded.push(hive);
        out.push(Applied {
            rule: "dirty-hive".to_string(),
            why: format!(
                "{} was dirty ({}): the hive is written back with its log entries in it, \
                 consistent, so Windows has nothing to replay from {} at the next boot",
                h.name,
                h.replayed.as_deref().unwrap_or("logs replayed"),
                h.logs.join(" and ")
            ),
            round: 1,
            kind: "registry",
            hive: Some(hive.clone()),
            diff: None,
            volume: Some(install.volume),
            file: None,
            sha256: None,
            bytes: None,
        });
    }
    // boot.ini edits, file by file, each on the text the last one left.
    let mut inis: Vec<(u32, String, String)> = Vec::new();
    for p in &plan.changes {
        let Change::BootIni { volume, path, edit } = &p.change else {
            continue;
        };
        let at = match inis
            .iter()
            .position(|(v, f, _)| v == volume && f.eq_ignore_ascii_case(path))
        {
            Some(i) => i,
            None => {
                let bytes = opened.scene.read(*volume, path)?;
                let text = String::from_utf8_lossy(&bytes).into_owned();
                inis.push((*volume, path.clone(), text));
                inis.len() - 1
            }
        };
        let before = inis[at].2.clone();
        let after = bootini::edit::apply(&before, edit);
        out.push(Applied {
            rule: p.rule.to_string(),
            why: p.why.clone(),
            round: 1,
            kind: "boot.ini",
            hive: None,
            diff: Some(text_diff(&before, &after)),
            volume: Some(*volume),
            file: Some(path.clone()),
            sha256: Some(sha(after.as_bytes())),
            bytes: Some(after.len() as u64),
        });
        inis[at].2 = after;
    }
    for (volume, path, text) in &inis {
        writers.get(*volume)?.put(path, text.as_bytes())?;
    }
    for p in &plan.changes {
        let applied = match &p.change {
            Change::Registry { .. } | Change::BootIni { .. } | Change::Gpt(_) | Change::Mbr(_) => {
                continue
            }
            Change::Put {
                volume,
                path,
                bytes,
            } => {
                writers.get(*volume)?.put(path, bytes)?;
                (
                    "put",
                    Some(*volume),
                    Some(path.clone()),
                    Some(sha(bytes)),
                    Some(bytes.len() as u64),
                )
            }
            Change::Rename { volume, from, to } => {
                writers.get(*volume)?.rename(from, to)?;
                (
                    "rename",
                    Some(*volume),
                    Some(format!("{from} -> {to}")),
                    None,
                    None,
                )
            }
            Change::Active { volume } => {
                staged.set_active(*volume)?;
                (
                    "active",
                    Some(*volume),
                    Some(format!(
                        "the MBR's status bytes: volume {volume} active, every other entry not"
                    )),
                    None,
                    None,
                )
            }
            Change::Bytes {
                offset,
                bytes,
                what,
            } => {
                staged.write_raw(*offset, bytes)?;
                (
                    "bytes",
                    None,
                    Some(format!("{what} at disk offset {offset:#x}")),
                    Some(sha(bytes)),
                    Some(bytes.len() as u64),
                )
            }
        };
        out.push(Applied {
            rule: p.rule.to_string(),
            why: p.why.clone(),
            round: 1,
            kind: applied.0,
            hive: None,
            diff: None,
            volume: applied.1,
            file: applied.2,
            sha256: applied.3,
            bytes: applied.4,
        });
    }
    Ok(out)
}

/// Stages an MBR disk's conversion to GPT: the disk grown, the table's sectors written
/// outside every volume, the EFI system partition formatted FAT32, and the new table
/// taken as the session's layout, read back: GPT, the ESP holding FAT32 where it was
/// put, every old volume at its old offset under its number. Returns what it wrote, in
/// words, and how many bytes the table and the ESP span.
fn convert(staged: &Image, c: &Conversion, ctx: &Ctx) -> Result<(String, u64)> {
    if c.grow_by > 0 {
        staged.grow(c.grow_by)?;
    }
    let mut bytes = 0u64;
    for (at, b) in &c.writes {
        staged.write_outside(*at, b)?;
        bytes += b.len() as u64;
    }
    let win = Arc::new(staged.outside_window(c.esp_offset, c.esp_len, Layer::Fat)?);
    let hidden_sectors = u32::try_from(c.esp_offset / c.sector_size as u64).map_err(|_| {
        ctx.unsupported(
            c.esp_offset,
            "the ESP starts past sector 2^32: its boot sector cannot say so",
        )
    })?;
    let made = format(
        win,
        &Options {
            sector_size: c.sector_size,
            label: ESP_LABEL.into(),
            volume_id: c.volume_id,
            hidden_sectors,
        },
        ctx,
    )?;
    let layout = staged.adopt_layout()?;
    let found = |index: u32, offset: u64| {
        layout
            .volumes
            .iter()
            .find(|v| v.index == index)
            .filter(|v| v.offset == offset)
    };
    let esp_ok = found(c.esp_volume, c.esp_offset).is_some_and(|v| v.content.is_fat());
    let kept_ok = c.kept.iter().all(|(i, at)| found(*i, *at).is_some());
    if layout.partitioning != Partitioning::Gpt || !esp_ok || !kept_ok {
        return Err(ctx.invalid(
            "the staged GPT read back does not hold the ESP and the volumes where the \
             conversion put them",
        ));
    }
    Ok((
        format!(
            "GPT (protective MBR, primary and backup headers and arrays, {} entries); \
             volume {} the EFI system partition at disk offset {:#x}, {} MiB, FAT32 with \
             {}-byte clusters",
            layout.volumes.len(),
            c.esp_volume,
            c.esp_offset,
            c.esp_len >> 20,
            made.cluster_size
        ),
        bytes + c.esp_len,
    ))
}

/// Stages a GPT disk's conversion to MBR: the new sector 0 and the GPT's headers and
/// arrays zeroed, all outside every volume, and the new table taken as the session's
/// layout, read back: MBR, the new signature, every carried volume at its offset under its
/// number, the one to start active. Returns what it wrote, in words, and how many bytes.
fn to_mbr(staged: &Image, c: &ToMbr, ctx: &Ctx) -> Result<(String, u64)> {
    let mut bytes = 0u64;
    for (at, b) in &c.writes {
        staged.write_outside(*at, b)?;
        bytes += b.len() as u64;
    }
    let layout = staged.adopt_layout()?;
    let found = |index: u32, offset: u64| {
        layout
            .volumes
            .iter()
            .find(|v| v.index == index && v.offset == offset)
    };
    let kept_ok = c.kept.iter().all(|(i, at)| found(*i, *at).is_some());
    let active_ok = layout
        .volumes
        .iter()
        .all(|v| v.bootable == (v.index == c.active));
    if layout.partitioning != Partitioning::Mbr
        || layout.mbr_signature.as_deref() != Some(c.signature.as_str())
        || !kept_ok
        || !active_ok
        || layout.volumes.len() != c.kept.len()
    {
        return Err(ctx.invalid(
            "the staged MBR read back does not hold the volumes where the conversion put \
             them, or another one is active",
        ));
    }
    Ok((
        format!(
            "MBR (signature {}, {} entries, volume {} active; the GPT's headers and arrays \
             zeroed: {} ranges)",
            c.signature,
            layout.volumes.len(),
            c.active,
            c.writes.len().saturating_sub(1)
        ),
        bytes,
    ))
}
