//! Expert Witness (EWF version 1: E01, EnCase and libewf's `ewfacquire`) evidence files,
//! read-only, after Joachim Metz's "Expert Witness Compression Format" specification.
//!
//! An image is cut into segment files (`IMAGE.E01`, `.E02` ... `.E99`, `.EAA` ...), each a
//! file header and a chain of sections, each section led by a descriptor that names its
//! type, its size and where the next one starts. The first segment's `volume` section (a
//! later one's `data`) says how the media is cut into chunks (sectors per chunk, bytes per
//! sector, the number of sectors); `sectors` sections hold the chunks and the `table`
//! section after each says where each chunk starts and whether it is compressed (zlib);
//! `hash` and `digest` hold the MD5 and SHA-1 of the media computed while it was acquired;
//! a segment ends with `next` and the last with `done`. Every structure carries an Adler-32
//! checksum, and so does each uncompressed chunk.
//!
//! The segments are walked once at open, and the tables of all of them read into one map of
//! the media's chunks (16 bytes each: 8 MiB for a 16 GiB disk in 32 KiB chunks). Every
//! offset a table gives is checked to lie in the chunk data of its segment, no stored chunk
//! may take more than a chunk's size and a little, and a chunk must inflate to its size
//! exactly, never more; a chunk is at most [`MAX_CHUNK`] bytes. A missing segment is an
//! error that names the file it looked for.
//!
//! EWF version 2 (Ex01, EnCase 7 and later) is read by the `v2` module into the same map
//! of chunks, behind the same reader.

mod chunk;
mod section;
mod segment;
mod table;
mod v2;
mod verify;

pub use section::{adler32, EVF2_SIGNATURE, EVF_SIGNATURE};
pub use segment::{segment_path, segment_path_v2};
pub use verify::{digest_media, MediaDigests};

use super::tables::UnitCache;
use super::{Container, DiskInfo, Format, HostFile, ParentOpener, ReadAt, StoredHash, Subformat};
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use section::{Descriptor, Volume, FILE_HEADER_SIZE};
use std::path::Path;
use table::Chunk;

/// The largest chunk read (libewf's largest is 32768 sectors of 512 bytes).
pub const MAX_CHUNK: u64 = 16 << 20;
/// The largest media read.
pub(super) const MAX_SIZE: u64 = 1 << 61;

/// An opened EWF image: its segment files and the map of its chunks.
pub struct Ewf {
    ctx: Ctx,
    info: DiskInfo,
    segments: Vec<HostFile>,
    chunks: Vec<Chunk>,
    chunk_size: u64,
    size: u64,
    units: UnitCache,
}

/// What the walk through the segments gathers.
#[derive(Default)]
struct Walk {
    volume: Option<Volume>,
    chunks: Vec<Chunk>,
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    done: bool,
}

