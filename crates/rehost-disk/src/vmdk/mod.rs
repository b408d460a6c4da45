//! VMware VMDK containers, after VMware's "Virtual Disk Format 1.1". A monolithicSparse
//! disk is written in place (`write`); the others are read.
//!
//! A VMDK disk is a descriptor (text: the createType, the content id `CID`, the parent's
//! `parentCID` and `parentFileNameHint`, and the extents in order) and its extents. The
//! descriptor is a file of its own (monolithicFlat, twoGbMaxExtentSparse and
//! twoGbMaxExtentFlat, vmfs and vmfsThin) or embedded in a hosted sparse extent
//! (monolithicSparse, streamOptimized). An extent is flat (its sectors in place in a file,
//! FLAT or VMFS), hosted sparse (grains found through a grain directory and grain tables,
//! compressed behind markers in a streamOptimized extent; see `sparse`), or ZERO. A snapshot
//! is a sparse disk whose descriptor names its parent; the parent's CID must match the
//! child's parentCID, and sectors the child does not hold are read from the parent.
//!
//! Every offset, size and count is checked before it is used: a damaged or hostile image is
//! an error naming the file, the `vmdk` layer and the offset, never a panic or an unbounded
//! allocation.

mod descriptor;
mod header;
mod sparse;
mod split;
mod write;

pub use descriptor::{Descriptor, Extent, ExtentType};
pub use header::SparseExtentHeader;

use super::{Container, DiskInfo, Format, HostFile, ParentOpener, ReadAt, Subformat};
pub(crate) use descriptor::MAX_DESCRIPTOR;
pub(crate) use descriptor::NO_PARENT;
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use sparse::{Grain, SparseExtent};
use std::path::Path;
use std::sync::Arc;

const SECTOR: u64 = 512;

/// An opened VMDK disk: its extents in order, and its parent.
pub struct Vmdk {
    ctx: Ctx,
    info: DiskInfo,
    descriptor: Descriptor,
    extents: Vec<Placed>,
    size: u64,
    parent: Option<Arc<dyn Container>>,
    /// The file opened is a sparse extent without a descriptor of its own: an extent file
    /// of a disk of several files (twoGbMaxExtentSparse), opened alone.
    bare_extent: bool,
}

/// An extent and where it starts on the disk, in bytes.
struct Placed {
    start: u64,
    len: u64,
    store: Store,
}

enum Store {
    Flat { file: HostFile, offset: u64 },
    Sparse(Box<SparseExtent>),
    Zero,
}

