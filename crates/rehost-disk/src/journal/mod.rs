//! The undo journal, `IMAGE.rehost-undo`: the bytes a commit in place overwrote, so that
//! the commit can be rolled back after a crash and undone afterwards.
//!
//! # Layout
//! The journal is a sequence of generations, one per commit, oldest first; all numbers are
//! little-endian. A generation is
//! - a 96-byte header: the magic `RHUNDO\r\n`, the version (1), the generation number, the
//!   number of ranges and of checked units, the bytes saved, the image file's length before
//!   and after the commit, the CRC-32C of the body, the length of the image's file name,
//!   the time, and the CRC-32C of the header and the name; then the file name;
//! - the body: one 32-byte entry per range the commit writes (file offset, length, bytes
//!   saved, flags: bit 0 scratch), then the CRC-32C of every checked unit's new content,
//!   then the saved bytes: the original content of each range, as far as it lies inside the
//!   original file;
//! - markers appended later, 32 bytes each (magic, generation, body CRC, length, CRC-32C):
//!   `RHUNDOK\n` when the commit is complete, then `RHUNDOU\n` when an undo has begun.
//!
//! A unit is the part of a range inside one 512-byte sector of the file (cut also at the
//! original length). Writes land whole sectors or nothing, so after a crash every unit holds
//! either its old or its new bytes: a journal whose image holds anything else belongs to
//! another image (or the image was changed since), and is refused.
//!
//! Generation numbers rise: by one in the journal of a file written alone; the journal of
//! an extent file of a VMDK of several files numbers each generation as the descriptor's
//! generation of the same commit (see `several`), so that the two are found together.
//!
//! A generation without its completion marker was interrupted: the image is rolled back.
//! The journal itself is written under a temporary name and renamed into place only when
//! whole and flushed, so a journal under its real name is never half written.

mod apply;
mod read;

pub use read::{quick_state, read};

use super::sync::WriteFile;
use crate::plan::Plan;
use rehost_core::error::{Ctx, Layer, Result};
use std::path::{Path, PathBuf};

/// Appended to the image's file name to name its journal.
pub const SUFFIX: &str = ".rehost-undo";
pub(super) const MAGIC: &[u8; 8] = b"RHUNDO\r\n";
pub(super) const COMMITTED: &[u8; 8] = b"RHUNDOK\n";
pub(super) const UNDOING: &[u8; 8] = b"RHUNDOU\n";
pub(super) const VERSION: u32 = 1;
pub(super) const HEADER_LEN: u64 = 96;
pub(super) const RANGE_LEN: u64 = 32;
pub(super) const MARKER_LEN: u64 = 32;
pub(super) const UNIT: u64 = 512;
pub(super) const MAX_NAME: u64 = 4096;
pub(super) const PIECE: u64 = 1 << 20;

/// The journal of `image`: its path with [`SUFFIX`] appended.
pub fn journal_path(image: &Path) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(SUFFIX);
    image.with_file_name(name)
}

/// Where a journal is written before it is renamed into place.
pub(crate) fn partial_path(image: &Path) -> PathBuf {
    let mut p = journal_path(image).into_os_string();
    p.push(".partial");
    PathBuf::from(p)
}

/// How far a generation's commit got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The journal is in place; the commit did not finish: roll it back.
    Pending,
    /// The commit finished; `rehost undo` can restore what it overwrote.
    Committed,
    /// An undo began and did not finish: finish it.
    Undoing,
}

/// One range a commit wrote.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    pub offset: u64,
    pub len: u64,
    pub saved: u64,
    pub scratch: bool,
    /// Journal offset of the saved bytes.
    pub saved_at: u64,
}

/// One commit's record.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Number of the commit (0 for the first since the journal was made).
    pub number: u32,
    /// How far it got.
    pub state: State,
    /// The image file's length before the commit.
    pub orig_len: u64,
    /// Its length after.
    pub new_len: u64,
    /// Bytes of original content saved.
    pub saved_bytes: u64,
    /// The image's file name when the commit was made.
    pub image_name: String,
    /// Seconds since 1970 when the journal was written.
    pub created: u64,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) body_crc: u32,
    pub(super) ranges: Vec<Range>,
    pub(super) units: Vec<u32>,
}

/// A parsed journal.
#[derive(Debug, Clone)]
pub struct Journal {
    /// Its path.
    pub path: PathBuf,
    /// The generations, oldest first.
    pub generations: Vec<Generation>,
    /// Bytes of the journal that were parsed (a torn zero tail excluded).
    pub len: u64,
}