impl Ewf {
    /// Opens the image whose first segment file is `first`, and its other segments beside
    /// it.
    pub fn open(first: HostFile, parents: &ParentOpener) -> Result<Self> {
        let ctx = first.ctx().with_layer(Layer::Ewf);
        let mut signature = [0u8; 8];
        if first.read_some_at(0, &mut signature)? == 8 && &signature == EVF2_SIGNATURE {
            return v2::open(first, parents);
        }
        let number = section::read_file_header(&first, &ctx)?;
        let path = Path::new(first.name()).to_path_buf();
        if number != 1 {
            let hint = segment::segment_path(&path, 1)
                .map(|p| format!(": give rehost the first, {}", p.display()))
                .unwrap_or_default();
            return Err(ctx.unsupported(
                9,
                format!("this is segment {number} of an evidence file{hint}"),
            ));
        }
        let mut walk = Walk::default();
        let mut segments = vec![first];
        loop {
            let index = segments.len() as u32 - 1;
            let next = walk_segment(&segments[index as usize], index, &mut walk)?;
            if walk.done {
                break;
            }
            if !next {
                let f = &segments[index as usize];
                return Err(f.ctx().with_layer(Layer::Ewf).corrupt(
                    f.size(),
                    "the segment file ends without a `next` or `done` section: it is truncated",
                ));
            }
            let n = index + 2;
            let Some(p) = segment::segment_path(&path, n) else {
                return Err(ctx.unsupported(
                    0,
                    format!(
                        "segment {n} has no name in the E01 scheme beside {} (the extension must be a letter and two digits, as .E01)",
                        path.display()
                    ),
                ));
            };
            if !p.is_file() {
                return Err(ctx.error(
                    Location::None,
                    ErrorKind::NotFound(format!(
                        "segment {n} of the evidence file, {}, is missing (segment {} ends with a `next` section)",
                        p.display(),
                        n - 1
                    )),
                ));
            }
            let file = parents.open_data(&p, false)?;
            let sctx = file.ctx().with_layer(Layer::Ewf);
            let got = section::read_file_header(&file, &sctx)?;
            if u32::from(got) != n {
                return Err(sctx.corrupt(
                    9,
                    format!("the file header says segment {got} where segment {n} is expected"),
                ));
            }
            segments.push(file);
        }
        let volume = walk.volume.take().ok_or_else(|| {
            ctx.corrupt(
                FILE_HEADER_SIZE,
                "no volume section says how the media is cut into chunks",
            )
        })?;
        let (chunk_size, size) = geometry(&volume, &ctx)?;
        if walk.chunks.len() as u64 != u64::from(volume.chunk_count) {
            return Err(ctx.corrupt(
                FILE_HEADER_SIZE,
                format!(
                    "the tables map {} chunks where the volume section counts {}",
                    walk.chunks.len(),
                    volume.chunk_count
                ),
            ));
        }
        let compression = match volume.compression {
            Some(0) => Some("no compression"),
            Some(1) => Some("fast compression"),
            Some(2) => Some("best compression"),
            _ => None,
        };
        let info = describe(
            &path,
            &Described {
                label: "E01",
                segments: segments.len(),
                compression,
                md5: walk.md5,
                sha1: walk.sha1,
                bytes_per_sector: volume.bytes_per_sector,
                set_identifier: volume.set_identifier,
            },
            chunk_size,
            size,
        );
        Ok(Ewf {
            ctx,
            info,
            segments,
            chunks: walk.chunks,
            chunk_size,
            size,
            units: UnitCache::new(),
        })
    }

    /// The number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The bytes of chunk `number`, decoded (and kept among the last few).
    fn chunk(&self, number: u64) -> Result<std::sync::Arc<[u8]>> {
        let Some(c) = self.chunks.get(number as usize).copied() else {
            return Err(self
                .ctx
                .corrupt(0, format!("chunk {number} is not in the tables")));
        };
        let expected = self.chunk_size.min(self.size - number * self.chunk_size) as usize;
        self.units.get(number, || {
            let file = &self.segments[c.segment as usize];
            let mut stored = vec![0u8; c.stored as usize];
            if !matches!(c.encoding, table::Encoding::Pattern(_)) {
                file.read_at(c.offset, &mut stored)?;
            }
            chunk::decode(
                &c,
                &stored,
                expected,
                number,
                &file.ctx().with_layer(Layer::Ewf),
            )
        })
    }
}

/// Walks the sections of one segment file, gathering what they say into `walk`; returns
/// whether the segment ends with `next` (another segment follows).
fn walk_segment(file: &HostFile, index: u32, walk: &mut Walk) -> Result<bool> {
    let ctx = file.ctx().with_layer(Layer::Ewf);
    let mut at = FILE_HEADER_SIZE;
    let mut sectors: Option<(u64, u64)> = None;
    loop {
        let d = Descriptor::read(file, &ctx, at)?;
        match d.kind.as_str() {
            "next" => return Ok(true),
            "done" => {
                walk.done = true;
                return Ok(false);
            }
            "volume" | "disk" | "data" if walk.volume.is_none() => {
                let v = Volume::read(&d, file, &ctx)?;
                geometry(&v, &ctx)?;
                walk.volume = Some(v);
            }
            "sectors" => {
                let len = d.data_len(file, &ctx)?;
                sectors = Some((d.data(), d.data() + len));
            }
            "table" => {
                let Some(v) = &walk.volume else {
                    return Err(ctx.corrupt(d.offset, "a table section before the volume section"));
                };
                let (chunk, _) = geometry(v, &ctx)?;
                let bounds = table::Bounds {
                    segment: index,
                    sectors,
                    max_stored: chunk + chunk / 8 + 1024,
                    room: u64::from(v.chunk_count).saturating_sub(walk.chunks.len() as u64),
                };
                table::read(&d, file, &ctx, &bounds, &mut walk.chunks)?;
            }
            "hash" => walk.md5 = Some(section::read_hash(&d, file, &ctx)?),
            "digest" => {
                let (md5, sha1) = section::read_digest(&d, file, &ctx)?;
                walk.md5 = Some(md5);
                walk.sha1 = Some(sha1);
            }
            // header, header2, table2 (a copy of table), error2, session, ltree ...
            _ => {}
        }
        if d.next <= at {
            return Err(ctx.corrupt(
                at,
                format!(
                    "{} section's next offset {:#x} does not lie after it: the chain of sections loops",
                    d.kind, d.next
                ),
            ));
        }
        at = d.next;
    }
}

