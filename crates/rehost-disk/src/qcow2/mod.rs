//! qcow2 containers (QEMU, KVM, OpenStack, Proxmox), after QEMU's
//! docs/interop/qcow2.txt.
//!
//! The guest disk is cut into clusters (512 bytes to 2 MiB). A two-level table maps each
//! guest cluster to the host file: the L1 table, read whole at open, points at L2 tables
//! (one cluster each, read when first needed and kept in a bounded cache), whose entries
//! point at the data. An entry may say the cluster is not allocated (it reads from the
//! backing file, or as zeros), reads as zeros (version 3), is compressed (deflate, or zstd
//! when the header's compression type says so), or, with extended L2 entries, is cut into
//! 32 subclusters each allocated, zero or unallocated on its own. The data may live in an
//! external data file beside the image. Encrypted images are refused; internal snapshots are
//! listed, and the active state is what is read. Writes in place are planned in `write`
//! (clusters shared with snapshots copied on write), with the refcounts in `refcount`; an
//! image QEMU left dirty has its refcounts rebuilt first, in `rebuild`.
//!
//! Every offset, count and table size is checked against the file before it is used, and a
//! compressed cluster never inflates past the cluster: a damaged or hostile image is an
//! error naming the image, the `qcow2` layer and the offset.

mod header;
mod overlap;
mod read;
mod rebuild;
mod refcount;
mod snapshot;
mod write;

pub use header::Header;
pub use snapshot::Snapshot;

use super::tables::{TableCache, UnitCache};
use super::{Container, DiskInfo, Format, HostFile, ParentOpener, ReadAt, Subformat};
use header::{CORRUPT, DIRTY, EXTENDED_L2, EXTERNAL_DATA_FILE, MAX_L1_BYTES};
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use std::path::Path;
use std::sync::Arc;

/// L2 table entries kept in memory (8 bytes each): 32 MiB.
const L2_CACHE_ENTRIES: usize = 4 << 20;
/// Largest virtual disk read (QEMU's limit is 2^61 bytes too).
const MAX_SIZE: u64 = 1 << 61;

/// An opened qcow2 image.
pub struct Qcow2 {
    file: HostFile,
    ctx: Ctx,
    info: DiskInfo,
    header: Header,
    geometry: read::Geometry,
    l1: Vec<u64>,
    data: Option<HostFile>,
    backing: Option<Arc<dyn Container>>,
    snapshots: Vec<Snapshot>,
    /// Bytes the snapshot table spans.
    snapshots_bytes: u64,
    tables: TableCache,
    units: UnitCache,
}

impl Qcow2 {
    /// Opens a qcow2 image, its external data file and its backing chain.
    pub fn open(file: HostFile, parents: &ParentOpener) -> Result<Self> {
        let ctx = file.ctx().with_layer(Layer::Qcow2);
        let header = Header::read(&file, &ctx)?;
        if header.crypt_method != 0 {
            let how = if header.crypt_method == 1 {
                "AES"
            } else {
                "LUKS"
            };
            return Err(ctx.unsupported(
                32,
                format!(
                    "this qcow2 image is encrypted ({how}); rehost does not decrypt it: write a \
                     decrypted copy with `qemu-img convert` (giving it the key with --object \
                     secret and --image-opts) to raw or VHDX and give rehost that"
                ),
            ));
        }
        if header.size > MAX_SIZE {
            return Err(ctx.corrupt(
                24,
                format!("virtual size {} is larger than 2^61 bytes", header.size),
            ));
        }
        let geometry = read::Geometry::of(&header);
        let l1 = read_l1(&file, &ctx, &header, &geometry)?;
        let mut notes = Vec::new();
        if header.has(DIRTY) {
            notes.push("the image is marked dirty (not closed cleanly): its refcounts may be stale, which reading does not use".into());
        }
        if header.has(CORRUPT) {
            notes.push("QEMU marked this image corrupt; what is read may be damaged".into());
        }
        let snapshot::Table {
            snapshots,
            bytes: snapshots_bytes,
        } = snapshot::read_table(&file, &ctx, header.snapshots_offset, header.nb_snapshots)?;
        if !snapshots.is_empty() {
            notes.push(snapshot::note(&snapshots));
        }
        let data = open_data_file(&file, &ctx, &header, parents)?;
        let backing = open_backing(&file, &ctx, &header, parents, &mut notes)?;
        let mut variant = format!("v{}", header.version);
        for (on, what) in [
            (header.compression_type == 1, "zstd"),
            (header.has(EXTENDED_L2), "extended L2"),
            (data.is_some(), "external data file"),
        ] {
            if on {
                variant.push_str(", ");
                variant.push_str(what);
            }
        }
        let info = DiskInfo {
            path: file.name().to_string(),
            format: Format::Qcow2,
            subformat: if backing.is_some() {
                Subformat::Differencing
            } else {
                Subformat::Dynamic
            },
            variant: Some(variant),
            virtual_size: header.size,
            logical_sector_size: 512,
            physical_sector_size: 512,
            block_size: Some(geometry.cluster_size() as u32),
            disk_id: None,
            data_write_guid: None,
            notes,
            parent: backing.as_ref().map(|b| Box::new(b.info().clone())),
            stored_hashes: Vec::new(),
        };
        Ok(Qcow2 {
            file,
            ctx,
            info,
            header,
            geometry,
            l1,
            data,
            backing,
            snapshots,
            snapshots_bytes,
            tables: TableCache::new(L2_CACHE_ENTRIES),
            units: UnitCache::new(),
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The internal snapshots (listed, not read).
    pub fn snapshots(&self) -> &[Snapshot] {
        &self.snapshots
    }
}

impl ReadAt for Qcow2 {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let size = self.header.size;
        if !super::in_bounds(offset, buf.len(), size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, size));
        }
        super::for_each_block(
            offset,
            buf,
            self.geometry.cluster_size(),
            |c, within, piece| self.read_cluster(c, within, piece),
        )
    }