/// The units of `[offset, offset + len)`: cut at 512-byte sectors and at `orig_len`.
pub(super) fn units(offset: u64, len: u64, orig_len: u64) -> impl Iterator<Item = (u64, u64)> {
    let end = offset + len;
    let mut pos = offset;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let mut stop = ((pos / UNIT) + 1).saturating_mul(UNIT).min(end);
        if pos < orig_len && stop > orig_len {
            stop = orig_len;
        }
        let u = (pos, stop);
        pos = stop;
        Some(u)
    })
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
/// How many units `units(offset, len, orig_len)` gives, without counting them one by one
/// (a damaged journal may name ranges of any length).
pub(super) fn unit_count(offset: u64, len: u64, orig_len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let end = offset.saturating_add(len);
    let sectors = end.div_ceil(UNIT) - offset / UNIT;
    let cut = orig_len > offset && orig_len < end && orig_len % UNIT != 0;
    sectors + u64::from(cut)
}

/// The generation record of `plan`, with the original bytes read from `image` (which must
/// still be `plan.file_len` bytes long).
pub(crate) fn encode(plan: &Plan, image: &WriteFile, number: u32, name: &str) -> Result<Vec<u8>> {
    let orig = plan.file_len;
    let mut table = Vec::new();
    let mut crcs = Vec::new();
    let mut saved = Vec::new();
    let mut count = 0u64;
    for w in plan.writes() {
        let keep = orig.min(w.end()).saturating_sub(w.offset);
        put64(&mut table, w.offset);
        put64(&mut table, w.data.len() as u64);
        put64(&mut table, keep);
        put32(&mut table, u32::from(w.scratch));
        put32(&mut table, 0);
        count += 1;
        if !w.scratch {
            for (s, e) in units(w.offset, w.data.len() as u64, orig) {
                let at = (s - w.offset) as usize;
                put32(
                    &mut crcs,
                    crc32c::crc32c(&w.data[at..(e - w.offset) as usize]),
                );
            }
        }
        let from = saved.len();
        saved.resize(from + keep as usize, 0);
        if image.read_some(w.offset, &mut saved[from..])? != keep as usize {
            return Err(image.ctx.invalid(format!(
                "the image is shorter than the {orig} bytes it had when the commit was planned"
            )));
        }
    }
    let mut body = table;
    body.extend_from_slice(&crcs);
    body.extend_from_slice(&saved);
    let body_crc = crc32c::crc32c(&body);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = &name.as_bytes()[..name.len().min(MAX_NAME as usize)];
    let mut h = Vec::with_capacity(HEADER_LEN as usize + name.len() + body.len());
    h.extend_from_slice(MAGIC);
    put32(&mut h, VERSION);
    put32(&mut h, number);
    put64(&mut h, count);
    put64(&mut h, (crcs.len() / 4) as u64);
    put64(&mut h, saved.len() as u64);
    put64(&mut h, orig);
    put64(&mut h, plan.new_len);
    put32(&mut h, body_crc);
    put32(&mut h, name.len() as u32);
    put64(&mut h, created);
    h.resize(92, 0);
    let c = crc32c::crc32c_append(crc32c::crc32c(&h), name);
    put32(&mut h, c);
    h.extend_from_slice(name);
    h.extend_from_slice(&body);
    Ok(h)
}

/// A completion (`undoing: false`) or undo marker for generation `g`.
pub(crate) fn marker(g: &Generation, undoing: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(MARKER_LEN as usize);
    m.extend_from_slice(if undoing { UNDOING } else { COMMITTED });
    put32(&mut m, g.number);
    put32(&mut m, g.body_crc);
    put64(&mut m, g.new_len);
    put32(&mut m, 0);
    let c = crc32c::crc32c(&m);
    put32(&mut m, c);
    m
}

impl Generation {
    /// The journal offset just past the generation's body.
    fn end(&self) -> u64 {
        self.end
    }

    /// Journal offset where the generation begins (the journal is cut here to drop it).
    pub(crate) fn start(&self) -> u64 {
        self.start
    }
}

/// An error context for the journal of `image`.
pub(crate) fn ctx(image: &Path) -> Ctx {
    Ctx::new(journal_path(image).display().to_string(), Layer::Journal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_counted_as_they_are_cut() {
        let mut x = 12345u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (o, l, orig) = (x % 5000, (x >> 20) % 3000, (x >> 40) % 9000);
            assert_eq!(
                units(o, l, orig).count() as u64,
                unit_count(o, l, orig),
                "{o} {l} {orig}"
            );
        }
    }

    #[test]
    fn units_cut_at_sectors_and_the_original_length() {
        let u: Vec<_> = units(500, 1100, 1030).collect();
        assert_eq!(
            u,
            vec![
                (500, 512),
                (512, 1024),
                (1024, 1030),
                (1030, 1536),
                (1536, 1600)
            ]
        );
        assert_eq!(units(0, 0, 10).count(), 0);
    }

    #[test]
    fn journal_names_sit_beside_the_image() {
        let p = journal_path(Path::new("/x/disk.vhdx"));
        assert_eq!(p, Path::new("/x/disk.vhdx.rehost-undo"));
        assert_eq!(
            partial_path(Path::new("d.raw")),
            Path::new("d.raw.rehost-undo.partial")
        );
    }
}
