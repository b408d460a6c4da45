//! The one write of a partition table a session stages: the MBR's active flag, the status
//! byte of each of the four primary entries (0x80 for the partition the BIOS boot code
//! starts, 0x00 for the others). Partitions do not move, so the layout read at open still
//! holds but for that flag ([`Image::staged_layout`]).

use super::Image;
use rehost_core::error::Result;
use rehost_core::io::{ReadAt, WriteAt};
use rehost_volume::Partitioning;

/// Where the MBR's partition entries begin.
pub const PARTITION_TABLE: u64 = 0x1BE;
/// The size of one entry.
pub const ENTRY_SIZE: u64 = 16;
/// The status byte of the active entry.
pub const ACTIVE: u8 = 0x80;

impl Image {
    /// Stages the MBR's status bytes so that primary partition `index` (1 to 4) is the only
    /// active one. Refused: a disk that is not MBR, a logical partition (the BIOS boot code
    /// starts only primaries), a sector 0 that no longer ends in 0x55AA. Only the bytes that
    /// change are staged; the commit journals them like any other write.
    pub fn set_active(&self, index: u32) -> Result<()> {
        let overlay = self.staging_overlay()?;
        let layout = self.layout();
        if layout.partitioning != Partitioning::Mbr {
            return Err(self.ctx().unsupported(
                0,
                "only an MBR disk has an active partition to set".to_string(),
            ));
        }
        let v = self.volume(index)?;
        if v.logical || !(1..=4).contains(&index) {
            return Err(self.ctx().unsupported(
                0,
                format!(
                    "volume {index} is a logical partition: the BIOS boot code starts only \
                     a primary one"
                ),
            ));
        }
        let mut sector = [0u8; 512];
        self.reader().read_at(0, &mut sector)?;
        if sector[510..512] != [0x55, 0xAA] {
            return Err(self
                .ctx()
                .corrupt(510, "sector 0 does not end in the MBR signature 0x55AA"));
        }
        for slot in 0..4u64 {
            let at = PARTITION_TABLE + slot * ENTRY_SIZE;
            let old = sector[at as usize];
            let new = if slot + 1 == index as u64 {
                ACTIVE
            } else {
                old & !ACTIVE
            };
            if new != old {
                overlay.write_at(at, &[new])?;
            }
        }
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(index);
        Ok(())
    }
}
