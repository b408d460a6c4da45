//! A new VMDK (VMware's "Virtual Disk Format 5.0"): one hosted sparse extent holding its
//! own descriptor, 64 KiB grains, 512 entries a grain table (32 MiB of disk each).
//!
//! monolithicSparse (version 1, flags: newline test and redundant grain directory):
//!
//! | sector | what |
//! |---|---|
//! | 0 | the sparse extent header |
//! | 1 | the descriptor (20 sectors) |
//! | 21 | the redundant grain directory, then its grain tables, one for every GD entry |
//! | then | the grain directory, then its grain tables |
//! | then, from a grain boundary | the grains that hold data, in disk order |
//!
//! streamOptimized (version 3, flags: newline test, compressed grains, markers; what
//! vSphere takes for upload): the header says the grain directory is at the end
//! (`gdOffset` all ones); after the descriptor, from sector 128, each grain that holds data
//! is a grain marker (its first disk sector and compressed length) followed by its bytes
//! deflated in a zlib stream (level 6, as qemu-img; the grains of each 1 MiB block
//! deflated on the machine's cores at once, written in order), padded to a sector; after the grains of a grain table's
//! 32 MiB comes that table (if it points at any) behind a grain table marker; then the
//! grain directory behind its marker, the footer (a copy of the header naming the grain
//! directory) behind its marker, and the end-of-stream marker: the layout VMware's tools
//! write and its readers, QEMU's among them, look for at the end of the file.
//!
//! A grain that reads as zeros is left unallocated (grain table entry 0). The descriptor
//! names the extent by the output's file name, a new content id (`CID`) and no parent, and
//! the adapter (`ddb.adapterType`, [`VmdkAdapter`]): the one asked for, else the source
//! VMDK's, else IDE (the controller every Windows boots from with its inbox driver); with
//! the geometry VMware gives that adapter: 16 heads and 63 sectors for IDE, 255 heads and
//! 63 sectors for the SCSI adapters.

use super::{each_block, is_zero, Blocks, Gather, Out};
use crate::ids::Ids;
use crate::ReadAt;
use rehost_core::error::{Ctx, Result};

const SECTOR: u64 = 512;
/// The grain: 128 sectors.
const GRAIN: u64 = 64 << 10;
const GRAIN_SECTORS: u64 = GRAIN / SECTOR;
/// Entries of a grain table (4 bytes each: 4 sectors).
const GTES_PER_GT: u64 = 512;
const GT_SECTORS: u64 = GTES_PER_GT * 4 / SECTOR;
/// The blocks read from the source (whole grains).
pub(super) const BLOCK: u64 = 1 << 20;
/// The embedded descriptor's place and room, in sectors.
const DESCRIPTOR_OFFSET: u64 = 1;
const DESCRIPTOR_SECTORS: u64 = 20;
/// Where a streamOptimized extent's grains begin, in sectors.
const STREAM_OVERHEAD: u64 = 128;
/// The largest disk whose grains 32-bit sector numbers reach (less room for metadata).
const MAX_SIZE: u64 = 2000 << 30;

const MAGIC: u32 = 0x564d_444b; // "KDMV"
const FLAG_NEWLINE_TEST: u32 = 1;
const FLAG_REDUNDANT_GD: u32 = 1 << 1;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
const COMPRESSION_DEFLATE: u16 = 1;
const GD_AT_END: u64 = u64::MAX;
const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

/// The fields of a sparse extent header that differ between the kinds and places.
struct Header {
    version: u32,
    flags: u32,
    capacity: u64,
    rgd_offset: u64,
    gd_offset: u64,
    overhead: u64,
}

impl Header {
    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; SECTOR as usize];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0, &MAGIC.to_le_bytes());
        put(4, &self.version.to_le_bytes());
        put(8, &self.flags.to_le_bytes());
        put(12, &self.capacity.to_le_bytes());
        put(20, &GRAIN_SECTORS.to_le_bytes());
        put(28, &DESCRIPTOR_OFFSET.to_le_bytes());
        put(36, &DESCRIPTOR_SECTORS.to_le_bytes());
        put(44, &(GTES_PER_GT as u32).to_le_bytes());
        put(48, &self.rgd_offset.to_le_bytes());
        put(56, &self.gd_offset.to_le_bytes());
        put(64, &self.overhead.to_le_bytes());
        // uncleanShutdown (72) false; the newline test's characters.
        put(73, b"\n \r\n");
        if self.flags & FLAG_COMPRESSED != 0 {
            put(77, &COMPRESSION_DEFLATE.to_le_bytes());
        }
        b
    }
}

