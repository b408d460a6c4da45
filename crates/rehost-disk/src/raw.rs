//! Raw images: a file or block device holding the disk sector for sector.

use super::{Container, DiskInfo, HostFile, ReadAt};
use rehost_core::error::Result;

/// A raw image: reads go straight to the (memory-mapped) host file.
pub struct Raw {
    file: HostFile,
    info: DiskInfo,
}

impl Raw {
    /// Wraps an opened host file.
    pub fn new(file: HostFile) -> Self {
        let info = DiskInfo::raw(file.name(), file.size());
        Raw { file, info }
    }
}

impl ReadAt for Raw {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.file.size()
    }
}

impl Container for Raw {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}
