//! Planning the conversion of a GPT disk to MBR (UEFI to BIOS), as a pure function of its
//! [`Layout`], its sector 0 and its GPT headers.
//!
//! [`plan`] gives every GPT partition that carries over (`profiles/mbr.toml`: basic data,
//! recovery, the EFI system partition where there is room; not the Microsoft reserved
//! partition) the MBR entry of its GPT entry number, at the same offset and length, with
//! the type byte its type and content give; builds the new sector 0 (the boot code kept,
//! a new disk signature, the four entries with their CHS fields, the active flag, 0x55AA);
//! and lists the GPT's sectors to zero (both headers and both entry arrays), so that no
//! tool finds a stale GPT. A disk it cannot convert gets a [`Refusal`] that says why.
//! [`boot_code`] says whether the protective MBR holds boot code a BIOS can run. Nothing is
//! read or written here.

use crate::gpt::Header;
use crate::{Content, Layout, Partitioning};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

/// Bytes of boot code at the start of an MBR.
pub const BOOT_CODE: usize = 440;
/// Where the disk signature is.
pub const SIGNATURE: usize = 440;
/// Where the four partition entries begin.
pub const TABLE: usize = 446;
/// The status byte of the active entry.
pub const ACTIVE: u8 = 0x80;
/// Heads and sectors per track of the translated geometry Windows writes CHS fields by.
const HEADS: u64 = 255;
const SECTORS: u64 = 63;
/// The last cylinder a CHS field can hold.
const MAX_CYLINDER: u64 = 1023;

/// The conversion data (`profiles/mbr.toml`).
#[derive(Debug, Deserialize)]
pub struct Profile {
    /// The architectures a BIOS starts.
    pub bios_arch: Vec<String>,
    /// GPT types and their MBR entries.
    pub to_mbr: Vec<Mapping>,
    /// Boot code of other loaders, by a marker in it.
    pub other_boot_code: Vec<OtherBootCode>,
}

/// What one GPT type becomes.
#[derive(Debug, Deserialize)]
pub struct Mapping {
    /// The GPT type GUID (lower case).
    #[serde(rename = "type")]
    pub type_guid: String,
    /// What it is, for messages.
    pub what: String,
    /// "must", "if-room" or "drop".
    pub carry: String,
    /// The MBR type byte.
    pub mbr: u8,
    /// The type byte by content ("fat32", ...), where it differs.
    #[serde(default)]
    pub by_content: BTreeMap<String, u8>,
}

/// Another loader's boot code, told by a marker.
#[derive(Debug, Deserialize)]
pub struct OtherBootCode {
    /// Bytes found in its code (ASCII).
    pub marker: String,
    /// What it is.
    pub what: String,
}

impl Profile {
    /// The table built into rehost.
    pub fn builtin() -> &'static Profile {
        static P: OnceLock<Profile> = OnceLock::new();
        P.get_or_init(|| {
            toml::from_str(include_str!("../../../profiles/mbr.toml"))
                .expect("the built-in MBR conversion table parses (a unit test checks it)")
        })
    }
}

/// What the boot code region of sector 0 holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootCode {
    /// Code a BIOS can run, that starts the active partition: how many of its 440 bytes
    /// are not zero.
    Present(usize),
    /// Zeros (the protective MBR sgdisk and other tools write).
    Empty,
    /// Sector 0 does not end in 0x55AA.
    NoSignature,
    /// Another loader's code (what it is).
    Other(String),
}

/// What the boot code region of `sector0` holds, by the rule `profiles/mbr.toml` states.
pub fn boot_code(sector0: &[u8], profile: &Profile) -> BootCode {
    if sector0.len() < 512 || sector0[510..512] != [0x55, 0xAA] {
        return BootCode::NoSignature;
    }
    let code = &sector0[..BOOT_CODE];
    let set = code.iter().filter(|b| **b != 0).count();
    if set == 0 {
        return BootCode::Empty;
    }
    for o in &profile.other_boot_code {
        let m = o.marker.as_bytes();
        if !m.is_empty() && code.windows(m.len()).any(|w| w == m) {
            return BootCode::Other(o.what.clone());
        }
    }
    BootCode::Present(set)
}

/// The CHS field of `lba` as Windows writes it: by a geometry of 255 heads and 63 sectors
/// per track, and (1023, 254, 63) for a sector past cylinder 1023.
pub fn chs(lba: u64) -> [u8; 3] {
    let c = lba / (HEADS * SECTORS);
    if c > MAX_CYLINDER {
        return [0xFE, 0xFF, 0xFF];
    }
    let h = (lba / SECTORS) % HEADS;
    let s = lba % SECTORS + 1;
    [h as u8, (s as u8) | (((c >> 8) as u8) << 6), c as u8]
}

