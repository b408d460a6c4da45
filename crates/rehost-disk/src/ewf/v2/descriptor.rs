//! The structures that frame an EWF2 segment file, after Joachim Metz's "Expert Witness
//! Compression Format 2 (EWF2)": the file header, and the section descriptors that end
//! each section and point back at the one before, so that a segment is read from its end.
//! Each descriptor carries an Adler-32, checked before its fields are believed.

use super::super::section::{adler32, le32, le64};
use crate::HostFile;
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;

/// The file header's size: signature, version, compression method, segment number, set
/// identifier.
pub const FILE_HEADER_SIZE: u64 = 32;
/// A section descriptor's size.
pub const DESCRIPTOR_SIZE: u64 = 64;
/// The most sections read in one segment file (a sector table maps thousands of chunks:
/// a million tables is far more than any segment holds).
const MAX_SECTIONS: usize = 1 << 20;

/// Section types (the descriptor's first field).
pub mod kind {
    /// Device information: the media's sectors and sector size, as text.
    pub const DEVICE_INFORMATION: u32 = 0x01;
    /// Case data: the chunks and sectors per chunk, as text.
    pub const CASE_DATA: u32 = 0x02;
    /// Sector data: the chunks themselves.
    pub const SECTOR_DATA: u32 = 0x03;
    /// Sector table: where each chunk of the sector data before it lies.
    pub const SECTOR_TABLE: u32 = 0x04;
    /// The MD5 of the media.
    pub const MD5_HASH: u32 = 0x08;
    /// The SHA-1 of the media.
    pub const SHA1_HASH: u32 = 0x09;
    /// The keys of an encrypted image.
    pub const ENCRYPTION_KEYS: u32 = 0x0b;
    /// The segment is followed by another.
    pub const NEXT: u32 = 0x0d;
    /// The last segment.
    pub const DONE: u32 = 0x0f;
}

/// The data flag that says the descriptor holds the MD5 of the section's data.
pub const MD5_HASHED: u32 = 0x1;
/// The data flag that says the section's data is encrypted.
pub const ENCRYPTED: u32 = 0x2;

/// What a segment file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// The compression method of the image's chunks and text (0 none, 1 zlib, 2 bzip2).
    pub compression: u16,
    /// The segment's number, from 1.
    pub segment: u32,
    /// The identifier all segments of one image share.
    pub set_identifier: [u8; 16],
}

/// Reads and checks the file header of an Ex01 segment file.
pub fn read_file_header(file: &HostFile, ctx: &Ctx) -> Result<FileHeader> {
    if file.size() < FILE_HEADER_SIZE + DESCRIPTOR_SIZE {
        return Err(ctx.corrupt(
            0,
            format!(
                "{} bytes is too short for an Ex01 segment file (a 32-byte file header and a \
                 64-byte section descriptor at least): the file is truncated",
                file.size()
            ),
        ));
    }
    let mut h = [0u8; FILE_HEADER_SIZE as usize];
    file.read_at(0, &mut h)?;
    if &h[..8] != super::super::EVF2_SIGNATURE {
        return Err(ctx.corrupt(0, "not an Ex01 segment file (no EVF2 signature)"));
    }
    if h[8] != 2 {
        return Err(ctx.unsupported(
            8,
            format!("EWF2 format version {}.{}, where 2.x is read", h[8], h[9]),
        ));
    }
    let mut set_identifier = [0u8; 16];
    set_identifier.copy_from_slice(&h[16..32]);
    Ok(FileHeader {
        compression: u16::from_le_bytes([h[10], h[11]]),
        segment: le32(&h, 12),
        set_identifier,
    })
}

/// One section descriptor; the section's data lies just before it.
#[derive(Debug, Clone)]
pub struct Descriptor {
    /// Where the descriptor is in its segment file.
    pub offset: u64,
    /// The section's type (see [`kind`]).
    pub kind: u32,
    /// The data flags ([`MD5_HASHED`], [`ENCRYPTED`]).
    pub flags: u32,
    /// The offset of the previous section's descriptor, 0 for the first section.
    pub previous: u64,
    /// The size of the section's data, its padding included.
    pub data_size: u64,
    /// The padding's size, within the data size.
    pub padding: u32,
    /// The MD5 of the data, where [`MD5_HASHED`] says.
    pub md5: [u8; 16],
}

