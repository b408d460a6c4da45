//! The structures of an EWF version 1 segment file, after the "Expert Witness Compression
//! Format" specification: the file header, the section descriptors that chain the file's
//! sections, and the fixed-size sections rehost reads whole (volume, hash, digest).
//! Every structure carries an Adler-32 checksum, which is checked before its fields are
//! believed.

use crate::HostFile;
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;

/// The signature of a segment file of a physical evidence file (E01, EWF version 1).
pub const EVF_SIGNATURE: &[u8; 8] = b"EVF\x09\x0d\x0a\xff\x00";
/// The signature of a segment file of EWF version 2 (Ex01).
pub const EVF2_SIGNATURE: &[u8; 8] = b"EVF2\x0d\x0a\x81\x00";
/// The file header's size: signature, fields start, segment number, fields end.
pub const FILE_HEADER_SIZE: u64 = 13;
/// A section descriptor's size: type, next offset, size, padding, checksum.
pub const DESCRIPTOR_SIZE: u64 = 76;

/// The Adler-32 checksum (RFC 1950) every EWF structure carries.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 bytes is the most that can be summed before the 32-bit sums must be reduced.
    let (mut a, mut b) = (1u32, 0u32);
    for block in data.chunks(5552) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// A little-endian u32 at `at` of `b` (which the caller has sized).
pub fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

/// A little-endian u64 at `at` of `b` (which the caller has sized).
pub fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// Checks the Adler-32 stored in the last four bytes of `b` against the bytes before it.
fn check_sum(b: &[u8], ctx: &Ctx, at: u64, what: &str) -> Result<()> {
    let body = b.len() - 4;
    let (stored, computed) = (le32(b, body), adler32(&b[..body]));
    if stored != computed {
        return Err(ctx.corrupt(
            at,
            format!("{what}: checksum {stored:#010x} stored, {computed:#010x} computed"),
        ));
    }
    Ok(())
}

/// Reads the file header and returns the segment number it carries.
pub fn read_file_header(file: &HostFile, ctx: &Ctx) -> Result<u16> {
    let mut h = [0u8; FILE_HEADER_SIZE as usize];
    if file.size() < FILE_HEADER_SIZE {
        return Err(ctx.corrupt(0, "too short for an EWF file header (13 bytes)"));
    }
    file.read_at(0, &mut h)?;
    if &h[..8] == EVF2_SIGNATURE {
        return Err(ctx.corrupt(
            0,
            "an Ex01 (EWF version 2) segment file where a segment of an E01 (version 1) \
             evidence file is expected: the file belongs to another image",
        ));
    }
    if &h[..8] != EVF_SIGNATURE || h[8] != 1 {
        return Err(ctx.corrupt(0, "not an EWF segment file (no EVF signature)"));
    }
    Ok(u16::from_le_bytes([h[9], h[10]]))
}

/// One section descriptor.
#[derive(Debug, Clone)]
pub struct Descriptor {
    /// Where the descriptor is in its segment file.
    pub offset: u64,
    /// The section's type (`header`, `volume`, `sectors`, `table`, `next`, `done`, ...).
    pub kind: String,
    /// The offset of the next section's descriptor (the `next` and `done` sections name
    /// themselves).
    pub next: u64,
    /// The section's size, its descriptor included (0 in `next` and `done` sections).
    pub size: u64,
}

impl Descriptor {
    /// Reads and checks the descriptor at `offset`.
    pub fn read(file: &HostFile, ctx: &Ctx, offset: u64) -> Result<Descriptor> {
        if offset
            .checked_add(DESCRIPTOR_SIZE)
            .is_none_or(|e| e > file.size())
        {
            return Err(ctx.corrupt(
                offset,
                format!(
                    "a section descriptor at {offset:#x} runs past the end of the segment file ({} bytes): the file is truncated",
                    file.size()
                ),
            ));
        }
        let mut d = [0u8; DESCRIPTOR_SIZE as usize];
        file.read_at(offset, &mut d)?;
        check_sum(&d, ctx, offset, "section descriptor")?;
        let end = d[..16].iter().position(|&c| c == 0).unwrap_or(16);
        let kind = String::from_utf8_lossy(&d[..end]).into_owned();
        Ok(Descriptor {
            offset,
            kind,
            next: le64(&d, 16),
            size: le64(&d, 24),
        })
    }

    /// Where the section's data starts.
    pub fn data(&self) -> u64 {
        self.offset + DESCRIPTOR_SIZE
    }

