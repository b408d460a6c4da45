//! Why a disk is not converted.

use std::fmt;

/// Why [`super::plan`] does not convert a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The disk is GPT already.
    AlreadyGpt,
    /// The disk has no partition table.
    NoPartitionTable,
    /// A logical sector size other than 512 or 4096.
    SectorSize(u32),
    /// The partition table could not be read whole (its errors).
    Unreadable(Vec<String>),
    /// A partition whose type the data file refuses (index, type, the reason).
    Type(u32, u8, String),
    /// A partition whose type the data file does not map (index, type).
    UnknownType(u32, String),
    /// Two partitions overlap (their indexes).
    Overlap(u32, u32),
    /// More entries than a GPT of 128 holds.
    TooManyPartitions(usize),
    /// The first partition starts inside the primary GPT's sectors.
    NoRoomForPrimary {
        /// The partition's index.
        volume: u32,
        /// Its first LBA.
        first_lba: u64,
        /// The first usable LBA of the GPT.
        needed: u64,
    },
    /// The last partition reaches into the backup GPT's sectors and the disk cannot grow.
    NoRoomForBackup {
        /// The last LBA a partition uses.
        last_lba: u64,
        /// The last usable LBA of a GPT on this disk.
        last_usable: u64,
    },
    /// No place for the ESP (the reasons each way failed).
    NoRoomForEsp(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AlreadyGpt => write!(f, "the disk is GPT already"),
            Refusal::NoPartitionTable => write!(f, "the disk has no MBR partition table"),
            Refusal::SectorSize(s) => {
                write!(f, "{s}-byte sectors: a GPT is written with 512 or 4096")
            }
            Refusal::Unreadable(e) => {
                write!(f, "the partition table is not read whole: {}", e.join("; "))
            }
            Refusal::Type(i, t, why) => write!(f, "partition {i} (type {t:#04x}) is {why}"),
            Refusal::UnknownType(i, t) => write!(
                f,
                "partition {i} has MBR type {t}, for which no GPT type is known \
                 (profiles/gpt.toml maps the types a conversion knows)"
            ),
            Refusal::Overlap(a, b) => write!(f, "partitions {a} and {b} overlap"),
            Refusal::TooManyPartitions(n) => write!(
                f,
                "{n} partitions with the ESP: a GPT of 128 entries does not hold them"
            ),
            Refusal::NoRoomForPrimary {
                volume,
                first_lba,
                needed,
            } => write!(
                f,
                "partition {volume} starts at sector {first_lba}: the protective MBR, the \
                 primary GPT header and its array need sectors 0..{needed}"
            ),
            Refusal::NoRoomForBackup {
                last_lba,
                last_usable,
            } => write!(
                f,
                "a partition reaches sector {last_lba}, past {last_usable}: the backup GPT \
                 needs the sectors after it and the disk cannot grow"
            ),
            Refusal::NoRoomForEsp(why) => write!(f, "no room for an EFI system partition: {why}"),
        }
    }
}

impl std::error::Error for Refusal {}
