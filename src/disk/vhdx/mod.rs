//! VHDX containers (Hyper-V 2012+, Azure): fixed, dynamic and differencing, with the log
//! replayed in memory when the image was not closed cleanly.
//!
//! One file per on-disk structure: [`header`] (file identifier, headers, region table),
//! [`log`] (log replay), [`metadata`] (the metadata region), [`bat`] (block allocation
//! table); [`source`] is the file as seen through the replayed log.

pub mod bat;
pub mod header;
pub mod log;
pub mod metadata;
pub mod source;

use super::{Container, DiskInfo, Format, HostFile, ParentOpener, ReadAt, Subformat};
use crate::error::{Ctx, Layer, Result};
use bat::Geometry;
use metadata::Metadata;
use source::Source;
use std::sync::Arc;

/// An opened VHDX image.
pub struct Vhdx {
    src: Source,
    ctx: Ctx,
    info: DiskInfo,
    meta: Metadata,
    geometry: Geometry,
    bat: Vec<u64>,
    bat_offset: u64,
    parent: Option<Arc<dyn Container>>,
}

impl Vhdx {
    /// Opens a VHDX image: headers, log (replayed in memory), regions, metadata, BAT, and
    /// the parent of a differencing disk.
    pub fn open(file: HostFile, parents: &ParentOpener) -> Result<Self> {
        let ctx = file.ctx().with_layer(Layer::Vhdx);
        let path = file.name().to_string();
        let mut src = Source::new(file, ctx.clone());
        let mut notes = Vec::new();
        let (h, note) = header::current_header(&src, &ctx)?;
        notes.extend(note);
        let replayed = log::replay(&mut src, &h, &ctx)?;
        if replayed > 0 {
            notes.push(format!(
                "log replayed in memory: {replayed} entries (the file is unchanged)"
            ));
        }
        let (regions, note) = header::regions(&src, &ctx)?;
        notes.extend(note);
        let find = |g: &str| regions.iter().find(|r| r.guid == g).cloned();
        if let Some(r) = regions.iter().find(|r| {
            r.required && r.guid != header::BAT_REGION && r.guid != header::METADATA_REGION
        }) {
            return Err(ctx.unsupported(
                header::REGION_OFFSETS[0],
                format!("required region {} is not known", r.guid),
            ));
        }
        let (Some(bat_r), Some(meta_r)) = (find(header::BAT_REGION), find(header::METADATA_REGION))
        else {
            return Err(ctx.corrupt(
                header::REGION_OFFSETS[0],
                "region table lacks the BAT or the metadata region",
            ));
        };
        let meta = metadata::read(&src, meta_r.offset, meta_r.length, &ctx)?;
        let geometry = Geometry::new(
            meta.virtual_size,
            meta.block_size,
            meta.logical_sector_size,
            meta.has_parent,
        );
        if geometry.entries * 8 > bat_r.length as u64 {
            return Err(ctx.corrupt(
                bat_r.offset,
                format!(
                    "BAT region of {} bytes cannot hold {} entries",
                    bat_r.length, geometry.entries
                ),
            ));
        }
        let mut raw = vec![0u8; (geometry.entries * 8) as usize];
        src.read(bat_r.offset, &mut raw)?;
        let bat = raw.chunks_exact(8).map(|c| header::le64(c, 0)).collect();
        let parent = if meta.has_parent {
            Some(open_parent(&src, &path, &meta, parents, &ctx)?)
        } else {
            None
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
            virtual_size: meta.virtual_size,
            logical_sector_size: meta.logical_sector_size,
            physical_sector_size: meta.physical_sector_size,
            block_size: Some(meta.block_size),
            disk_id: Some(meta.disk_id.clone()),
            data_write_guid: Some(h.data_write_guid.clone()),
            notes,
            parent: parent.as_ref().map(|p| Box::new(p.info().clone())),
        };
        Ok(Vhdx {
            src,
            ctx,
            info,
            meta,
            geometry,
            bat,
            bat_offset: bat_r.offset,
            parent,
        })
    }

    fn entry_error(&self, index: usize, msg: String) -> crate::Error {
        self.ctx.corrupt(self.bat_offset + index as u64 * 8, msg)
    }

    /// Reads `buf` from payload block `block` at `within` bytes into it.
    fn read_block(&self, block: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        let index = self.geometry.payload_index(block);
        let entry = self.bat[index];
        let virt = block * self.meta.block_size as u64 + within;
        match bat::state(entry) {
            bat::FULLY_PRESENT => self.read_payload(index, entry, within, buf),
            bat::NOT_PRESENT => match &self.parent {
                Some(p) => super::read_parent(p.as_ref(), virt, buf),
                None => {
                    buf.fill(0);
                    Ok(())
                }
            },
            bat::UNDEFINED | bat::ZERO | bat::UNMAPPED => {
                buf.fill(0);
                Ok(())
            }
            bat::PARTIALLY_PRESENT => {
                let Some(parent) = &self.parent else {
                    return Err(self.entry_error(
                        index,
                        format!(
                            "BAT entry {index}: partially present block in a disk without parent"
                        ),
                    ));
                };
                self.read_partial(block, index, entry, within, buf, parent.as_ref())
            }
            s => Err(self.entry_error(index, format!("BAT entry {index} has reserved state {s}"))),
        }
    }