    /// The clusters the L2 tables map to data (and the backing file's).
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        self.allocated_ranges()
    }

    fn size(&self) -> u64 {
        self.header.size
    }
}

impl Container for Qcow2 {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}

/// Reads the active L1 table, which must cover the virtual disk and lie in the file.
fn read_l1(file: &HostFile, ctx: &Ctx, h: &Header, g: &read::Geometry) -> Result<Vec<u64>> {
    let per_entry = g.cluster_size() * g.l2_entries;
    let needed = h.size.div_ceil(per_entry);
    if (h.l1_size as u64) < needed {
        return Err(ctx.corrupt(
            36,
            format!(
                "L1 table of {} entries is too small for {} bytes ({needed} needed)",
                h.l1_size, h.size
            ),
        ));
    }
    let bytes = h.l1_size as u64 * 8;
    if bytes > MAX_L1_BYTES {
        return Err(ctx.unsupported(
            36,
            format!(
                "L1 table of {} entries (more than {MAX_L1_BYTES} bytes)",
                h.l1_size
            ),
        ));
    }
    let at = h.l1_table_offset;
    if needed > 0
        && (at % g.cluster_size() != 0 || at.checked_add(bytes).is_none_or(|e| e > file.size()))
    {
        return Err(ctx.corrupt(
            40,
            format!("L1 table at {at:#x} ({bytes} bytes) is not cluster-aligned inside the file"),
        ));
    }
    // Only the entries that map the disk are read: the rest map nothing.
    let mut raw = vec![0u8; (needed * 8) as usize];
    file.read_at(at, &mut raw)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

/// The external data file the header extension names, beside the image.
fn open_data_file(
    file: &HostFile,
    ctx: &Ctx,
    h: &Header,
    parents: &ParentOpener,
) -> Result<Option<HostFile>> {
    if !h.has(EXTERNAL_DATA_FILE) {
        return Ok(None);
    }
    let Some(name) = h.data_file.as_deref().filter(|n| !n.is_empty()) else {
        return Err(ctx.corrupt(
            72,
            "the image keeps its data in an external data file, but no header extension names it",
        ));
    };
    let path = resolve(file.name(), name);
    if !path.is_file() {
        return Err(ctx.error(
            Location::Offset(72),
            ErrorKind::NotFound(format!(
                "the external data file {} is not found",
                path.display()
            )),
        ));
    }
    parents.open_data(&path, true).map(Some)
}

/// `name` as written in the image, relative to the image's directory.
fn resolve(image: &str, name: &str) -> std::path::PathBuf {
    let dir = Path::new(image).parent().unwrap_or(Path::new(""));
    dir.join(name)
}

/// The backing file, by its name in the header (relative to the image's directory), opened
/// through the chain's opener (loops and depth checked there).
fn open_backing(
    file: &HostFile,
    ctx: &Ctx,
    h: &Header,
    parents: &ParentOpener,
    notes: &mut Vec<String>,
) -> Result<Option<Arc<dyn Container>>> {
    if h.backing_file_offset == 0 {
        return Ok(None);
    }
    let len = h.backing_file_size as u64;
    let at = h.backing_file_offset;
    if len == 0
        || len > 1023
        || at
            .checked_add(len)
            .is_none_or(|e| e > file.size().min(h.cluster_size()))
    {
        return Err(ctx.corrupt(
            8,
            format!("backing file name of {len} bytes at {at:#x} is not inside the first cluster"),
        ));
    }
    let mut b = vec![0u8; len as usize];
    file.read_at(at, &mut b)?;
    let name = String::from_utf8_lossy(&b).into_owned();
    let path = resolve(file.name(), &name);
    if !path.is_file() {
        return Err(ctx.error(
            Location::Offset(at),
            ErrorKind::NotFound(format!(
                "the backing file {} is not found (the image names {name})",
                path.display()
            )),
        ));
    }
    let backing = parents.open_parent(ctx, &path)?;
    if let Some(f) = &h.backing_format {
        let have = backing.info().format.to_string();
        if *f != have {
            notes.push(format!(
                "the header says the backing file is {f}; it reads as {have}"
            ));
        }
    }
    Ok(Some(backing))
}
