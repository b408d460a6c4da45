//! EWF version 2 (Ex01: EnCase 7 and later, libewf's `ewfacquire -f encase7-v2`), read-only,
//! after Joachim Metz's "Expert Witness Compression Format 2 (EWF2)".
//!
//! A segment file is a 32-byte file header (the compression method, the segment's number,
//! the set identifier its segments share) and sections, each its data followed by a
//! descriptor that points back at the one before: a segment is read from its end. The
//! device information (the media's sectors and sector size) and the case data (chunks,
//! sectors per chunk) are text; `sector data` sections hold the chunks and the `sector
//! table` after each says where each chunk lies, its size and whether it is compressed
//! (zlib), followed by its Adler-32, or a pattern repeated; the MD5 and SHA-1 sections
//! hold the media's hashes; a segment ends with `next`, the last with `done`.
//!
//! Every descriptor's, table's and hash's Adler-32 is checked, and a descriptor's MD5 of
//! its section where it holds one (sector data excepted: its chunks carry their own
//! checksums, checked as they are read); every offset and size is checked against the
//! segment file, and a chunk must inflate to its size exactly. Encrypted images are
//! refused, and so are images compressed by bzip2, which libewf's tools do not write.

mod descriptor;
mod table;
mod text;

use super::table::{Chunk, Encoding};
use super::{describe, Described, Ewf, MAX_CHUNK, MAX_SIZE};
use crate::tables::UnitCache;
use crate::{HostFile, ParentOpener};
use descriptor::{kind, Descriptor, FileHeader, ENCRYPTED};
use rehost_core::error::{Ctx, ErrorKind, Layer, Location, Result};
use std::path::Path;
use text::Object;

/// The most bytes of a text section read.
const MAX_TEXT_SECTION: u64 = 1 << 20;

/// How the media is cut into chunks.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    chunk: u64,
    size: u64,
    count: u64,
    bytes_per_sector: u32,
}

/// What the walk through the segments gathers.
#[derive(Default)]
struct Walk {
    device: Option<Object>,
    case: Option<Object>,
    /// The media's cut, once both texts are read.
    geometry: Option<Geometry>,
    chunks: Vec<Chunk>,
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    done: bool,
}

