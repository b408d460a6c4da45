//! VHD containers (Virtual PC, Hyper-V 2008, Disk2vhd): fixed, dynamic and differencing.
//!
//! A fixed VHD is the disk followed by a 512-byte footer. Dynamic and differencing disks
//! keep a copy of the footer at offset 0, a dynamic header, and a block allocation table
//! (BAT) whose entries point at blocks: a sector bitmap (one bit per 512-byte sector,
//! padded to whole sectors) followed by the block's data. A set bit means the sector is in
//! this file; a clear bit means it reads as zeros (dynamic) or from the parent
//! (differencing). The specification makes the bitmap authoritative for both, and so does
//! this reader.

pub(crate) mod footer;
pub(crate) mod grow;
mod header;
mod write;

pub use footer::{Footer, DIFFERENCING, DYNAMIC, FIXED};
pub use grow::{geometry, MAX_SIZE};
pub use header::{DynamicHeader, Locator};

use super::{Container, DiskInfo, Format, HostFile, ParentOpener, ReadAt, Subformat};
use rehost_core::error::{Ctx, Layer, Result};
use std::sync::Arc;

const SECTOR: u64 = 512;

/// An opened VHD image.
pub struct Vhd {
    file: HostFile,
    ctx: Ctx,
    info: DiskInfo,
    footer: Footer,
    dynamic: Option<Dynamic>,
}

struct Dynamic {
    header: DynamicHeader,
    bat: Vec<u32>,
    bitmap_bytes: u64,
    parent: Option<Arc<dyn Container>>,
}

impl Vhd {
    /// Opens a VHD image, its parents through their locators.
    pub fn open(file: HostFile, parents: &ParentOpener) -> Result<Self> {
        let ctx = file.ctx().with_layer(Layer::Vhd);
        let size = file.size();
        let (footer, mut notes) = read_footer(&file, &ctx)?;
        let dynamic = if footer.disk_type == FIXED {
            if size < footer.current_size + 511 {
                return Err(ctx.corrupt(
                    0,
                    format!(
                        "fixed VHD of {} bytes is truncated: the file holds only {size} bytes",
                        footer.current_size
                    ),
                ));
            }
            None
        } else {
            Some(open_dynamic(&file, &footer, parents, &ctx, &mut notes)?)
        };
        let info = DiskInfo {
            path: file.name().to_string(),
            format: Format::Vhd,
            subformat: match footer.disk_type {
                FIXED => Subformat::Fixed,
                DYNAMIC => Subformat::Dynamic,
                _ => Subformat::Differencing,
            },
            variant: None,
            virtual_size: footer.current_size,
            logical_sector_size: 512,
            physical_sector_size: 512,
            block_size: dynamic.as_ref().map(|d| d.header.block_size),
            disk_id: Some(footer::guid(&footer.unique_id)),
            data_write_guid: None,
            notes,
            parent: dynamic
                .as_ref()
                .and_then(|d| d.parent.as_ref())
                .map(|p| Box::new(p.info().clone())),
            stored_hashes: Vec::new(),
        };
        Ok(Vhd {
            file,
            ctx,
            info,
            footer,
            dynamic,
        })
    }

