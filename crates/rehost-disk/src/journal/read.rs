//! Reading a journal: every generation's header, table and checksums checked, its saved
//! bytes checksummed in pieces, the markers that follow it; nothing is allocated beyond
//! what the journal's own length bounds.

use super::*;
use rehost_core::error::{Ctx, Layer, Result};
use rehost_core::le::{u32_at, u64_at};
use std::path::Path;

/// Reads the journal of `image`, if there is one.
pub fn read(image: &Path) -> Result<Option<Journal>> {
    let path = journal_path(image);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let f = WriteFile::open_read(&path, Layer::Journal)?;
    parse(&f, &path)
        .map(Some)
        .map_err(|e| unusable(image, &path, e))
}

/// A journal that cannot be read, said with what it is, what its end still says, and what
/// the user can do: undo, and any write into the image, are refused while it is there.
fn unusable(image: &Path, path: &Path, e: rehost_core::Error) -> rehost_core::Error {
    use rehost_core::error::ErrorKind;
    let (img, j) = (image.display(), path.display());
    let what = format!(
        "{j} is the undo journal of {img}: the bytes that rehost's writes in place replaced, \
         kept so that `rehost undo` can put them back"
    );
    let kind = match e.kind {
        ErrorKind::Unsupported(m) => ErrorKind::Unsupported(format!(
            "{m}. {what}. It was written by another version of rehost: undo with that \
             version. This one will not undo {img} or write into it while the journal is there"
        )),
        ErrorKind::Corrupt(m) => {
            let last = match tail_marker(path) {
                Some(State::Committed) => format!(
                    "Its last record says that rehost's last write finished, so {img} holds \
                     each change rehost made, whole"
                ),
                Some(State::Undoing) => format!(
                    "Its last record says that an undo began and did not finish: {img} may \
                     hold part of it, so restore it from a backup rather than keep it"
                ),
                _ => format!(
                    "Its end does not say whether rehost's last write finished: {img} may hold \
                     part of it, so check it (rehost check) before you keep it"
                ),
            };
            ErrorKind::Corrupt(format!(
                "{m}. {what}. Damaged, it cannot be used: rehost will not undo {img} or write \
                 into it (in place or into a new image) while it is there. {last}. What you \
                 can do: keep a copy of the journal; to have {img} as it was before rehost \
                 wrote into it, restore it from a backup; to keep {img} as it is now and give \
                 up undoing rehost's changes, move the journal aside (mv '{j}' '{j}.damaged')"
            ))
        }
        other => other,
    };
    rehost_core::Error { kind, ..e }
}

/// What the journal's last 32 bytes say, when they are a whole marker (its own checksum
/// right): a commit finished, or an undo began. `None` when they are not.
fn tail_marker(path: &Path) -> Option<State> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut m = [0u8; MARKER_LEN as usize];
    f.read_exact_at(&mut m, len.checked_sub(MARKER_LEN)?).ok()?;
    if u32_at(&m, 28) != crc32c::crc32c(&m[..28]) {
        return None;
    }
    match &m[..8] {
        t if t == COMMITTED => Some(State::Committed),
        t if t == UNDOING => Some(State::Undoing),
        _ => None,
    }
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
    pub(super) fn exact(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len as usize];
        if self.read_some(offset, &mut b)? != b.len() {
            return Err(truncated(&self.ctx, offset, what));
        }
        Ok(b)
    }
}

fn truncated(ctx: &Ctx, at: u64, what: &str) -> rehost_core::Error {
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
            if u32_at(&m, 28) != crc32c::crc32c(&m[..28]) || m[..28] != marker(g, undoing)[..28] {
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
    let version = u32_at(&h, 8);
    if version != VERSION {
        return Err(ctx.unsupported(start + 8, format!("journal version {version}")));
    }
    let name_len = u64::from(u32_at(&h, 60));
    if name_len > MAX_NAME {
        return Err(ctx.corrupt(start + 60, format!("a file name of {name_len} bytes")));
    }
    let name = f.exact(start + HEADER_LEN, name_len, "the header")?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..92]), &name);
    if crc != u32_at(&h, 92) {
        return Err(ctx.corrupt(
            start + 92,
            "the generation header's checksum does not match: the journal is damaged",
        ));
    }
    let (count, unit_count, saved_bytes) = (u64_at(&h, 16), u64_at(&h, 24), u64_at(&h, 32));
    let (orig_len, new_len) = (u64_at(&h, 40), u64_at(&h, 48));
    let number = u32_at(&h, 12);
    if orig_len > new_len {
        return Err(ctx.corrupt(
            start + 40,
            format!("generation {number} says a commit shrank the image: the journal is damaged"),
        ));
    }
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
        // Numbers rise by one for a file written alone; an extent file of a VMDK of
        // several files takes the number of its descriptor's generation (see `several`), so
        // it may skip.
        if p.new_len != orig_len || number <= p.number {
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
        let (offset, rlen, saved) = (u64_at(e, 0), u64_at(e, 8), u64_at(e, 16));
        let scratch = u32_at(e, 24) & 1 != 0;
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
            want_units = want_units.saturating_add(super::unit_count(offset, rlen, orig_len));
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
    let body_crc = u32_at(&h, 56);
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
        created: u64_at(&h, 64),
        start,
        end: body_at + body_len,
        body_crc,
        units: crcs.chunks_exact(4).map(|c| u32_at(c, 0)).collect(),
        ranges,
    })
}