impl Vmdk {
    /// Opens a VMDK from its descriptor file or its (first) sparse extent, the extents the
    /// descriptor names beside it, and its parents.
    pub fn open(file: HostFile, parents: &ParentOpener) -> Result<Self> {
        let ctx = file.ctx().with_layer(Layer::Vmdk);
        let path = file.name().to_string();
        let mut notes = Vec::new();
        let mut magic = [0u8; 4];
        file.read_some_at(0, &mut magic)?;
        let mut bare_extent = false;
        let (descriptor, mut own) = if u32::from_le_bytes(magic) == header::MAGIC {
            let sparse = SparseExtent::open(file, &ctx, &mut notes)?;
            let h = &sparse.header;
            let mut text = Vec::new();
            if h.descriptor_offset != 0 && h.descriptor_size != 0 {
                let len = h.descriptor_size.saturating_mul(SECTOR);
                let at = h.descriptor_offset.saturating_mul(SECTOR);
                if len > MAX_DESCRIPTOR
                    || at.checked_add(len).is_none_or(|e| e > sparse.file.size())
                {
                    return Err(ctx.corrupt(
                        28,
                        format!(
                            "embedded descriptor ({len} bytes at {at:#x}) is not inside the file"
                        ),
                    ));
                }
                text.resize(len as usize, 0);
                sparse.file.read_at(at, &mut text)?;
            }
            // The extents of a twoGbMaxExtentSparse disk keep room for a descriptor and
            // leave it empty.
            let descriptor = if text.iter().any(|c| !c.is_ascii_whitespace() && *c != 0) {
                Descriptor::parse(&text, &ctx, h.descriptor_offset * SECTOR)?
            } else {
                // A sparse extent opened alone: one extent, itself.
                bare_extent = true;
                Descriptor {
                    create_type: "monolithicSparse".into(),
                    extents: vec![Extent {
                        kind: ExtentType::Sparse,
                        sectors: h.capacity,
                        file: Some(path.clone()),
                        offset: 0,
                    }],
                    ..Descriptor::default()
                }
            };
            (descriptor, Some(sparse))
        } else {
            if file.size() > MAX_DESCRIPTOR {
                return Err(ctx.corrupt(
                    0,
                    format!(
                        "a descriptor of {} bytes (at most {MAX_DESCRIPTOR})",
                        file.size()
                    ),
                ));
            }
            let mut text = vec![0u8; file.size() as usize];
            file.read_at(0, &mut text)?;
            (Descriptor::parse(&text, &ctx, 0)?, None)
        };
        let single_sparse = descriptor.extents.len() == 1;
        let own_name = Path::new(&path).file_name().map(|n| n.to_os_string());
        let mut extents = Vec::with_capacity(descriptor.extents.len());
        let mut start = 0u64;
        for (i, e) in descriptor.extents.iter().enumerate() {
            let len = e
                .sectors
                .checked_mul(SECTOR)
                .filter(|l| start.checked_add(*l).is_some_and(|end| end <= 1 << 61));
            let Some(len) = len else {
                return Err(ctx.corrupt(
                    0,
                    format!(
                        "extent {i} of {} sectors makes the disk too large",
                        e.sectors
                    ),
                ));
            };
            let store = match e.kind {
                ExtentType::Zero => Store::Zero,
                ExtentType::Sparse
                    if own.is_some()
                        && (single_sparse
                            || e.file
                                .as_deref()
                                .map(|f| Path::new(f).file_name().map(|n| n.to_os_string()))
                                == Some(own_name.clone())) =>
                {
                    Store::Sparse(Box::new(own.take().expect("checked above")))
                }
                ExtentType::Sparse => {
                    let f = open_extent(&path, e, parents, &ctx, false)?;
                    let ectx = f.ctx().with_layer(Layer::Vmdk);
                    Store::Sparse(Box::new(SparseExtent::open(f, &ectx, &mut notes)?))
                }
                ExtentType::Flat => {
                    let f = open_extent(&path, e, parents, &ctx, true)?;
                    let offset = e.offset.saturating_mul(SECTOR);
                    if offset.checked_add(len).is_none_or(|end| end > f.size()) {
                        return Err(f.ctx().with_layer(Layer::Vmdk).corrupt(
                            offset,
                            format!("flat extent {i} of {len} bytes from offset {offset} is past the end of the file ({} bytes)", f.size()),
                        ));
                    }
                    Store::Flat { file: f, offset }
                }
            };
            extents.push(Placed { start, len, store });
            start += len;
        }
        let parent = open_parent(&path, &descriptor, parents, &ctx)?;
        let sparse_grain = extents.iter().find_map(|p| match &p.store {
            Store::Sparse(s) => Some((s.grain_sectors() * SECTOR) as u32),
            _ => None,
        });
        let info = DiskInfo {
            path: path.clone(),
            format: Format::Vmdk,
            subformat: if parent.is_some() {
                Subformat::Differencing
            } else if sparse_grain.is_some() {
                Subformat::Dynamic
            } else {
                Subformat::Fixed
            },
            variant: Some(descriptor.create_type.clone()).filter(|t| !t.is_empty()),
            virtual_size: start,
            logical_sector_size: 512,
            physical_sector_size: 512,
            block_size: sparse_grain,
            disk_id: descriptor.cid.map(|c| format!("{c:08x}")),
            data_write_guid: None,
            notes,
            parent: parent.as_ref().map(|p| Box::new(p.info().clone())),
            stored_hashes: Vec::new(),
        };
        Ok(Vmdk {
            ctx,
            info,
            descriptor,
            extents,
            size: start,
            parent,
            bare_extent,
        })
    }