    /// The footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// Reads `buf` from inside block `block`, at `within` bytes into it.
    fn read_in_block(&self, d: &Dynamic, block: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        let entry = d.bat[block as usize];
        let virt = block * d.header.block_size as u64 + within;
        if entry == u32::MAX {
            return match &d.parent {
                Some(p) => super::read_parent(p.as_ref(), virt, buf),
                None => {
                    buf.fill(0);
                    Ok(())
                }
            };
        }
        let bitmap_at = entry as u64 * SECTOR;
        let data_at = bitmap_at + d.bitmap_bytes;
        let block_end = data_at + d.header.block_size as u64;
        // The last block of a disk whose size is not a multiple of the block size may be
        // stored short; only the part that is read must lie in the file.
        let needed_end = data_at + within + buf.len() as u64;
        if needed_end > self.file.size() {
            return Err(self.ctx.corrupt(
                d.header.table_offset + block * 4,
                format!(
                    "BAT entry {block} points at sector {entry}, past the end of the file ({} bytes; block ends at {block_end:#x})",
                    self.file.size()
                ),
            ));
        }
        let first = within / SECTOR;
        let last = (within + buf.len() as u64 - 1) / SECTOR;
        let mut bitmap = vec![0u8; (last / 8 - first / 8 + 1) as usize];
        self.file.read_at(bitmap_at + first / 8, &mut bitmap)?;
        let bit = |s: u64| bitmap[(s / 8 - first / 8) as usize] & (0x80 >> (s % 8)) != 0;
        // Walk runs of sectors that share a bit: one read per run.
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = within + pos as u64;
            let s = off / SECTOR;
            let present = bit(s);
            let mut end_sector = s + 1;
            while end_sector <= last && bit(end_sector) == present {
                end_sector += 1;
            }
            let run_end = (end_sector * SECTOR).min(within + buf.len() as u64);
            let n = (run_end - off) as usize;
            let piece = &mut buf[pos..pos + n];
            if present {
                self.file.read_at(data_at + off, piece)?;
            } else if let Some(p) = &d.parent {
                super::read_parent(p.as_ref(), virt + pos as u64, piece)?;
            } else {
                piece.fill(0);
            }
            pos += n;
        }
        Ok(())
    }
}

impl ReadAt for Vhd {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let size = self.footer.current_size;
        if !super::in_bounds(offset, buf.len(), size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, size));
        }
        let Some(d) = &self.dynamic else {
            return self.file.read_at(offset, buf);
        };
        let bs = d.header.block_size as u64;
        super::for_each_block(offset, buf, bs, |block, within, piece| {
            self.read_in_block(d, block, within, piece)
        })
    }

    fn size(&self) -> u64 {
        self.footer.current_size
    }

    /// A dynamic or differencing disk's blocks in its BAT (and its parent's); a fixed
    /// disk cannot tell.
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        let Some(d) = &self.dynamic else {
            return Ok(None);
        };
        let mut ranges = match &d.parent {
            Some(p) => match p.allocated()? {
                Some(r) => r,
                None => return Ok(None),
            },
            None => Vec::new(),
        };
        let (bs, size) = (u64::from(d.header.block_size), self.footer.current_size);
        for (block, entry) in d.bat.iter().enumerate() {
            let at = block as u64 * bs;
            if *entry != u32::MAX && at < size {
                ranges.push((at, bs.min(size - at)));
            }
        }
        Ok(Some(rehost_core::io::merge_ranges(ranges)))
    }
}

impl Container for Vhd {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}