/// The chunk size and media size a volume section gives, checked.
fn geometry(v: &Volume, ctx: &Ctx) -> Result<(u64, u64)> {
    let bps = u64::from(v.bytes_per_sector);
    let chunk = bps * u64::from(v.sectors_per_chunk);
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || chunk == 0 || chunk > MAX_CHUNK {
        return Err(ctx.corrupt(
            FILE_HEADER_SIZE,
            format!(
                "volume section: {} sectors of {bps} bytes a chunk (sectors of 512 to 4096 bytes, chunks up to {MAX_CHUNK} bytes are read)",
                v.sectors_per_chunk
            ),
        ));
    }
    let size = v
        .sector_count
        .checked_mul(bps)
        .filter(|&s| s <= MAX_SIZE)
        .ok_or_else(|| {
            ctx.corrupt(
                FILE_HEADER_SIZE,
                format!(
                    "volume section: {} sectors is too large a media",
                    v.sector_count
                ),
            )
        })?;
    if size.div_ceil(chunk) != u64::from(v.chunk_count) {
        return Err(ctx.corrupt(
            FILE_HEADER_SIZE,
            format!(
                "volume section: {} chunks of {chunk} bytes do not hold {size} bytes of media",
                v.chunk_count
            ),
        ));
    }
    Ok((chunk, size))
}

/// What `volumes` is told of an image, from either version.
struct Described {
    /// `E01` or `Ex01`.
    label: &'static str,
    segments: usize,
    compression: Option<&'static str>,
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    bytes_per_sector: u32,
    set_identifier: Option<[u8; 16]>,
}

/// The description of the image `volumes` shows.
fn describe(path: &Path, d: &Described, chunk_size: u64, size: u64) -> DiskInfo {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut variant = format!(
        "{}, {} segment{}",
        d.label,
        d.segments,
        if d.segments == 1 { "" } else { "s" }
    );
    if let Some(c) = d.compression {
        variant.push_str(", ");
        variant.push_str(c);
    }
    let mut hashes = Vec::new();
    if let Some(m) = d.md5.filter(|m| m.iter().any(|&b| b != 0)) {
        hashes.push(StoredHash::new("MD5", hex(&m)));
    }
    if let Some(s) = d.sha1.filter(|s| s.iter().any(|&b| b != 0)) {
        hashes.push(StoredHash::new("SHA-1", hex(&s)));
    }
    let mut notes = Vec::new();
    if hashes.is_empty() {
        notes.push("the evidence file stores no hash of the media to verify it against".into());
    }
    DiskInfo {
        path: path.display().to_string(),
        format: Format::E01,
        subformat: Subformat::Fixed,
        variant: Some(variant),
        virtual_size: size,
        logical_sector_size: d.bytes_per_sector,
        physical_sector_size: d.bytes_per_sector,
        block_size: Some(chunk_size as u32),
        disk_id: d
            .set_identifier
            .filter(|i| i.iter().any(|&b| b != 0))
            .map(|i| hex(&i)),
        data_write_guid: None,
        notes,
        parent: None,
        stored_hashes: hashes,
    }
}

impl ReadAt for Ewf {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !super::in_bounds(offset, buf.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, self.size));
        }
        super::for_each_block(offset, buf, self.chunk_size, |c, within, piece| {
            let chunk = self.chunk(c)?;
            let from = within as usize;
            match chunk.get(from..from + piece.len()) {
                Some(b) => piece.copy_from_slice(b),
                None => return Err(self.ctx.corrupt(0, format!("chunk {c} is short"))),
            }
            Ok(())
        })
    }

    fn size(&self) -> u64 {
        self.size
    }

    /// Every chunk of the media is stored: the whole disk.
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        Ok(Some(vec![(0, self.size)]))
    }
}

impl Container for Ewf {
    fn info(&self) -> &DiskInfo {
        &self.info
    }
}
