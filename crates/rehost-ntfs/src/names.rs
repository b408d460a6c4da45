//! `$FILE_NAME` and `$STANDARD_INFORMATION` values.

use super::le::{u32_at, u64_at, utf16_at};

/// Name space of a `$FILE_NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// Case-sensitive name (any character but `/` and NUL).
    Posix,
    /// Long Windows name.
    Win32,
    /// 8.3 name only.
    Dos,
    /// A name valid as both long and 8.3 name.
    Win32AndDos,
}

/// A `$FILE_NAME` value (also the key of every `$I30` index entry).
#[derive(Debug, Clone)]
pub struct FileName {
    /// Record number of the parent directory.
    pub parent: u64,
    /// Sequence number of the parent directory.
    pub parent_sequence: u16,
    /// Creation time (FILETIME).
    pub created: u64,
    /// Modification time (FILETIME).
    pub modified: u64,
    /// Allocated size as recorded in the name (may lag behind the record).
    pub allocated_size: u64,
    /// Data size as recorded in the name (may lag behind the record).
    pub data_size: u64,
    /// File attribute flags (`FILE_ATTRIBUTE_*`; 0x10000000 marks a directory).
    pub file_attributes: u32,
    /// Name space.
    pub namespace: Namespace,
    /// The name, UTF-16 code units.
    pub name: Vec<u16>,
}

/// `FILE_ATTRIBUTE_DIRECTORY` as `$FILE_NAME` records it for indexed directories.
pub const FILE_NAME_INDEX_PRESENT: u32 = 0x1000_0000;

impl FileName {
    /// Parses a `$FILE_NAME` value; `None` if it does not fit its bytes.
    pub fn parse(b: &[u8]) -> Option<FileName> {
        if b.len() < 0x42 {
            return None;
        }
        let len = b[0x40] as usize;
        let namespace = match b[0x41] {
            0 => Namespace::Posix,
            1 => Namespace::Win32,
            2 => Namespace::Dos,
            _ => Namespace::Win32AndDos,
        };
        let parent_ref = u64_at(b, 0);
        Some(FileName {
            parent: parent_ref & 0x0000_FFFF_FFFF_FFFF,
            parent_sequence: (parent_ref >> 48) as u16,
            created: u64_at(b, 0x08),
            modified: u64_at(b, 0x10),
            allocated_size: u64_at(b, 0x28),
            data_size: u64_at(b, 0x30),
            file_attributes: u32_at(b, 0x38),
            namespace,
            name: utf16_at(b, 0x42, len)?,
        })
    }

    /// The name as a string (unpaired surrogates replaced).
    pub fn name_string(&self) -> String {
        String::from_utf16_lossy(&self.name)
    }

    /// Whether the entry names a directory.
    pub fn is_dir(&self) -> bool {
        self.file_attributes & FILE_NAME_INDEX_PRESENT != 0
    }
}

/// A `$STANDARD_INFORMATION` value.
#[derive(Debug, Clone)]
pub struct StandardInformation {
    /// Creation time (FILETIME).
    pub created: u64,
    /// Modification time (FILETIME).
    pub modified: u64,
    /// File attribute flags (`FILE_ATTRIBUTE_*`).
    pub file_attributes: u32,
    /// Security id in `$Secure` (NTFS 3.0+).
    pub security_id: Option<u32>,
}

impl StandardInformation {
    /// Parses a `$STANDARD_INFORMATION` value; `None` if shorter than its NTFS 1.2 form.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 0x30 {
            return None;
        }
        Some(StandardInformation {
            created: u64_at(b, 0),
            modified: u64_at(b, 8),
            file_attributes: u32_at(b, 0x20),
            security_id: (b.len() >= 0x48).then(|| u32_at(b, 0x34)),
        })
    }
}
