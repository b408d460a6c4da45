//! Planning the conversion of an MBR disk to GPT, as a pure function of its [`Layout`].
//!
//! [`plan`] maps every MBR partition, primary or logical, to a GPT entry at the same
//! offset and length with the type `profiles/gpt.toml` gives its MBR type; finds where the
//! EFI system partition goes (an ESP already there, free space, a System Reserved
//! partition taken over as MBR2GPT does, or space added at the end of a disk that may
//! grow) and says why; adds a Microsoft reserved partition where there is room. A disk it
//! cannot convert gets a [`Refusal`] that says why. Nothing is read or written: the plan
//! becomes a [`Table`] for [`crate::gpt_write::build`].
//!
//! Logical partitions map like primary ones: GPT has no extended partitions, so each
//! logical becomes an entry of its own and its extended boot record is left behind in
//! space no entry covers.

use crate::gpt_write::{self, Partition, Table};
use crate::{Content, Layout, Partitioning};
use serde::Deserialize;
use std::sync::OnceLock;
use uuid::Uuid;

const MIB: u64 = 1 << 20;

/// The conversion data (`profiles/gpt.toml`).
#[derive(Debug, Deserialize)]
pub struct Profile {
    /// The EFI system partition added.
    pub esp: Esp,
    /// The Microsoft reserved partition added where there is room.
    pub msr: Msr,
    /// Which NTFS volume may be taken as the ESP.
    pub system_reserved: SystemReserved,
    /// MBR types and their GPT entries.
    pub map: Vec<Mapping>,
    /// MBR types that stop a conversion.
    pub refuse: Vec<Refuse>,
}

/// The ESP's entry and size.
#[derive(Debug, Deserialize)]
pub struct Esp {
    /// Type GUID.
    #[serde(rename = "type", deserialize_with = "guid")]
    pub type_guid: Uuid,
    /// Partition name.
    pub name: String,
    /// Attribute bit numbers.
    pub attributes: Vec<u8>,
    /// Size in MiB on disks of 512-byte sectors.
    pub mib_512: u64,
    /// Size in MiB on disks of 4 KiB sectors.
    pub mib_4096: u64,
}

/// The MSR's entry and size.
#[derive(Debug, Deserialize)]
pub struct Msr {
    /// Type GUID.
    #[serde(rename = "type", deserialize_with = "guid")]
    pub type_guid: Uuid,
    /// Partition name.
    pub name: String,
    /// Attribute bit numbers.
    pub attributes: Vec<u8>,
    /// Size in MiB.
    pub mib: u64,
}

/// Which NTFS volume counts as System Reserved.
#[derive(Debug, Deserialize)]
pub struct SystemReserved {
    /// Largest size in MiB.
    pub max_mib: u64,
}

/// MBR types that become one GPT type.
#[derive(Debug, Deserialize)]
pub struct Mapping {
    /// What these types hold, for messages.
    pub what: String,
    /// The MBR type bytes.
    pub mbr: Vec<u8>,
    /// The GPT type GUID.
    #[serde(rename = "type", deserialize_with = "guid")]
    pub type_guid: Uuid,
    /// The GPT partition name.
    pub name: String,
    /// Attribute bit numbers.
    pub attributes: Vec<u8>,
}

/// MBR types that stop a conversion, and why.
#[derive(Debug, Deserialize)]
pub struct Refuse {
    /// The MBR type bytes.
    pub mbr: Vec<u8>,
    /// Why.
    pub reason: String,
}

impl Profile {
    /// The table built into rehost.
    pub fn builtin() -> &'static Profile {
        static P: OnceLock<Profile> = OnceLock::new();
        P.get_or_init(|| {
            toml::from_str(include_str!("../../../profiles/gpt.toml"))
                .expect("the built-in GPT conversion table parses (a unit test checks it)")
        })
    }

    /// The ESP size for a sector size, in bytes.
    pub fn esp_size(&self, sector_size: u32) -> u64 {
        if sector_size >= 4096 {
            self.esp.mib_4096 * MIB
        } else {
            self.esp.mib_512 * MIB
        }
    }
}

/// A GUID from its text in the data file.
fn guid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// An attribute mask from bit numbers (numbers over 63 ignored).
fn mask(bits: &[u8]) -> u64 {
    bits.iter()
        .filter(|b| **b < 64)
        .fold(0, |m, b| m | 1u64 << b)
}

/// What the caller allows and knows.
#[derive(Debug, Clone)]
pub struct Request {
    /// Disk size in bytes.
    pub disk_size: u64,
    /// ESP size in bytes ([`Profile::esp_size`] unless the caller wants more).
    pub esp_size: u64,
    /// The container can grow at its end.
    pub can_grow: bool,
    /// A System Reserved partition may be reformatted as the ESP.
    pub reuse_system_reserved: bool,
    /// The volumes (layout indexes) holding an install: never taken as the ESP.
    pub install_volumes: Vec<u32>,
}

/// Where the ESP comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspSource {
    /// An MBR partition of type 0xEF, kept.
    Existing {
        /// Its layout index.
        volume: u32,
    },
    /// Free space between or after the partitions.
    FreeSpace,
    /// A System Reserved partition, reformatted FAT32.
    SystemReserved {
        /// Its layout index.
        volume: u32,
    },
    /// Space added at the end of the disk.
    Grown,
}

/// A GPT entry of the plan and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The MBR partition of this layout index, at its offset.
    Mbr(u32),
    /// The ESP (which may also be an MBR partition taken over: see [`EspSource`]).
    Esp,
    /// The Microsoft reserved partition.
    Msr,
}