/// The footer at the end of the file (512 bytes, or 511 for images older than Virtual PC
/// 2004), else its copy at offset 0. A footer whose checksum matches is preferred; when
/// none does (images edited by hand, as some test suites ship them) the first well-formed
/// one is used and the mismatch is noted, as other readers do.
fn read_footer(file: &HostFile, ctx: &Ctx) -> Result<(Footer, Vec<String>)> {
    let size = file.size();
    let mut candidates = Vec::new();
    let mut first_error = None;
    for (len, at) in [
        (512u64, size.checked_sub(512)),
        (511, size.checked_sub(511)),
        (512, Some(0)),
    ] {
        let Some(at) = at else { continue };
        let mut b = vec![0u8; len as usize];
        if file.read_some_at(at, &mut b)? < len as usize {
            continue;
        }
        match Footer::parse(&b, at, ctx) {
            // The copy at offset 0 only exists for dynamic and differencing disks.
            Ok(f) if at == 0 && f.disk_type == FIXED && size != 512 => {}
            Ok(f) => candidates.push((at, f)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut notes = Vec::new();
    let chosen = match candidates
        .iter()
        .position(|(_, f)| f.checksum_error.is_none())
    {
        Some(i) => candidates.swap_remove(i),
        None if !candidates.is_empty() => {
            let c = candidates.swap_remove(0);
            notes.push(format!(
                "{}; the footer's fields were used as found",
                c.1.checksum_error.clone().unwrap_or_default()
            ));
            c
        }
        None => {
            return Err(
                first_error.unwrap_or_else(|| ctx.corrupt(0, "file too small for a VHD footer"))
            )
        }
    };
    if chosen.0 == 0 && size > 512 {
        notes.push(
            "the footer at the end of the file is unusable; its copy at offset 0 was used".into(),
        );
    }
    Ok((chosen.1, notes))
}

fn open_dynamic(
    file: &HostFile,
    footer: &Footer,
    parents: &ParentOpener,
    ctx: &Ctx,
    notes: &mut Vec<String>,
) -> Result<Dynamic> {
    let at = footer.data_offset;
    if at.checked_add(1024).is_none_or(|e| e > file.size()) {
        return Err(ctx.corrupt(
            16,
            format!("dynamic header offset {at:#x} is outside the file"),
        ));
    }
    let mut hb = vec![0u8; 1024];
    file.read_at(at, &mut hb)?;
    let header = DynamicHeader::parse(&hb, at, file.size(), footer.current_size, ctx)?;
    if let Some(why) = &header.checksum_error {
        notes.push(format!("{why}; the header's fields were used as found"));
    }
    let mut raw = vec![0u8; header.max_table_entries as usize * 4];
    file.read_at(header.table_offset, &mut raw)?;
    let bat = raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let bitmap_bytes = (header.block_size as u64 / SECTOR)
        .div_ceil(8)
        .div_ceil(SECTOR)
        * SECTOR;
    let parent = if footer.disk_type == DIFFERENCING {
        Some(open_parent(file, &header, at, parents, ctx, notes)?)
    } else {
        None
    };
    Ok(Dynamic {
        header,
        bat,
        bitmap_bytes,
        parent,
    })
}

/// Finds the parent through the locators (relative before absolute), then by the parent's
/// name beside the child, and checks its identity.
fn open_parent(
    file: &HostFile,
    h: &DynamicHeader,
    header_at: u64,
    parents: &ParentOpener,
    ctx: &Ctx,
    notes: &mut Vec<String>,
) -> Result<Arc<dyn Container>> {
    let child = std::path::Path::new(file.name());
    let mut written = Vec::new();
    for code in [b"W2ru", b"Wi2r", b"W2ku", b"Wi2k"] {
        for l in h.locators.iter().filter(|l| &l.code == code) {
            if l.length > 32 * 1024
                || l.offset
                    .checked_add(l.length as u64)
                    .is_none_or(|e| e > file.size())
            {
                notes.push(format!(
                    "parent locator {} lies outside the file; ignored",
                    String::from_utf8_lossy(code)
                ));
                continue;
            }
            let mut b = vec![0u8; l.length as usize];
            file.read_at(l.offset, &mut b)?;
            let text = if code[0..2] == *b"W2" {
                let units: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(&b).into_owned()
            };
            written.push(text.trim_end_matches('\0').to_string());
        }
    }
    if !h.parent_name.is_empty() {
        written.push(h.parent_name.clone());
    }
    let mut tried = Vec::new();
    for w in &written {
        for path in super::parent_candidates(child, w) {
            if tried.contains(&path) {
                continue;
            }
            tried.push(path.clone());
            if !path.is_file() {
                continue;
            }
            let parent = parents.open_parent(ctx, &path)?;
            let want = footer::guid(&h.parent_unique_id);
            let have = parent.info().disk_id.clone().unwrap_or_default();
            if parent.info().format != Format::Vhd || have != want {
                return Err(ctx.corrupt(
                    header_at + 40,
                    format!(
                        "parent {} has id {have}, the child expects {want}",
                        path.display()
                    ),
                ));
            }
            return Ok(parent);
        }
    }
    Err(ctx.error(
        rehost_core::Location::Offset(0),
        rehost_core::ErrorKind::NotFound(format!(
            "the parent of this differencing disk is not found (looked for: {})",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    ))
}
