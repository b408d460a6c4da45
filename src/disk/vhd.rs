//! Vhd containers (stub: being written).

use super::{Container, DiskInfo, HostFile, ParentOpener, ReadAt};
use crate::error::{Layer, Result};

/// An opened Vhd image.
pub struct Vhd {
    info: DiskInfo,
}

impl Vhd {
    /// Opens a Vhd image.
    pub fn open(file: HostFile, _parents: &ParentOpener) -> Result<Self> {
        Err(super::detect::ctx_for(&file, Layer::Vhd).unsupported(0, "not yet implemented"))
    }
}

impl ReadAt for Vhd {
    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> Result<()> {
        unreachable!()
    }
    fn size(&self) -> u64 {
        self.info.virtual_size
    }
}

impl Container for Vhd {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}