/// One MBR entry of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry (1 to 4): the partition's GPT entry number.
    pub slot: u32,
    /// The type byte.
    pub kind: u8,
    /// First sector.
    pub first_lba: u32,
    /// Sectors.
    pub sectors: u32,
    /// Active.
    pub active: bool,
    /// What it was on the GPT disk.
    pub what: String,
}

/// A GPT partition left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Its GPT entry number.
    pub volume: u32,
    /// What it is.
    pub what: String,
    /// Why it is not carried.
    pub why: String,
}

/// The conversion of one disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The new disk signature.
    pub signature: u32,
    /// The entries, by slot.
    pub entries: Vec<Entry>,
    /// The partitions left out.
    pub dropped: Vec<Dropped>,
    /// The new sector 0 (a whole logical sector: the MBR in its first 512 bytes, the rest
    /// as it was).
    pub sector0: Vec<u8>,
    /// Byte ranges of the GPT to zero: (offset, length).
    pub zero: Vec<(u64, u64)>,
    /// GPT structures left as they are, and why (a header or array named inside a
    /// partition, past the disk's end, or larger than a GPT array is read).
    pub notes: Vec<String>,
}

/// Why a GPT disk is not converted to MBR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The disk is not GPT.
    NotGpt,
    /// The GPT could not be read whole.
    Unreadable(Vec<String>),
    /// More partitions must carry over than an MBR has entries.
    TooMany(Vec<u32>),
    /// A partition that must carry over is past GPT entry 4.
    PastEntry4(u32),
    /// A partition ends past the last sector a 32-bit LBA reaches.
    Past32Bit {
        /// The partition.
        volume: u32,
        /// Its last sector.
        last_lba: u64,
        /// The sector size.
        sector_size: u32,
    },
    /// A partition's GPT type has no MBR type here.
    UnknownType(u32, String),
    /// The partition to make active is not carried over.
    ActiveNotCarried(u32),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotGpt => f.write_str("the disk is not GPT"),
            Refusal::Unreadable(e) => write!(f, "the GPT is not readable whole: {}", e.join("; ")),
            Refusal::TooMany(v) => write!(
                f,
                "{} partitions must carry over (GPT entries {}), and an MBR has four entries",
                v.len(),
                v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
            Refusal::PastEntry4(v) => write!(
                f,
                "partition {v} must carry over and is GPT entry {v}: an MBR has entries 1 to 4, \
                 and rehost keeps every partition's number"
            ),
            Refusal::Past32Bit {
                volume,
                last_lba,
                sector_size,
            } => write!(
                f,
                "partition {volume} ends at sector {last_lba}, past what an MBR's 32-bit sector \
                 numbers reach ({} TiB with {sector_size}-byte sectors)",
                ((u64::from(u32::MAX) + 1) * u64::from(*sector_size)) >> 40
            ),
            Refusal::UnknownType(v, t) => write!(
                f,
                "partition {v} is of GPT type {t}, which has no MBR type here \
                 (profiles/mbr.toml maps the types a conversion knows)"
            ),
            Refusal::ActiveNotCarried(v) => {
                write!(f, "volume {v}, to be made active, does not carry over")
            }
        }
    }
}

/// What the caller gives.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The disk's present sector 0 (a whole logical sector).
    pub sector0: &'a [u8],
    /// The GPT headers read (primary, backup), whose sectors and arrays are zeroed.
    pub headers: Vec<Header>,
    /// The new disk signature (not zero).
    pub signature: u32,
    /// The volume made active.
    pub active: u32,
    /// The disk's size in bytes.
    pub disk_size: u64,
}

/// Plans the conversion of `layout` with the built-in [`Profile`].
pub fn plan(layout: &Layout, req: &Request) -> Result<Plan, Refusal> {
    plan_with(layout, req, Profile::builtin())
}

