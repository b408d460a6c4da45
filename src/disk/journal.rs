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
//! A generation without its completion marker was interrupted: the image is rolled back.
//! The journal itself is written under a temporary name and renamed into place only when
//! whole and flushed, so a journal under its real name is never half written.

use super::sync::{Steps, WriteFile};
use crate::disk::plan::Plan;
use crate::error::{Ctx, Layer, Result};
use std::path::{Path, PathBuf};

/// Appended to the image's file name to name its journal.
pub const SUFFIX: &str = ".rehost-undo";
const MAGIC: &[u8; 8] = b"RHUNDO\r\n";
const COMMITTED: &[u8; 8] = b"RHUNDOK\n";
const UNDOING: &[u8; 8] = b"RHUNDOU\n";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 96;
const RANGE_LEN: u64 = 32;
const MARKER_LEN: u64 = 32;
const UNIT: u64 = 512;
const MAX_NAME: u64 = 4096;
const PIECE: u64 = 1 << 20;

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
struct Range {
    offset: u64,
    len: u64,
    saved: u64,
    scratch: bool,
    /// Journal offset of the saved bytes.
    saved_at: u64,
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
    start: u64,
    end: u64,
    body_crc: u32,
    ranges: Vec<Range>,
    units: Vec<u32>,
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
fn units(offset: u64, len: u64, orig_len: u64) -> impl Iterator<Item = (u64, u64)> {
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
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | u64::from(le32(b, o + 4)) << 32
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

/// Reads the journal of `image`, if there is one.
pub fn read(image: &Path) -> Result<Option<Journal>> {
    let path = journal_path(image);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let f = WriteFile::open_read(&path, Layer::Journal)?;
    parse(&f, &path).map(Some)
}

/// What the end of the journal of `image` says, without checking the journal: `None`
/// when there is no journal. For notes on read-only opens, which must stay cheap.
pub fn quick_state(image: &Path) -> Option<State> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(journal_path(image)).ok()?;
    let len = f.metadata().ok()?.len();
    let mut tail = [0u8; MARKER_LEN as usize];
    if len < tail.len() as u64 || f.read_exact_at(&mut tail, len - MARKER_LEN).is_err() {
        return Some(State::Pending);
    }
    Some(match &tail[..8] {
        m if m == COMMITTED => State::Committed,
        m if m == UNDOING => State::Undoing,
        _ => State::Pending,
    })
}

impl WriteFile<'_> {
    fn exact(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len as usize];
        if self.read_some(offset, &mut b)? != b.len() {
            return Err(truncated(&self.ctx, offset, what));
        }
        Ok(b)
    }
}

fn truncated(ctx: &Ctx, at: u64, what: &str) -> crate::Error {
    ctx.corrupt(
        at,
        format!("the journal is truncated: {what} runs past its end; it cannot be used"),
    )
}

fn parse(f: &WriteFile, path: &Path) -> Result<Journal> {
    let ctx = &f.ctx;
    let len = f.len()?;
    let mut gens: Vec<Generation> = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let head = f.exact(pos, (len - pos).min(8), "a record")?;
        if head.len() == 8 && head == MAGIC {
            if let Some(last) = gens.last() {
                if last.state != State::Committed {
                    return Err(ctx.corrupt(
                        pos,
                        format!(
                            "generation {} is not complete, yet another follows it",
                            last.number
                        ),
                    ));
                }
            }
            let g = parse_generation(f, pos, len, gens.last())?;
            pos = g.end();
            gens.push(g);
        } else if head.len() == 8 && (head == COMMITTED || head == UNDOING) {
            let Some(g) = gens.last_mut() else {
                return Err(ctx.corrupt(pos, "a marker before any generation"));
            };
            let m = f.exact(pos, MARKER_LEN, "a marker")?;
            let undoing = head == UNDOING;
            if le32(&m, 28) != crc32c::crc32c(&m[..28]) || m[..28] != marker(g, undoing)[..28] {
                return Err(ctx.corrupt(
                    pos,
                    format!("the marker of generation {} is damaged", g.number),
                ));
            }
            g.state = match (g.state, undoing) {
                (State::Pending, false) => State::Committed,
                (State::Committed, true) => State::Undoing,
                _ => return Err(ctx.corrupt(pos, "markers out of order")),
            };
            pos += MARKER_LEN;
        } else if len - pos < MARKER_LEN && f.exact(pos, len - pos, "")?.iter().all(|b| *b == 0) {
            // A marker whose append was cut short by a crash: not written.
            break;
        } else {
            return Err(ctx.corrupt(
                pos,
                if pos == 0 {
                    "not a rehost undo journal (no magic RHUNDO)".to_string()
                } else {
                    "unexpected bytes after the last record".to_string()
                },
            ));
        }
    }
    if gens.is_empty() {
        return Err(ctx.corrupt(0, "the journal is empty"));
    }
    Ok(Journal {
        path: path.to_path_buf(),
        generations: gens,
        len: pos,
    })
}