/// A planned GPT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it comes from.
    pub origin: Origin,
    /// The entry (its unique GUID left to the writer).
    pub partition: Partition,
}

/// The conversion of one disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Sector size.
    pub sector_size: u32,
    /// Disk size after the conversion, in bytes.
    pub disk_size: u64,
    /// Bytes added at the end of the disk (0: none).
    pub grow_by: u64,
    /// The entries in disk order.
    pub entries: Vec<Entry>,
    /// Where the ESP comes from.
    pub esp_source: EspSource,
    /// Why there, in words.
    pub esp_reason: String,
    /// Why there is or is no MSR, in words.
    pub msr_reason: String,
    /// Things worth telling (partitions off 1 MiB, EBRs left behind).
    pub notes: Vec<String>,
}

impl Plan {
    /// The table to write; `old_mbr` is the disk's present sector 0 (boot code and disk
    /// signature kept).
    pub fn table(&self, old_mbr: Option<Vec<u8>>) -> Table {
        Table {
            disk_size: self.disk_size,
            sector_size: self.sector_size,
            disk_guid: None,
            old_mbr,
            partitions: self.entries.iter().map(|e| e.partition.clone()).collect(),
        }
    }

    /// The ESP's entry.
    pub fn esp(&self) -> Option<&Partition> {
        self.entries
            .iter()
            .find(|e| e.origin == Origin::Esp)
            .map(|e| &e.partition)
    }
}

mod refusal;
mod space;
pub use refusal::Refusal;

/// Plans the conversion of `layout` with the built-in [`Profile`].
pub fn plan(layout: &Layout, req: &Request) -> Result<Plan, Refusal> {
    plan_with(layout, req, Profile::builtin())
}

/// Plans the conversion of `layout` with `profile`.
pub fn plan_with(layout: &Layout, req: &Request, profile: &Profile) -> Result<Plan, Refusal> {
    match layout.partitioning {
        Partitioning::Mbr => {}
        Partitioning::Gpt => return Err(Refusal::AlreadyGpt),
        Partitioning::None => return Err(Refusal::NoPartitionTable),
    }
    let ss = layout.sector_size;
    if ss != 512 && ss != 4096 {
        return Err(Refusal::SectorSize(ss));
    }
    if !layout.errors.is_empty() {
        return Err(Refusal::Unreadable(layout.errors.clone()));
    }
    let ssu = ss as u64;
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for v in &layout.volumes {
        let kind = u8::from_str_radix(v.part_type.trim_start_matches("0x"), 16)
            .map_err(|_| Refusal::UnknownType(v.index, v.part_type.clone()))?;
        if let Some(r) = profile.refuse.iter().find(|r| r.mbr.contains(&kind)) {
            return Err(Refusal::Type(v.index, kind, r.reason.clone()));
        }
        let m = profile
            .map
            .iter()
            .find(|m| m.mbr.contains(&kind))
            .ok_or_else(|| Refusal::UnknownType(v.index, v.part_type.clone()))?;
        if v.offset % ssu != 0 || v.size % ssu != 0 || v.size == 0 {
            return Err(Refusal::Unreadable(vec![format!(
                "partition {} is not a whole number of sectors",
                v.index
            )]));
        }
        let first = v.offset / ssu;
        if v.offset % MIB != 0 {
            notes.push(format!(
                "partition {} starts at sector {first}, not on a 1 MiB boundary: it keeps its offset",
                v.index
            ));
        }
        let origin = if m.type_guid == profile.esp.type_guid {
            Origin::Esp
        } else {
            Origin::Mbr(v.index)
        };
        entries.push(Entry {
            origin,
            partition: Partition {
                first_lba: first,
                last_lba: first + v.size / ssu - 1,
                type_guid: m.type_guid,
                unique_guid: None,
                attributes: mask(&m.attributes),
                name: m.name.clone(),
            },
        });
    }
    if layout.volumes.iter().any(|v| v.logical) {
        notes.push(
            "logical partitions become GPT entries of their own; their extended boot records \
             are left in space no entry covers"
                .into(),
        );
    }
    entries.sort_by_key(|e| e.partition.first_lba);
    for w in entries.windows(2) {
        if w[1].partition.first_lba <= w[0].partition.last_lba {
            return Err(Refusal::Overlap(
                origin_index(layout, &w[0]),
                origin_index(layout, &w[1]),
            ));
        }
    }
    if let Some(first) = entries.first() {
        let need = gpt_write::first_usable_lba(ss);
        if first.partition.first_lba < need {
            return Err(Refusal::NoRoomForPrimary {
                volume: origin_index(layout, first),
                first_lba: first.partition.first_lba,
                needed: need,
            });
        }
    }
    space::place(layout, req, profile, entries, notes)
}

/// The layout index of an entry made from an MBR partition (0 for an added one).
fn origin_index(layout: &Layout, e: &Entry) -> u32 {
    match e.origin {
        Origin::Mbr(i) => i,
        _ => layout
            .volumes
            .iter()
            .find(|v| v.offset / layout.sector_size as u64 == e.partition.first_lba)
            .map_or(0, |v| v.index),
    }
}

/// Whether a volume may be taken over as the ESP: active, primary, NTFS, small, no install.
fn is_system_reserved(v: &crate::VolumeInfo, req: &Request, profile: &Profile) -> bool {
    v.bootable
        && !v.logical
        && v.content == Content::Ntfs
        && v.size <= profile.system_reserved.max_mib * MIB
        && !req.install_volumes.contains(&v.index)
}

#[cfg(test)]
mod tests;