impl Descriptor {
    /// Reads and checks the descriptor at `offset`: its checksum, its size, and that its
    /// data lies between the file header and itself.
    pub fn read(file: &HostFile, ctx: &Ctx, offset: u64) -> Result<Descriptor> {
        if offset < FILE_HEADER_SIZE
            || offset
                .checked_add(DESCRIPTOR_SIZE)
                .is_none_or(|e| e > file.size())
        {
            return Err(ctx.corrupt(
                offset,
                format!(
                    "a section descriptor at {offset:#x} does not lie inside the segment file \
                     ({} bytes) after its file header",
                    file.size()
                ),
            ));
        }
        let mut d = [0u8; DESCRIPTOR_SIZE as usize];
        file.read_at(offset, &mut d)?;
        let (stored, computed) = (le32(&d, 60), adler32(&d[..60]));
        if stored != computed {
            return Err(ctx.corrupt(
                offset,
                format!(
                    "section descriptor at {offset:#x}: checksum {stored:#010x} stored, \
                     {computed:#010x} computed"
                ),
            ));
        }
        let mut md5 = [0u8; 16];
        md5.copy_from_slice(&d[32..48]);
        let desc = Descriptor {
            offset,
            kind: le32(&d, 0),
            flags: le32(&d, 4),
            previous: le64(&d, 8),
            data_size: le64(&d, 16),
            padding: le32(&d, 28),
            md5,
        };
        let size = le32(&d, 24);
        if u64::from(size) != DESCRIPTOR_SIZE {
            return Err(ctx.corrupt(
                offset,
                format!(
                    "{} section's descriptor says it is {size} bytes, where it is 64",
                    desc.name()
                ),
            ));
        }
        if desc.data_size > offset - FILE_HEADER_SIZE || u64::from(desc.padding) > desc.data_size {
            return Err(ctx.corrupt(
                offset,
                format!(
                    "{} section's {} bytes of data ({} of padding) before its descriptor at \
                     {offset:#x} do not fit between the file header and the descriptor",
                    desc.name(),
                    desc.data_size,
                    desc.padding
                ),
            ));
        }
        Ok(desc)
    }

    /// Where the section's data starts.
    pub fn data(&self) -> u64 {
        self.offset - self.data_size
    }

    /// The section type's name, for messages.
    pub fn name(&self) -> String {
        match self.kind {
            kind::DEVICE_INFORMATION => "device information".into(),
            kind::CASE_DATA => "case data".into(),
            kind::SECTOR_DATA => "sector data".into(),
            kind::SECTOR_TABLE => "sector table".into(),
            kind::MD5_HASH => "MD5 hash".into(),
            kind::SHA1_HASH => "SHA-1 hash".into(),
            kind::ENCRYPTION_KEYS => "encryption keys".into(),
            kind::NEXT => "next".into(),
            kind::DONE => "done".into(),
            k => format!("type {k:#x}"),
        }
    }

    /// Reads the section's data whole (at most `max` bytes of it, else an error), padding
    /// included, and checks it against the descriptor's MD5 where the flags say it holds
    /// one.
    pub fn read_data(&self, file: &HostFile, ctx: &Ctx, max: u64) -> Result<Vec<u8>> {
        if self.data_size > max {
            return Err(ctx.corrupt(
                self.offset,
                format!(
                    "{} section of {} bytes, where at most {max} are read",
                    self.name(),
                    self.data_size
                ),
            ));
        }
        let mut b = vec![0u8; self.data_size as usize];
        file.read_at(self.data(), &mut b)?;
        if self.flags & MD5_HASHED != 0 {
            use md5::Digest;
            let computed: [u8; 16] = md5::Md5::digest(&b).into();
            if computed != self.md5 {
                return Err(ctx.corrupt(
                    self.data(),
                    format!(
                        "{} section: its data does not match the MD5 its descriptor holds",
                        self.name()
                    ),
                ));
            }
        }
        Ok(b)
    }
}

/// The descriptors of a segment file in the order of the file, read back from the one at
/// its end; each must lie wholly before the data of the next.
pub fn sections(file: &HostFile, ctx: &Ctx) -> Result<Vec<Descriptor>> {
    let last = file.size() - DESCRIPTOR_SIZE;
    let mut d = Descriptor::read(file, ctx, last).map_err(|e| {
        ctx.corrupt(
            last,
            format!(
                "the segment file ({} bytes) does not end with a section descriptor: it is \
                 truncated or damaged ({})",
                file.size(),
                e.kind
            ),
        )
    })?;
    let mut out = Vec::new();
    loop {
        if out.len() >= MAX_SECTIONS {
            return Err(ctx.corrupt(
                d.offset,
                format!("more than {MAX_SECTIONS} sections in one segment file"),
            ));
        }
        let previous = d.previous;
        let data = d.data();
        out.push(d);
        if previous == 0 {
            break;
        }
        if previous
            .checked_add(DESCRIPTOR_SIZE)
            .is_none_or(|e| e > data)
        {
            return Err(ctx.corrupt(
                data,
                format!(
                    "the section whose data starts at {data:#x} names a previous descriptor \
                     at {previous:#x}, which does not lie before it"
                ),
            ));
        }
        d = Descriptor::read(file, ctx, previous)?;
    }
    out.reverse();
    Ok(out)
}