fn parse_generation(
    f: &WriteFile,
    start: u64,
    len: u64,
    prev: Option<&Generation>,
) -> Result<Generation> {
    let ctx = &f.ctx;
    let h = f.exact(start, HEADER_LEN, "a generation header")?;
    let version = le32(&h, 8);
    if version != VERSION {
        return Err(ctx.unsupported(start + 8, format!("journal version {version}")));
    }
    let name_len = u64::from(le32(&h, 60));
    if name_len > MAX_NAME {
        return Err(ctx.corrupt(start + 60, format!("a file name of {name_len} bytes")));
    }
    let name = f.exact(start + HEADER_LEN, name_len, "the header")?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..92]), &name);
    if crc != le32(&h, 92) {
        return Err(ctx.corrupt(
            start + 92,
            "the generation header's checksum does not match: the journal is damaged",
        ));
    }
    let (count, unit_count, saved_bytes) = (le64(&h, 16), le64(&h, 24), le64(&h, 32));
    let (orig_len, new_len) = (le64(&h, 40), le64(&h, 48));
    let number = le32(&h, 12);
    let body_at = start + HEADER_LEN + name_len;
    let body_len = count
        .checked_mul(RANGE_LEN)
        .and_then(|t| t.checked_add(unit_count.checked_mul(4)?))
        .and_then(|t| t.checked_add(saved_bytes));
    let Some(body_len) = body_len.filter(|b| body_at.checked_add(*b).is_some_and(|e| e <= len))
    else {
        return Err(truncated(ctx, body_at, &format!("generation {number}")));
    };
    if let Some(p) = prev {
        if p.new_len != orig_len || p.number.checked_add(1) != Some(number) {
            return Err(ctx.corrupt(
                start,
                format!(
                    "generation {number} does not follow generation {} of this journal",
                    p.number
                ),
            ));
        }
    }
    let table = f.exact(body_at, count * RANGE_LEN, "the range table")?;
    let units_at = body_at + count * RANGE_LEN;
    let crcs = f.exact(units_at, unit_count * 4, "the unit checksums")?;
    let mut ranges = Vec::with_capacity(count as usize);
    let mut saved_at = units_at + unit_count * 4;
    let (mut want_units, mut want_saved) = (0u64, 0u64);
    for i in 0..count as usize {
        let e = &table[i * 32..i * 32 + 32];
        let (offset, rlen, saved) = (le64(e, 0), le64(e, 8), le64(e, 16));
        let scratch = le32(e, 24) & 1 != 0;
        let end = offset.checked_add(rlen);
        if end.is_none_or(|e| e > new_len)
            || saved != orig_len.min(offset + rlen).saturating_sub(offset)
        {
            return Err(ctx.corrupt(
                body_at + i as u64 * RANGE_LEN,
                format!("range {i} of generation {number} is inconsistent"),
            ));
        }
        if !scratch {
            want_units += units(offset, rlen, orig_len).count() as u64;
        }
        want_saved = want_saved.saturating_add(saved);
        ranges.push(Range {
            offset,
            len: rlen,
            saved,
            scratch,
            saved_at,
        });
        saved_at = saved_at.saturating_add(saved);
    }
    if want_units != unit_count || want_saved != saved_bytes {
        return Err(ctx.corrupt(
            body_at,
            format!("generation {number} counts its units or saved bytes wrongly"),
        ));
    }
    // The body's checksum, read in pieces.
    let mut crc = 0u32;
    let mut at = body_at;
    while at < body_at + body_len {
        let n = (body_at + body_len - at).min(PIECE);
        crc = crc32c::crc32c_append(crc, &f.exact(at, n, "the body")?);
        at += n;
    }
    let body_crc = le32(&h, 56);
    if crc != body_crc {
        return Err(ctx.corrupt(
            body_at,
            format!(
                "the checksum of generation {number} does not match its bytes: the journal is \
                 damaged and cannot be used"
            ),
        ));
    }
    Ok(Generation {
        number,
        state: State::Pending,
        orig_len,
        new_len,
        saved_bytes,
        image_name: String::from_utf8_lossy(&name).into_owned(),
        created: le64(&h, 64),
        start,
        end: body_at + body_len,
        body_crc,
        units: crcs.chunks_exact(4).map(|c| le32(c, 0)).collect(),
        ranges,
    })
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

    /// Checks that `image` holds what this generation's commit left, or (unless `strict`)
    /// any mixture of that and what it overwrote, sector by sector.
    pub(crate) fn check(&self, journal: &WriteFile, image: &WriteFile, strict: bool) -> Result<()> {
        let have = image.len()?;
        let jctx = &journal.ctx;
        let foreign = |what: String| {
            jctx.corrupt(
                self.start,
                format!(
                    "{what}: the image was changed after the commit of generation {}, or this \
                     journal belongs to another image (it was made for {:?}); nothing was \
                     restored",
                    self.number, self.image_name
                ),
            )
        };
        if have != self.new_len && (strict || have != self.orig_len) {
            return Err(foreign(format!(
                "the image is {have} bytes long, the commit left it {} (before: {})",
                self.new_len, self.orig_len
            )));
        }
        let mut crcs = self.units.iter();
        for r in self.ranges.iter().filter(|r| !r.scratch) {
            let mut pos = r.offset;
            while pos < r.offset + r.len {
                // Windows end on sector boundaries, so that they cut no unit.
                let stop = ((pos + PIECE) / UNIT * UNIT).min(r.offset + r.len);
                let n = stop - pos;
                let mut cur = vec![0u8; n as usize];
                let got = image.read_some(pos, &mut cur)? as u64;
                let old = if pos < r.offset + r.saved {
                    let k = (r.offset + r.saved - pos).min(n);
                    journal.exact(r.saved_at + (pos - r.offset), k, "the saved bytes")?
                } else {
                    Vec::new()
                };
                for (s, e) in units(pos, n, self.orig_len) {
                    let want = *crcs.next().unwrap_or(&0);
                    let (a, b) = ((s - pos) as usize, (e - pos) as usize);
                    let bytes = &cur[a..b];
                    let present = e - pos <= got;
                    let is_new = present && crc32c::crc32c(bytes) == want;
                    let is_old = if s < self.orig_len {
                        present && old.get(a..b) == Some(bytes)
                    } else {
                        s - pos >= got || bytes.iter().all(|x| *x == 0)
                    };
                    if !(is_new || !strict && is_old) {
                        return Err(foreign(format!(
                            "the image's bytes at {s:#x} are {} the commit wrote",
                            if strict {
                                "not what"
                            } else {
                                "neither what they were before nor what"
                            }
                        )));
                    }
                }
                pos += n;
            }
        }
        Ok(())
    }

    /// Writes the saved bytes back into `image`, restores its length and flushes it.
    pub(crate) fn restore(
        &self,
        journal: &WriteFile,
        image: &WriteFile,
        steps: &mut Steps,
    ) -> Result<u64> {
        let mut restored = 0;
        for r in &self.ranges {
            let mut done = 0;
            while done < r.saved {
                let n = (r.saved - done).min(PIECE);
                let old = journal.exact(r.saved_at + done, n, "the saved bytes")?;
                image.write(steps, r.offset + done, &old)?;
                done += n;
            }
            restored += r.saved;
        }
        if image.len()? != self.orig_len {
            image.set_len(steps, self.orig_len)?;
        }
        image.sync(steps)?;
        Ok(restored)
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