/// Opens the Ex01 image whose first segment file is `first`, and its other segments beside
/// it.
pub fn open(first: HostFile, parents: &ParentOpener) -> Result<Ewf> {
    let ctx = first.ctx().with_layer(Layer::Ewf);
    let header = descriptor::read_file_header(&first, &ctx)?;
    let path = Path::new(first.name()).to_path_buf();
    if header.segment != 1 {
        let hint = super::segment_path_v2(&path, 1)
            .map(|p| format!(": give rehost the first, {}", p.display()))
            .unwrap_or_default();
        return Err(ctx.unsupported(
            12,
            format!(
                "this is segment {} of an Ex01 evidence file{hint}",
                header.segment
            ),
        ));
    }
    match header.compression {
        0 | 1 => {}
        2 => {
            return Err(ctx.unsupported(
                10,
                "this Ex01 evidence file is compressed by bzip2, which rehost does not read \
                 (it reads zlib-compressed and uncompressed Ex01): export it to a raw image \
                 with libewf's `ewfexport -f raw` and give rehost the result",
            ))
        }
        m => {
            return Err(ctx.corrupt(
                10,
                format!("the file header names compression method {m}, which EWF2 does not define"),
            ))
        }
    }
    let mut walk = Walk::default();
    let mut segments = vec![first];
    loop {
        let index = segments.len() as u32 - 1;
        let next = walk_segment(&segments[index as usize], index, &header, &mut walk)?;
        if walk.done || !next {
            break;
        }
        let n = index + 2;
        let Some(p) = super::segment_path_v2(&path, n) else {
            return Err(ctx.unsupported(
                0,
                format!(
                    "segment {n} has no name in the Ex01 scheme beside {} (the extension must \
                     be a letter, x and two digits, as .Ex01)",
                    path.display()
                ),
            ));
        };
        if !p.is_file() {
            return Err(ctx.error(
                Location::None,
                ErrorKind::NotFound(format!(
                    "segment {n} of the evidence file, {}, is missing (segment {} ends with a \
                     `next` section)",
                    p.display(),
                    n - 1
                )),
            ));
        }
        let file = parents.open_data(&p, false)?;
        let sctx = file.ctx().with_layer(Layer::Ewf);
        let got = descriptor::read_file_header(&file, &sctx)?;
        if got.segment != n {
            return Err(sctx.corrupt(
                12,
                format!(
                    "the file header says segment {} where segment {n} is expected",
                    got.segment
                ),
            ));
        }
        if got.set_identifier != header.set_identifier || got.compression != header.compression {
            return Err(sctx.corrupt(
                16,
                "the file header's set identifier or compression method differs from the first \
                 segment's: the file belongs to another image",
            ));
        }
        segments.push(file);
    }
    // An image without a sector table (an empty media) still says its geometry.
    let Geometry {
        chunk: chunk_size,
        size,
        count,
        bytes_per_sector,
    } = match walk.geometry {
        Some(g) => g,
        None => geometry(&walk, &ctx, descriptor::FILE_HEADER_SIZE)?,
    };
    if walk.chunks.len() as u64 != count {
        return Err(ctx.corrupt(
            descriptor::FILE_HEADER_SIZE,
            format!(
                "the sector tables map {} chunks where the case data counts {count}",
                walk.chunks.len()
            ),
        ));
    }
    let compressed = walk.chunks.iter().any(|c| c.encoding == Encoding::Zlib);
    let info = describe(
        &path,
        &Described {
            label: "Ex01",
            segments: segments.len(),
            compression: Some(if compressed {
                "zlib compression"
            } else {
                "no compression"
            }),
            md5: walk.md5,
            sha1: walk.sha1,
            bytes_per_sector,
            set_identifier: Some(header.set_identifier),
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

/// Walks the sections of one segment file, gathering what they say into `walk`; returns
/// whether the segment ends with `next` (another segment follows).
fn walk_segment(file: &HostFile, index: u32, header: &FileHeader, walk: &mut Walk) -> Result<bool> {
    let ctx = file.ctx().with_layer(Layer::Ewf);
    let sections = descriptor::sections(file, &ctx)?;
    let mut sectors: Option<(u64, u64)> = None;
    for d in &sections {
        if d.flags & ENCRYPTED != 0 || d.kind == kind::ENCRYPTION_KEYS {
            return Err(ctx.unsupported(
                d.offset,
                format!(
                    "this Ex01 evidence file is encrypted ({} section at {:#x}), which rehost \
                     does not read: decrypt it in EnCase (or export it to a raw image there) \
                     and give rehost the result",
                    d.name(),
                    d.offset
                ),
            ));
        }
        match d.kind {
            kind::DEVICE_INFORMATION if walk.device.is_none() => {
                walk.device = Some(read_text(d, file, &ctx, header, "device information")?);
            }
            kind::CASE_DATA if walk.case.is_none() => {
                walk.case = Some(read_text(d, file, &ctx, header, "case data")?);
            }
            kind::SECTOR_DATA => sectors = Some((d.data(), d.offset)),
            kind::SECTOR_TABLE => {
                let Geometry { chunk, count, .. } = match walk.geometry {
                    Some(g) => g,
                    None => {
                        let g = geometry(walk, &ctx, d.offset)?;
                        walk.geometry = Some(g);
                        g
                    }
                };
                let bounds = table::Bounds {
                    segment: index,
                    sectors,
                    max_stored: chunk + chunk / 8 + 1024,
                    first: walk.chunks.len() as u64,
                    room: count.saturating_sub(walk.chunks.len() as u64),
                };
                table::read(d, file, &ctx, &bounds, &mut walk.chunks)?;
            }
            kind::MD5_HASH => {
                let b = read_hash(d, file, &ctx, 16)?;
                let mut m = [0u8; 16];
                m.copy_from_slice(&b);
                walk.md5 = Some(m);
            }
            kind::SHA1_HASH => {
                let b = read_hash(d, file, &ctx, 20)?;
                let mut s = [0u8; 20];
                s.copy_from_slice(&b);
                walk.sha1 = Some(s);
            }
            // error, session, restart, analytical data, final information ...
            _ => {}
        }
    }
    match sections.last().map(|d| d.kind) {
        Some(kind::NEXT) => Ok(true),
        Some(kind::DONE) => {
            walk.done = true;
            Ok(false)
        }
        _ => {
            let last = sections.last().map(|d| d.offset).unwrap_or(0);
            Err(ctx.corrupt(
                last,
                "the segment file ends without a `next` or `done` section: it is truncated",
            ))
        }
    }
}

/// Reads a text section's `main` object.
fn read_text(
    d: &Descriptor,
    file: &HostFile,
    ctx: &Ctx,
    header: &FileHeader,
    what: &str,
) -> Result<Object> {
    let data = d.read_data(file, ctx, MAX_TEXT_SECTION)?;
    let body = &data[..data.len() - d.padding as usize];
    text::read(body, header.compression, what, ctx, d.data())
}

/// Reads a hash section: `len` bytes of hash and their Adler-32.
fn read_hash(d: &Descriptor, file: &HostFile, ctx: &Ctx, len: usize) -> Result<Vec<u8>> {
    let data = d.read_data(file, ctx, 4096)?;
    if data.len() < len + 4 {
        return Err(ctx.corrupt(
            d.offset,
            format!(
                "{} section holds {} bytes, where {} are expected",
                d.name(),
                data.len(),
                len + 4
            ),
        ));
    }
    let (stored, computed) = (
        super::section::le32(&data, len),
        super::section::adler32(&data[..len]),
    );
    if stored != computed {
        return Err(ctx.corrupt(
            d.data(),
            format!(
                "{} section: checksum {stored:#010x} stored, {computed:#010x} computed",
                d.name()
            ),
        ));
    }
    Ok(data[..len].to_vec())
}

/// The chunk size, media size, chunk count and sector size the device information and case data give,
/// checked; `at` is the table that needs them.
fn geometry(walk: &Walk, ctx: &Ctx, at: u64) -> Result<Geometry> {
    let (Some(device), Some(case)) = (&walk.device, &walk.case) else {
        return Err(ctx.corrupt(
            at,
            "a sector table before the device information and case data that say how the \
             media is cut into chunks",
        ));
    };
    let need = |o: &Object, tag: &str, what: &str| -> Result<u64> {
        o.number(tag, what, ctx, at)?
            .ok_or_else(|| ctx.corrupt(at, format!("{what} does not give `{tag}`")))
    };
    let sectors = need(device, "ts", "device information")?;
    let bps = device
        .number("bp", "device information", ctx, at)?
        .unwrap_or(512);
    let per_chunk = need(case, "sb", "case data")?;
    let count = need(case, "tb", "case data")?;
    let chunk = bps.saturating_mul(per_chunk);
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || chunk == 0 || chunk > MAX_CHUNK {
        return Err(ctx.corrupt(
            at,
            format!(
                "case data: {per_chunk} sectors of {bps} bytes a chunk (sectors of 512 to 4096 \
                 bytes, chunks up to {MAX_CHUNK} bytes are read)"
            ),
        ));
    }
    let size = sectors
        .checked_mul(bps)
        .filter(|&s| s <= MAX_SIZE)
        .ok_or_else(|| {
            ctx.corrupt(
                at,
                format!("device information: {sectors} sectors is too large a media"),
            )
        })?;
    if size.div_ceil(chunk) != count {
        return Err(ctx.corrupt(
            at,
            format!("case data: {count} chunks of {chunk} bytes do not hold {size} bytes of media"),
        ));
    }
    Ok(Geometry {
        chunk,
        size,
        count,
        bytes_per_sector: bps as u32,
    })
}