    /// The descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// Reads `buf` from extent `p`, `within` bytes into it.
    fn read_extent(&self, p: &Placed, within: u64, buf: &mut [u8]) -> Result<()> {
        match &p.store {
            Store::Zero => {
                buf.fill(0);
                Ok(())
            }
            Store::Flat { file, offset } => file.read_at(offset + within, buf),
            Store::Sparse(s) => {
                let grain = s.grain_sectors() * SECTOR;
                super::for_each_block(within, buf, grain, |g, inside, piece| match s.grain(g)? {
                    Grain::Zero => {
                        piece.fill(0);
                        Ok(())
                    }
                    Grain::Unallocated => match &self.parent {
                        Some(parent) => {
                            super::read_parent(parent.as_ref(), p.start + g * grain + inside, piece)
                        }
                        None => {
                            piece.fill(0);
                            Ok(())
                        }
                    },
                    Grain::At(sector) => s.read_grain(g, sector, inside, piece),
                })
            }
        }
    }
}

impl ReadAt for Vmdk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !super::in_bounds(offset, buf.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, self.size));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let i = self.extents.partition_point(|p| p.start + p.len <= pos);
            let p = &self.extents[i];
            let within = pos - p.start;
            let n = ((p.len - within) as usize).min(buf.len() - done);
            self.read_extent(p, within, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    /// Flat extents whole, a sparse extent's stored grains, and the parent's ranges.
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        let mut ranges = match &self.parent {
            Some(p) => match p.allocated()? {
                Some(r) => r,
                None => return Ok(None),
            },
            None => Vec::new(),
        };
        for p in &self.extents {
            match &p.store {
                Store::Zero => {}
                Store::Flat { .. } => ranges.push((p.start, p.len)),
                Store::Sparse(s) => {
                    let grain = s.grain_sectors().max(1) * SECTOR;
                    for g in s.stored_grains(p.len.div_ceil(grain))? {
                        let at = g * grain;
                        ranges.push((p.start + at, grain.min(p.len - at)));
                    }
                }
            }
        }
        Ok(Some(rehost_core::io::merge_ranges(ranges)))
    }
}

impl Container for Vmdk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}

/// Opens the file of extent `e`, named relative to the descriptor's directory.
fn open_extent(
    descriptor: &str,
    e: &Extent,
    parents: &ParentOpener,
    ctx: &Ctx,
    flat: bool,
) -> Result<HostFile> {
    let name = e.file.as_deref().unwrap_or_default();
    // An extent is a file beside its descriptor (or below it): a descriptor that names one
    // elsewhere (an absolute path, a `..`) would have rehost read, and a write in place
    // write, a file the image does not own.
    let inside = Path::new(name).components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if !inside || name.is_empty() {
        return Err(ctx.refused(
            "",
            format!(
                "the descriptor names the extent file \"{name}\", which is not beside it \
                 (an absolute path or one through \"..\"); rehost opens only extents in the \
                 descriptor's own directory"
            ),
        ));
    }
    let dir = Path::new(descriptor).parent().unwrap_or(Path::new(""));
    let path = dir.join(name);
    if !path.is_file() {
        return Err(ctx.error(
            Location::None,
            ErrorKind::NotFound(format!(
                "the extent file {} that the descriptor names is not found",
                path.display()
            )),
        ));
    }
    parents.open_data(&path, flat)
}

/// The parent the descriptor names (parentFileNameHint), whose CID must be the child's
/// parentCID.
fn open_parent(
    path: &str,
    d: &Descriptor,
    parents: &ParentOpener,
    ctx: &Ctx,
) -> Result<Option<Arc<dyn Container>>> {
    let want = match d.parent_cid {
        None | Some(NO_PARENT) => return Ok(None),
        Some(c) => c,
    };
    let Some(hint) = d.parent_hint.as_deref().filter(|h| !h.is_empty()) else {
        return Err(ctx.corrupt(
            0,
            format!(
                "the descriptor names a parent (parentCID {want:08x}) but no parentFileNameHint"
            ),
        ));
    };
    let candidates = super::parent_candidates(Path::new(path), hint);
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        return Err(ctx.error(
            Location::None,
            ErrorKind::NotFound(format!(
                "the parent of this snapshot is not found (parentFileNameHint {hint}; looked for: {})",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )),
        ));
    };
    let parent = parents.open_parent(ctx, found)?;
    let have = parent.info().disk_id.clone().unwrap_or_default();
    if parent.info().format != Format::Vmdk || have != format!("{want:08x}") {
        return Err(ctx.corrupt(
            0,
            format!("parent {} has CID {have}, the child's parentCID is {want:08x}: the parent changed after the snapshot was taken", found.display()),
        ));
    }
    Ok(Some(parent))
}