/// A stream marker sector: `value` (sectors of metadata that follow), size 0, `kind`.
fn marker(value: u64, kind: u32) -> Vec<u8> {
    let mut b = vec![0u8; SECTOR as usize];
    b[0..8].copy_from_slice(&value.to_le_bytes());
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b
}

/// A table of little-endian 32-bit entries, padded to whole sectors.
fn table_bytes(entries: &[u32]) -> Vec<u8> {
    let mut b: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    b.resize(sectors(b.len()), 0);
    b
}

/// `len` bytes rounded up to whole sectors.
fn sectors(len: usize) -> usize {
    len.div_ceil(SECTOR as usize) * SECTOR as usize
}

/// The virtual controller a VMDK's descriptor names (`ddb.adapterType`, by the names of
/// VMware's "Virtual Disk Format 1.1"): the one VMware gives the disk when a machine is
/// made around it, and so the driver Windows must have at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmdkAdapter {
    /// An IDE controller (`ide`).
    #[default]
    Ide,
    /// A BusLogic SCSI controller (`buslogic`).
    BusLogic,
    /// An LSI Logic SCSI controller (`lsilogic`).
    LsiLogic,
    /// The adapter of ESX's legacy disks (`legacyESX`).
    LegacyEsx,
}

impl VmdkAdapter {
    /// The names `from_name` takes, for messages.
    pub const NAMES: &'static str = "ide, buslogic, lsilogic, legacyESX";

    /// The adapter of this name, as a descriptor writes it (case aside).
    pub fn from_name(name: &str) -> Option<VmdkAdapter> {
        Some(match name.to_ascii_lowercase().as_str() {
            "ide" => VmdkAdapter::Ide,
            "buslogic" => VmdkAdapter::BusLogic,
            "lsilogic" => VmdkAdapter::LsiLogic,
            "legacyesx" => VmdkAdapter::LegacyEsx,
            _ => return None,
        })
    }

    /// Its name in a descriptor.
    pub fn name(self) -> &'static str {
        match self {
            VmdkAdapter::Ide => "ide",
            VmdkAdapter::BusLogic => "buslogic",
            VmdkAdapter::LsiLogic => "lsilogic",
            VmdkAdapter::LegacyEsx => "legacyESX",
        }
    }

    /// The heads of the geometry the descriptor gives the disk on this adapter.
    fn heads(self) -> u64 {
        match self {
            VmdkAdapter::Ide => 16,
            _ => 255,
        }
    }
}

impl std::fmt::Display for VmdkAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The embedded descriptor.
fn descriptor(cid: u32, capacity: u64, name: &str, stream: bool, adapter: VmdkAdapter) -> Vec<u8> {
    let heads = adapter.heads();
    let cylinders = (capacity / (heads * 63)).clamp(1, 16383);
    let adapter = adapter.name();
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid:08x}\n\
         parentCID=ffffffff\ncreateType=\"{}\"\n\n# Extent description\n\
         RW {capacity} SPARSE \"{name}\"\n\n# The Disk Data Base\n#DDB\n\n\
         ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"{heads}\"\nddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"{adapter}\"\n",
        if stream {
            "streamOptimized"
        } else {
            "monolithicSparse"
        }
    );
    let mut b = text.into_bytes();
    b.resize((DESCRIPTOR_SECTORS * SECTOR) as usize, 0);
    b
}

/// A sector number as a grain table or directory entry.
fn entry(sector: u64, ctx: &Ctx) -> Result<u32> {
    u32::try_from(sector)
        .map_err(|_| ctx.invalid("the VMDK would pass the 2 TiB its 32-bit sector numbers reach"))
}

