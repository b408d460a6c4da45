//! VHDX containers (Hyper-V 2012 and later, Azure): fixed, dynamic and differencing disks,
//! with the log replayed in memory when the image was not closed cleanly.
//!
//! Opening reads, in order: the file type identifier and the current header (`header`), the
//! log when the header says it must be replayed (`log`, laid over the file by `source`),
//! the region table (`region`), the metadata (`metadata`, with the parent `locator` of a
//! differencing disk) and the block allocation table (`bat`): one file per on-disk
//! structure. Reads of the virtual disk then go through `read`, which issues one host read
//! per run of blocks stored back to back. The file is never written.
//!
//! Reference: Microsoft, "[MS-VHDX]: Virtual Hard Disk v2 (VHDX) File Format".

mod bat;
mod entry;
mod fields;
mod grow;
mod header;
mod locator;
mod log;
mod metadata;
mod read;
mod region;
mod source;
mod write;

use super::{Container, DiskInfo, Format, HostFile, ParentOpener, ReadAt, Subformat};
use bat::Bat;
use rehost_core::error::{Ctx, Layer, Result};
use source::Source;
use std::path::Path;
use std::sync::Arc;

/// An opened VHDX image: a [`ReadAt`] over its virtual disk.
pub struct Vhdx {
    src: Source,
    ctx: Ctx,
    info: DiskInfo,
    bat: Bat,
    logical_sector_size: u64,
    parent: Option<Arc<dyn Container>>,
    header: header::Header,
    regions: region::Regions,
    /// File offset of the virtual disk size metadata item.
    virtual_size_at: u64,
    /// The file parameters' LeaveBlockAllocated flag (a fixed VHDX).
    leave_allocated: bool,
}

impl Vhdx {
    /// Opens a VHDX image: headers, the log (replayed in memory), the region table, the
    /// metadata, the BAT and, for a differencing disk, its parent through `parents`, whose
    /// identity is checked against the child's parent linkage.
    pub fn open(file: HostFile, parents: &ParentOpener) -> Result<Self> {
        let ctx = file.ctx().with_layer(Layer::Vhdx);
        let path = file.name().to_string();
        header::check_identifier(&file, &ctx)?;
        let (h, note) = header::current(&file, &ctx)?;
        let mut notes: Vec<String> = note.into_iter().collect();
        let mut src = Source::new(file, ctx.clone());
        let replayed = log::replay(&mut src, &h, &ctx)?;
        if replayed > 0 {
            notes.push(format!(
                "log replayed in memory: {replayed} entries (the file is unchanged)"
            ));
        }
        let (regions, note) = region::read(&src, &ctx)?;
        notes.extend(note);
        let meta = metadata::read(&src, regions.metadata, &ctx)?;
        let bat = Bat::read(
            &src,
            regions.bat,
            meta.virtual_size,
            meta.block_size,
            meta.logical_sector_size,
            meta.has_parent,
            &ctx,
        )?;
        let parent = match &meta.locator {
            Some(l) => Some(locator::open_parent(
                l,
                Path::new(&path),
                meta.logical_sector_size,
                parents,
                &ctx,
            )?),
            None => None,
        };
        let subformat = if meta.has_parent {
            Subformat::Differencing
        } else if meta.leave_blocks_allocated {
            Subformat::Fixed
        } else {
            Subformat::Dynamic
        };
        let info = DiskInfo {
            path,
            format: Format::Vhdx,
            subformat,
            variant: None,
            virtual_size: meta.virtual_size,
            logical_sector_size: meta.logical_sector_size,
            physical_sector_size: meta.physical_sector_size,
            block_size: Some(meta.block_size),
            disk_id: Some(meta.disk_id.to_string()),
            data_write_guid: Some(h.data_write_guid.to_string()),
            notes,
            parent: parent.as_ref().map(|p| Box::new(p.info().clone())),
            stored_hashes: Vec::new(),
        };
        Ok(Vhdx {
            src,
            ctx,
            info,
            bat,
            logical_sector_size: u64::from(meta.logical_sector_size),
            parent,
            header: h,
            regions,
            virtual_size_at: meta.virtual_size_at,
            leave_allocated: meta.leave_blocks_allocated,
        })
    }
}

impl ReadAt for Vhdx {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let size = self.info.virtual_size;
        if !super::in_bounds(offset, buf.len(), size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, size));
        }
        self.read_virtual(offset, buf)
    }

    fn size(&self) -> u64 {
        self.info.virtual_size
    }

    /// The payload blocks the BAT has present (and, for a differencing disk, what its
    /// parent has).
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        let mut ranges = match &self.parent {
            Some(p) => match p.allocated()? {
                Some(r) => r,
                None => return Ok(None),
            },
            None => Vec::new(),
        };
        let (bs, size) = (self.bat.block_size, self.info.virtual_size);
        for block in 0..self.bat.payload_blocks {
            let present = self
                .bat
                .payload(block)
                .is_some_and(|e| matches!(e.state, bat::FULLY_PRESENT | bat::PARTIALLY_PRESENT));
            let at = block * bs;
            if present && at < size {
                ranges.push((at, bs.min(size - at)));
            }
        }
        Ok(Some(rehost_core::io::merge_ranges(ranges)))
    }
}

impl Container for Vhdx {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}