    /// The length of the section's data, checked to lie inside the file.
    pub fn data_len(&self, file: &HostFile, ctx: &Ctx) -> Result<u64> {
        let len = self.size.checked_sub(DESCRIPTOR_SIZE).ok_or_else(|| {
            ctx.corrupt(
                self.offset,
                format!(
                    "{} section of {} bytes is shorter than its descriptor",
                    self.kind, self.size
                ),
            )
        })?;
        if self.data().checked_add(len).is_none_or(|e| e > file.size()) {
            return Err(ctx.corrupt(
                self.offset,
                format!(
                    "{} section of {} bytes at {:#x} runs past the end of the segment file ({} bytes): the file is truncated",
                    self.kind,
                    self.size,
                    self.offset,
                    file.size()
                ),
            ));
        }
        Ok(len)
    }

    /// Reads the section's data whole when it is `len` bytes or more (the rest ignored),
    /// its checksum in the four bytes at `len - 4` checked.
    pub fn read_fixed(&self, file: &HostFile, ctx: &Ctx, len: usize) -> Result<Vec<u8>> {
        let have = self.data_len(file, ctx)?;
        if have < len as u64 {
            return Err(ctx.corrupt(
                self.offset,
                format!(
                    "{} section holds {have} bytes of data where {len} are expected",
                    self.kind
                ),
            ));
        }
        let mut b = vec![0u8; len];
        file.read_at(self.data(), &mut b)?;
        check_sum(&b, ctx, self.data(), &format!("{} section", self.kind))?;
        Ok(b)
    }
}

/// What the `volume` (or `disk`, or a later segment's `data`) section says of the media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The number of chunks the media is cut into.
    pub chunk_count: u32,
    /// Sectors in one chunk.
    pub sectors_per_chunk: u32,
    /// Bytes in one sector.
    pub bytes_per_sector: u32,
    /// Sectors of the media.
    pub sector_count: u64,
    /// The compression level the acquisition asked for (0 none, 1 fast, 2 best), where the
    /// section says.
    pub compression: Option<u8>,
    /// The set identifier shared by the segment files of one image, where the section
    /// carries it.
    pub set_identifier: Option<[u8; 16]>,
}

/// The data of an EnCase volume section: 1052 bytes.
const VOLUME_LEN: usize = 1052;
/// The data of a SMART (and EnCase 1) volume section: 94 bytes.
const VOLUME_SMART_LEN: usize = 94;

impl Volume {
    /// Reads a volume, disk or data section.
    pub fn read(d: &Descriptor, file: &HostFile, ctx: &Ctx) -> Result<Volume> {
        let len = d.data_len(file, ctx)?;
        if len >= VOLUME_LEN as u64 {
            let b = d.read_fixed(file, ctx, VOLUME_LEN)?;
            let mut id = [0u8; 16];
            id.copy_from_slice(&b[64..80]);
            Ok(Volume {
                chunk_count: le32(&b, 4),
                sectors_per_chunk: le32(&b, 8),
                bytes_per_sector: le32(&b, 12),
                sector_count: le64(&b, 16),
                compression: Some(b[52]),
                set_identifier: Some(id),
            })
        } else {
            let b = d.read_fixed(file, ctx, VOLUME_SMART_LEN)?;
            Ok(Volume {
                chunk_count: le32(&b, 4),
                sectors_per_chunk: le32(&b, 8),
                bytes_per_sector: le32(&b, 12),
                sector_count: u64::from(le32(&b, 16)),
                compression: None,
                set_identifier: None,
            })
        }
    }
}

/// Reads the MD5 of a `hash` section.
pub fn read_hash(d: &Descriptor, file: &HostFile, ctx: &Ctx) -> Result<[u8; 16]> {
    let b = d.read_fixed(file, ctx, 36)?;
    let mut md5 = [0u8; 16];
    md5.copy_from_slice(&b[..16]);
    Ok(md5)
}

/// Reads the MD5 and SHA-1 of a `digest` section.
pub fn read_digest(d: &Descriptor, file: &HostFile, ctx: &Ctx) -> Result<([u8; 16], [u8; 20])> {
    let b = d.read_fixed(file, ctx, 80)?;
    let mut md5 = [0u8; 16];
    let mut sha1 = [0u8; 20];
    md5.copy_from_slice(&b[..16]);
    sha1.copy_from_slice(&b[16..36]);
    Ok((md5, sha1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_rfc1950_examples() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let big = vec![0xffu8; 100_000];
        // Reference: computed sum by sum without reduction shortcuts.
        let (mut a, mut b) = (1u64, 0u64);
        for &c in &big {
            a = (a + u64::from(c)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(&big), ((b << 16) | a) as u32);
    }
}