/// Writes `src` into `o` as a VMDK whose descriptor names the extent `name`:
/// monolithicSparse, or streamOptimized when `stream`. Returns the blocks (of [`BLOCK`])
/// with data and the number of blocks.
pub(super) fn write(
    src: &dyn ReadAt,
    o: &mut Out,
    ids: &mut Ids,
    name: &str,
    stream: bool,
    adapter: VmdkAdapter,
    ctx: &Ctx,
) -> Result<Blocks> {
    let size = src.size();
    if size == 0 || size % SECTOR != 0 || size > MAX_SIZE {
        return Err(ctx.invalid(format!(
            "a VMDK is written for a disk of whole 512-byte sectors, up to 2000 GiB; this \
             one is {size} bytes"
        )));
    }
    if name.contains(['"', '\n', '\r']) {
        return Err(ctx.invalid(
            "a VMDK's descriptor cannot name a file whose name holds a quote or a line break",
        ));
    }
    // A content id that is not "no parent" (all ones).
    let cid = u32::from_le_bytes(ids.guid().as_bytes()[..4].try_into().unwrap_or([0; 4]))
        .min(0xffff_fffe);
    let capacity = size / SECTOR;
    let gt_count = capacity.div_ceil(GRAIN_SECTORS).div_ceil(GTES_PER_GT);
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    o.write(
        DESCRIPTOR_OFFSET * SECTOR,
        &descriptor(cid, capacity, name, stream, adapter),
    )?;
    if stream {
        write_stream(src, o, capacity, gt_count, gd_sectors, ctx)
    } else {
        write_sparse(src, o, capacity, gt_count, gd_sectors, ctx)
    }
}

/// What [`each_grain`] reports, in the file's order.
enum Step<'a> {
    /// The grains of one block that hold data (all in one grain table's 32 MiB, which a
    /// block never crosses): each one's index on the disk and its bytes.
    Grains(&'a [(u64, &'a [u8])]),
    /// The last grain of this grain table has been reported.
    TableDone(u64),
}

/// The grains of `src` that hold data, in disk order, a block's at a time, each grain
/// table's end after its last grain.
fn each_grain(src: &dyn ReadAt, mut f: impl FnMut(Step) -> Result<()>) -> Result<Blocks> {
    let per_block = BLOCK / GRAIN;
    let mut table: Option<u64> = None;
    let counts = each_block(src, BLOCK, |k, data| {
        let grains: Vec<(u64, &[u8])> = data
            .chunks(GRAIN as usize)
            .enumerate()
            .filter(|(_, g)| !is_zero(g))
            .map(|(i, g)| (k * per_block + i as u64, g))
            .collect();
        let Some(&(first, _)) = grains.first() else {
            return Ok(());
        };
        let t = first / GTES_PER_GT;
        if let Some(done) = table.filter(|&d| d != t) {
            f(Step::TableDone(done))?;
        }
        table = Some(t);
        f(Step::Grains(&grains))
    })?;
    if let Some(done) = table {
        f(Step::TableDone(done))?;
    }
    Ok(counts)
}

/// Each grain deflated in a zlib stream (a last grain shorter than a whole one padded with
/// zeros), on up to `threads` threads, in order.
fn deflate_all(grains: &[(u64, &[u8])], threads: usize, ctx: &Ctx) -> Result<Vec<Vec<u8>>> {
    let deflate = |g: &[u8]| {
        if g.len() == GRAIN as usize {
            miniz_oxide::deflate::compress_to_vec_zlib(g, 6)
        } else {
            let mut whole = g.to_vec();
            whole.resize(GRAIN as usize, 0);
            miniz_oxide::deflate::compress_to_vec_zlib(&whole, 6)
        }
    };
    if threads <= 1 || grains.len() <= 1 {
        return Ok(grains.iter().map(|g| deflate(g.1)).collect());
    }
    let per = grains.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = grains
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(|g| deflate(g.1)).collect::<Vec<_>>()))
            .collect();
        let mut all = Vec::with_capacity(grains.len());
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| ctx.invalid("a thread deflating grains stopped"))?,
            );
        }
        Ok(all)
    })
}