/// Plans the conversion of `layout` with `profile`.
pub fn plan_with(layout: &Layout, req: &Request, profile: &Profile) -> Result<Plan, Refusal> {
    if layout.partitioning != Partitioning::Gpt {
        return Err(Refusal::NotGpt);
    }
    if !layout.errors.is_empty() {
        return Err(Refusal::Unreadable(layout.errors.clone()));
    }
    let ss = u64::from(layout.sector_size);
    let mut carried: Vec<(u32, &Mapping, u8)> = Vec::new();
    let mut maybe: Vec<(u32, &Mapping)> = Vec::new();
    let mut dropped = Vec::new();
    for v in &layout.volumes {
        let t = v.part_type.to_ascii_lowercase();
        let m = profile
            .to_mbr
            .iter()
            .find(|m| m.type_guid == t)
            .ok_or_else(|| Refusal::UnknownType(v.index, v.part_type.clone()))?;
        let kind = *m.by_content.get(content_key(v.content)).unwrap_or(&m.mbr);
        match m.carry.as_str() {
            "must" => carried.push((v.index, m, kind)),
            "if-room" => maybe.push((v.index, m)),
            _ => dropped.push(Dropped {
                volume: v.index,
                what: m.what.clone(),
                why: "it holds nothing an MBR disk uses".into(),
            }),
        }
    }
    if carried.len() > 4 {
        return Err(Refusal::TooMany(carried.iter().map(|c| c.0).collect()));
    }
    if let Some(c) = carried.iter().find(|c| c.0 > 4) {
        return Err(Refusal::PastEntry4(c.0));
    }
    for (index, m) in maybe {
        if index <= 4 {
            carried.push((index, m, m.mbr));
        } else {
            dropped.push(Dropped {
                volume: index,
                what: m.what.clone(),
                why: format!("it is GPT entry {index}, past the MBR's four"),
            });
        }
    }
    carried.sort_by_key(|c| c.0);
    if !carried.iter().any(|c| c.0 == req.active) {
        return Err(Refusal::ActiveNotCarried(req.active));
    }
    let mut entries = Vec::new();
    for (index, m, kind) in carried {
        let Some(v) = layout.volumes.iter().find(|v| v.index == index) else {
            continue;
        };
        let first = v.offset / ss;
        let count = v.size / ss;
        let last = (first + count).saturating_sub(1);
        let (Ok(first_lba), Ok(sectors), true) = (
            u32::try_from(first),
            u32::try_from(count),
            last <= u64::from(u32::MAX),
        ) else {
            return Err(Refusal::Past32Bit {
                volume: index,
                last_lba: last,
                sector_size: layout.sector_size,
            });
        };
        entries.push(Entry {
            slot: index,
            kind,
            first_lba,
            sectors,
            active: index == req.active,
            what: m.what.clone(),
        });
    }
    let sector0 = sector0(req.sector0, req.signature, &entries);
    let mut zero = Vec::new();
    let mut notes = Vec::new();
    for h in &req.headers {
        let array = (u64::from(h.entry_count) * u64::from(h.entry_size)).div_ceil(ss) * ss;
        for (what, lba, len) in [
            ("header", h.my_lba, ss),
            ("entry array", h.entries_lba, array),
        ] {
            let at = lba.saturating_mul(ss);
            match outside(layout, at, len, req.disk_size) {
                Ok(()) => zero.push((at, len)),
                Err(why) => notes.push(format!(
                    "the GPT {what} at LBA {lba} (named by the header at LBA {}) is left as \
                     it is: {why}",
                    h.my_lba
                )),
            }
        }
    }
    zero.sort_unstable();
    zero.dedup();
    Ok(Plan {
        signature: req.signature,
        entries,
        dropped,
        sector0,
        zero,
        notes,
    })
}

/// Whether `len` bytes at `at` may be zeroed: past sector 0, inside the disk, outside every
/// partition, no larger than a GPT entry array is read.
fn outside(layout: &Layout, at: u64, len: u64, disk_size: u64) -> Result<(), String> {
    if len > crate::gpt::MAX_ARRAY {
        return Err(format!("{len} bytes, more than a GPT array rehost reads"));
    }
    let end = at
        .checked_add(len)
        .filter(|e| *e <= disk_size && at >= u64::from(layout.sector_size))
        .ok_or_else(|| "it lies outside the disk or over sector 0".to_string())?;
    match layout
        .volumes
        .iter()
        .find(|v| at < v.offset.saturating_add(v.size) && v.offset < end)
    {
        Some(v) => Err(format!("it lies in partition {}", v.index)),
        None => Ok(()),
    }
}

/// The key of `by_content` for what a volume holds.
fn content_key(c: Content) -> &'static str {
    c.name()
}

/// The new sector 0: the old one's boot code (and, on a larger sector, its bytes past the
/// MBR), `signature` at 440, two zero bytes, the four entries, 0x55AA.
fn sector0(old: &[u8], signature: u32, entries: &[Entry]) -> Vec<u8> {
    let mut s = old.to_vec();
    if s.len() < 512 {
        s.resize(512, 0);
    }
    s[SIGNATURE..SIGNATURE + 4].copy_from_slice(&signature.to_le_bytes());
    s[444..446].fill(0);
    s[TABLE..510].fill(0);
    for e in entries {
        let o = TABLE + 16 * (e.slot as usize - 1);
        let last = u64::from(e.first_lba) + u64::from(e.sectors).saturating_sub(1);
        s[o] = if e.active { ACTIVE } else { 0 };
        s[o + 1..o + 4].copy_from_slice(&chs(u64::from(e.first_lba)));
        s[o + 4] = e.kind;
        s[o + 5..o + 8].copy_from_slice(&chs(last));
        s[o + 8..o + 12].copy_from_slice(&e.first_lba.to_le_bytes());
        s[o + 12..o + 16].copy_from_slice(&e.sectors.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

#[cfg(test)]
mod tests;
