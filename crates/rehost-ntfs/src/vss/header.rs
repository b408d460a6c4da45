//! The VSS volume header: 512 bytes at offset 0x1E00 of an NTFS volume (inside `$Boot`),
//! present once the Volume Shadow Copy service has prepared the volume. It names the
//! catalog, which lists the shadow copies.

use super::fields::guid_at;
use super::{VSS_IDENTIFIER, VSS_RECORD_VOLUME_HEADER};
use rehost_core::le::{slice, u32_at, u64_at};

/// Where the volume header sits, from the start of the volume.
pub const VOLUME_HEADER_OFFSET: u64 = 0x1E00;
/// Bytes of the volume header read.
pub const VOLUME_HEADER_SIZE: usize = 512;

/// The fields of a volume header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeHeader {
    /// Version: 1 (Windows Vista, 7), 2 (Windows 8 and later).
    pub version: u32,
    /// Record type: 1 for a volume header.
    pub record_type: u32,
    /// Where the header says it is (0x1E00).
    pub current_offset: u64,
    /// Where the catalog's first block is, from the start of the volume; 0 when there is no
    /// catalog (the service prepared the volume, no snapshot is stored).
    pub catalog_offset: u64,
    /// Most bytes the stores may take; 0 when unbounded.
    pub maximum_size: u64,
    /// The volume's identifier (a GUID).
    pub volume_identifier: String,
    /// The identifier of the volume holding the stores (a GUID).
    pub storage_volume_identifier: String,
}

impl VolumeHeader {
    /// The header in `b` (the bytes at 0x1E00), or `None` if they do not start with the
    /// VSS identifier: the volume has no shadow copy structures.
    pub fn parse(b: &[u8]) -> Option<VolumeHeader> {
        if slice(b, 0, 16)? != VSS_IDENTIFIER {
            return None;
        }
        Some(VolumeHeader {
            version: u32_at(b, 16),
            record_type: u32_at(b, 20),
            current_offset: u64_at(b, 24),
            catalog_offset: u64_at(b, 48),
            maximum_size: u64_at(b, 56),
            volume_identifier: guid_at(b, 64),
            storage_volume_identifier: guid_at(b, 80),
        })
    }

    /// What is wrong with the header, if anything: a record type other than a volume
    /// header's, or a current offset other than its own.
    pub fn problem(&self) -> Option<String> {
        if self.record_type != VSS_RECORD_VOLUME_HEADER {
            return Some(format!(
                "the VSS volume header has record type {}, not {VSS_RECORD_VOLUME_HEADER}",
                self.record_type
            ));
        }
        if self.current_offset != VOLUME_HEADER_OFFSET {
            return Some(format!(
                "the VSS volume header says it lies at {:#x}, not {VOLUME_HEADER_OFFSET:#x}",
                self.current_offset
            ));
        }
        None
    }
}