/// monolithicSparse: every grain table placed (twice) before the grains, each written
/// once its grains are.
fn write_sparse(
    src: &dyn ReadAt,
    o: &mut Out,
    capacity: u64,
    gt_count: u64,
    gd_sectors: u64,
    ctx: &Ctx,
) -> Result<Blocks> {
    let rgd_offset = DESCRIPTOR_OFFSET + DESCRIPTOR_SECTORS;
    let gd_offset = rgd_offset + gd_sectors + gt_count * GT_SECTORS;
    let overhead = (gd_offset + gd_sectors + gt_count * GT_SECTORS).next_multiple_of(GRAIN_SECTORS);
    let mut gt = vec![0u32; GTES_PER_GT as usize];
    let mut next = overhead;
    let mut gather = Gather::new();
    let counts = each_grain(src, |step| match step {
        Step::Grains(grains) => {
            for &(index, g) in grains {
                gather.put(o, next * SECTOR, g)?;
                gt[(index % GTES_PER_GT) as usize] = entry(next, ctx)?;
                next += GRAIN_SECTORS;
            }
            Ok(())
        }
        Step::TableDone(t) => {
            gather.flush(o)?;
            let bytes = table_bytes(&gt);
            for base in [rgd_offset, gd_offset] {
                o.write((base + gd_sectors + t * GT_SECTORS) * SECTOR, &bytes)?;
            }
            gt.fill(0);
            Ok(())
        }
    })?;
    gather.flush(o)?;
    // The last grain is whole even where the disk ends inside it.
    o.set_len(next * SECTOR)?;
    for base in [rgd_offset, gd_offset] {
        let gd = (0..gt_count)
            .map(|t| entry(base + gd_sectors + t * GT_SECTORS, ctx))
            .collect::<Result<Vec<u32>>>()?;
        o.write(base * SECTOR, &table_bytes(&gd))?;
    }
    let header = Header {
        version: 1,
        flags: FLAG_NEWLINE_TEST | FLAG_REDUNDANT_GD,
        capacity,
        rgd_offset,
        gd_offset,
        overhead,
    };
    o.write(0, &header.bytes())?;
    Ok(counts)
}

/// streamOptimized: compressed grains behind markers, each grain table after its grains,
/// then the grain directory, the footer and the end-of-stream marker.
fn write_stream(
    src: &dyn ReadAt,
    o: &mut Out,
    capacity: u64,
    gt_count: u64,
    gd_sectors: u64,
    ctx: &Ctx,
) -> Result<Blocks> {
    let mut gd = vec![0u32; gt_count as usize];
    let mut gt = vec![0u32; GTES_PER_GT as usize];
    let mut next = STREAM_OVERHEAD;
    let mut gather = Gather::new();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let counts = each_grain(src, |step| match step {
        Step::Grains(grains) => {
            for (&(index, _), packed) in grains.iter().zip(deflate_all(grains, threads, ctx)?) {
                let mut m = Vec::with_capacity(12 + packed.len() + SECTOR as usize);
                m.extend_from_slice(&(index * GRAIN_SECTORS).to_le_bytes());
                m.extend_from_slice(&(packed.len() as u32).to_le_bytes());
                m.extend_from_slice(&packed);
                m.resize(sectors(m.len()), 0);
                gt[(index % GTES_PER_GT) as usize] = entry(next, ctx)?;
                gather.put(o, next * SECTOR, &m)?;
                next += m.len() as u64 / SECTOR;
            }
            Ok(())
        }
        Step::TableDone(t) => {
            let mut bytes = marker(GT_SECTORS, MARKER_GT);
            bytes.extend_from_slice(&table_bytes(&gt));
            gd[t as usize] = entry(next + 1, ctx)?;
            gather.put(o, next * SECTOR, &bytes)?;
            next += 1 + GT_SECTORS;
            gt.fill(0);
            Ok(())
        }
    })?;
    let header = |gd_offset| Header {
        version: 3,
        flags: FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS,
        capacity,
        rgd_offset: 0,
        gd_offset,
        overhead: STREAM_OVERHEAD,
    };
    let gd_offset = next + 1;
    let mut tail = marker(gd_sectors, MARKER_GD);
    tail.extend_from_slice(&table_bytes(&gd));
    tail.extend_from_slice(&marker(1, MARKER_FOOTER));
    tail.extend_from_slice(&header(gd_offset).bytes());
    tail.extend_from_slice(&marker(0, MARKER_EOS));
    gather.put(o, next * SECTOR, &tail)?;
    gather.flush(o)?;
    next += tail.len() as u64 / SECTOR;
    o.set_len(next * SECTOR)?;
    o.write(0, &header(GD_AT_END).bytes())?;
    Ok(counts)
}