    fn read_payload(&self, index: usize, entry: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        let at = bat::file_offset(entry);
        let end = at + within + buf.len() as u64;
        if at < 1 << 20 || end > self.src.size() {
            return Err(self.entry_error(
                index,
                format!(
                    "BAT entry {index} points at {at:#x}, outside the file ({} bytes)",
                    self.src.size()
                ),
            ));
        }
        self.src.read(at + within, buf)
    }

    /// A partially present block: sectors whose bit is set come from this file, the others
    /// from the parent. Bit 0 of byte 0 of the bitmap is the chunk's first sector.
    fn read_partial(
        &self,
        block: u64,
        index: usize,
        entry: u64,
        within: u64,
        buf: &mut [u8],
        parent: &dyn Container,
    ) -> Result<()> {
        let bi = self.geometry.bitmap_index(block);
        let sb = *self
            .bat
            .get(bi)
            .ok_or_else(|| self.entry_error(bi, format!("BAT has no sector bitmap entry {bi}")))?;
        if bat::state(sb) != bat::SB_PRESENT {
            return Err(self.entry_error(
                bi,
                format!(
                    "sector bitmap entry {bi} is not present for partially present block {block}"
                ),
            ));
        }
        let sbat = bat::file_offset(sb);
        if sbat < 1 << 20 || sbat + (1 << 20) > self.src.size() {
            return Err(self.entry_error(
                bi,
                format!("sector bitmap entry {bi} points at {sbat:#x}, outside the file"),
            ));
        }
        let ss = self.meta.logical_sector_size as u64;
        let bs = self.meta.block_size as u64;
        let block_start = block * bs;
        // Sector number within the chunk of the first sector read.
        let chunk_first = (block % self.geometry.chunk_ratio) * (bs / ss);
        let first = within / ss;
        let last = (within + buf.len() as u64 - 1) / ss;
        let (lo, hi) = ((chunk_first + first) / 8, (chunk_first + last) / 8);
        let mut bits = vec![0u8; (hi - lo + 1) as usize];
        self.src.read(sbat + lo, &mut bits)?;
        let present = |s: u64| {
            let n = chunk_first + s;
            bits[(n / 8 - lo) as usize] & (1 << (n % 8)) != 0
        };
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = within + pos as u64;
            let s = off / ss;
            let here = present(s);
            let mut e = s + 1;
            while e <= last && present(e) == here {
                e += 1;
            }
            let n = ((e * ss).min(within + buf.len() as u64) - off) as usize;
            let piece = &mut buf[pos..pos + n];
            if here {
                self.read_payload(index, entry, off, piece)?;
            } else {
                super::read_parent(parent, block_start + off, piece)?;
            }
            pos += n;
        }
        Ok(())
    }
}

impl ReadAt for Vhdx {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let size = self.meta.virtual_size;
        if !super::in_bounds(offset, buf.len(), size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, size));
        }
        let bs = self.meta.block_size as u64;
        super::for_each_block(offset, buf, bs, |block, within, piece| {
            self.read_block(block, within, piece)
        })
    }

    fn size(&self) -> u64 {
        self.meta.virtual_size
    }
}

impl Container for Vhdx {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}

/// Finds the parent through the locator (relative path, then volume path, then absolute
/// path) and checks that its DataWriteGuid is the linkage the child recorded.
fn open_parent(
    src: &Source,
    path: &str,
    meta: &Metadata,
    parents: &ParentOpener,
    ctx: &Ctx,
) -> Result<Arc<dyn Container>> {
    let value = |k: &str| {
        meta.parent_locator
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let linkage: Vec<String> = ["parent_linkage", "parent_linkage2"]
        .iter()
        .filter_map(|k| value(k))
        .map(|v| v.trim_matches(['{', '}']).to_lowercase())
        .collect();
    if linkage.is_empty() {
        return Err(ctx.corrupt(0, "parent locator has no parent_linkage"));
    }
    let child = std::path::Path::new(path);
    let mut tried = Vec::new();
    for key in ["relative_path", "volume_path", "absolute_win32_path"] {
        let Some(written) = value(key) else { continue };
        for candidate in super::parent_candidates(child, &written) {
            if tried.contains(&candidate) {
                continue;
            }
            tried.push(candidate.clone());
            if !candidate.is_file() {
                continue;
            }
            let parent = parents.open_parent(ctx, &candidate)?;
            let have = parent.info().data_write_guid.clone().unwrap_or_default();
            if parent.info().format != Format::Vhdx || !linkage.contains(&have) {
                return Err(ctx.corrupt(
                    0,
                    format!(
                        "parent {} has DataWriteGuid {have}, the child links to {}",
                        candidate.display(),
                        linkage.join(" or ")
                    ),
                ));
            }
            if parent.info().logical_sector_size != meta.logical_sector_size {
                return Err(ctx.corrupt(0, "parent and child have different logical sector sizes"));
            }
            return Ok(parent);
        }
    }
    let _ = src;
    Err(ctx.error(
        crate::Location::Offset(0),
        crate::ErrorKind::NotFound(format!(
            "the parent of this differencing disk is not found (looked for: {})",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    ))
}
