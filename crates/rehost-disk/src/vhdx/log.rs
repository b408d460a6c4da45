//! The log (MS-VHDX 2.3), replayed in memory: the active sequence of entries is found and
//! its updates are laid over the file in a [`Source`]; the file itself is never written.
//!
//! The log is a ring of 4 KiB sectors. An entry starts with a `loge` header (CRC-32C over
//! the whole entry, EntryLength, Tail, SequenceNumber, DescriptorCount, LogGuid,
//! FlushedFileOffset, LastFileOffset), then 32-byte descriptors — `desc` (a 4 KiB sector
//! write whose first 8 and last 4 bytes are kept in the descriptor) and `zero` (a zeroed
//! range) — then one `data` sector per `desc`. Entries may wrap around the end of the ring.
//!
//! A sequence is a run of valid entries, each following the previous one in the ring with
//! the next sequence number. The active sequence is the one whose last entry (its head)
//! has the highest sequence number among the sequences that are complete: their head's Tail
//! names an entry of the sequence, and the entries from that tail to the head are replayed.
//!
//! Work is bounded: the log is at most [`MAX_LOG`] bytes, every sector is examined once, the
//! bytes checksummed are capped, and sequences are followed through memoized links, so a
//! hostile log costs time linear in its size.

use super::fields::guid;
use super::header::Header;
use super::source::{Source, PAGE};
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;
use rehost_core::le::{u32_at, u64_at};
use uuid::Uuid;

/// Largest log replayed (Hyper-V writes 1 MiB logs).
pub(super) const MAX_LOG: u64 = 256 << 20;
/// Bytes checksummed at most while looking for entries.
const CHECK_BUDGET: u64 = 1 << 30;
/// No update may reach past this file offset (far beyond any VHDX of 64 TiB).
const MAX_FILE_OFFSET: u64 = 1 << 48;
const SECTOR: usize = PAGE as usize;
const NONE: usize = usize::MAX;

/// The header of a valid entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    sectors: usize,
    tail: usize,
    sequence: u64,
    descriptors: usize,
    descriptor_sectors: usize,
    flushed_file_offset: u64,
    last_file_offset: u64,
}

/// One update of an entry.
enum Update {
    /// A 4 KiB page: leading 8 bytes, the data sector's middle, trailing 4 bytes.
    Page {
        offset: u64,
        data_sector: usize,
        leading: [u8; 8],
        trailing: [u8; 4],
    },
    /// Zeros over `offset..end`.
    Zeros { offset: u64, end: u64 },
}

/// The log's sectors in memory.
struct Ring {
    bytes: Vec<u8>,
    sectors: usize,
}

impl Ring {
    /// Sector `i` of the ring (wrapping).
    fn sector(&self, i: usize) -> &[u8] {
        let i = i % self.sectors;
        &self.bytes[i * SECTOR..(i + 1) * SECTOR]
    }

    /// Descriptor `i` of the entry at sector `at`, checked, and the data sector it uses.
    fn update(&self, at: usize, e: &Entry, i: usize, data_index: &mut usize) -> Option<Update> {
        let pos = 64 + 32 * i;
        let s = self.sector(at + pos / SECTOR);
        let d = &s[pos % SECTOR..pos % SECTOR + 32];
        if u64_at(d, 24) != e.sequence {
            return None;
        }
        match &d[..4] {
            b"zero" => {
                let (len, offset) = (u64_at(d, 8), u64_at(d, 16));
                let end = offset.checked_add(len)?;
                (offset % PAGE == 0 && len % PAGE == 0 && end <= MAX_FILE_OFFSET)
                    .then_some(Update::Zeros { offset, end })
            }
            b"desc" => {
                let offset = u64_at(d, 16);
                let data_sector = e.descriptor_sectors + *data_index;
                *data_index += 1;
                if offset % PAGE != 0 || offset >= MAX_FILE_OFFSET || data_sector >= e.sectors {
                    return None;
                }
                let data = self.sector(at + data_sector);
                let seq_high = u64::from(u32_at(data, 4));
                let seq_low = u64::from(u32_at(data, SECTOR - 4));
                if &data[..4] != b"data" || seq_high << 32 | seq_low != e.sequence {
                    return None;
                }
                let mut leading = [0u8; 8];
                leading.copy_from_slice(&d[8..16]);
                let mut trailing = [0u8; 4];
                trailing.copy_from_slice(&d[4..8]);
                Some(Update::Page {
                    offset,
                    data_sector,
                    leading,
                    trailing,
                })
            }
            _ => None,
        }
    }

    /// The updates of the valid entry at `at`.
    fn updates(&self, at: usize, e: &Entry) -> Option<Vec<Update>> {
        let mut data_index = 0;
        (0..e.descriptors)
            .map(|i| self.update(at, e, i, &mut data_index))
            .collect()
    }

    /// The entry at sector `at`, if it is valid; `Err` when the checking budget runs out.
    fn entry(&self, at: usize, log_guid: Uuid, budget: &mut u64) -> Result<Option<Entry>, ()> {
        let h = self.sector(at);
        if &h[..4] != b"loge" || guid(h, 32) != log_guid {
            return Ok(None);
        }
        let length = u64::from(u32_at(h, 8));
        let tail = u64::from(u32_at(h, 12));
        let sequence = u64_at(h, 16);
        let descriptors = u64::from(u32_at(h, 24));
        let ring_len = (self.sectors * SECTOR) as u64;
        let descriptor_sectors = (64 + 32 * descriptors).div_ceil(PAGE);
        if length == 0
            || length % PAGE != 0
            || length > ring_len
            || tail % PAGE != 0
            || tail >= ring_len
            || sequence == 0
            || descriptor_sectors * PAGE > length
        {
            return Ok(None);
        }
        *budget = budget.checked_sub(2 * length).ok_or(())?;
        let e = Entry {
            sectors: (length / PAGE) as usize,
            tail: (tail / PAGE) as usize,
            sequence,
            descriptors: descriptors as usize,
            descriptor_sectors: descriptor_sectors as usize,
            flushed_file_offset: u64_at(h, 48),
            last_file_offset: u64_at(h, 56),
        };
        if self.updates(at, &e).is_none() {
            return Ok(None);
        }
        let stored = u32_at(h, 4);
        let mut crc = crc32c::crc32c(&h[..4]);
        crc = crc32c::crc32c_append(crc, &[0; 4]);
        crc = crc32c::crc32c_append(crc, &h[8..]);
        for i in 1..e.sectors {
            crc = crc32c::crc32c_append(crc, self.sector(at + i));
        }
        Ok((crc == stored).then_some(e))
    }
}

/// Replays the log of `h` over `src` when its LogGuid is set; returns the number of entries
/// replayed (0 when there is no log to replay).
pub(super) fn replay(src: &mut Source, h: &Header, ctx: &Ctx) -> Result<usize> {
    if h.log_guid.is_nil() {
        return Ok(0);
    }
    let refuse = |why: String| {
        ctx.corrupt(
            h.log_offset,
            format!("the image's log cannot be replayed: {why}"),
        )
    };
    if h.log_version != 0 {
        return Err(ctx.unsupported(
            h.at + 64,
            format!(
                "the image's log cannot be replayed: log version {} (only 0 is defined)",
                h.log_version
            ),
        ));
    }
    let (offset, length) = (h.log_offset, u64::from(h.log_length));
    let mib = 1 << 20;
    if length == 0 || length % mib != 0 || offset < mib || offset % mib != 0 {
        return Err(refuse(format!(
            "a log of {length} bytes at {offset:#x} is not 1 MiB aligned"
        )));
    }
    if length > MAX_LOG {
        return Err(ctx.unsupported(
            offset,
            format!(
                "the image's log cannot be replayed: it is {length} bytes, more than rehost \
                 replays ({MAX_LOG})"
            ),
        ));
    }
    if offset.checked_add(length).is_none_or(|e| e > src.size()) {
        return Err(refuse("the log lies past the end of the file".into()));
    }
    let mut bytes = vec![0u8; length as usize];
    src.read(offset, &mut bytes)?;
    let ring = Ring {
        bytes,
        sectors: (length / PAGE) as usize,
    };
    let Some((tail, head, entries, next)) = active_sequence(&ring, h.log_guid)
        .map_err(|()| refuse("too many damaged entries to examine".into()))?
    else {
        return Err(refuse("no complete, valid sequence of log entries".into()));
    };
    let entry = |at: usize| entries.get(at).copied().flatten();
    let last = entry(head).ok_or_else(|| refuse("lost the head entry".into()))?;
    if src.file().size() < last.flushed_file_offset {
        return Err(refuse(format!(
            "the file is {} bytes but the log says {} were written: it was truncated",
            src.file().size(),
            last.flushed_file_offset
        )));
    }
    if last.last_file_offset > MAX_FILE_OFFSET {
        return Err(refuse(format!(
            "its last file offset {:#x} is beyond any VHDX",
            last.last_file_offset
        )));
    }
    let mut at = tail;
    let mut replayed = 0;
    for _ in 0..ring.sectors {
        let e = entry(at).ok_or_else(|| refuse("lost an entry".into()))?;
        let updates = ring
            .updates(at, &e)
            .ok_or_else(|| refuse("an entry changed".into()))?;
        // Updates stay inside the file or the size the entry says the file has.
        let limit = src.file().size().max(e.last_file_offset);
        for u in updates {
            let end = match u {
                Update::Page { offset, .. } => offset + PAGE,
                Update::Zeros { end, .. } => end,
            };
            if end > limit {
                return Err(refuse(format!(
                    "entry {} updates the file up to {end:#x}, past its end ({limit:#x})",
                    e.sequence
                )));
            }
            match u {
                Update::Page {
                    offset,
                    data_sector,
                    leading,
                    trailing,
                } => {
                    let mut page = ring.sector(at + data_sector).to_vec();
                    page[..8].copy_from_slice(&leading);
                    page[SECTOR - 4..].copy_from_slice(&trailing);
                    src.put_page(offset, page.into_boxed_slice());
                }
                Update::Zeros { offset, end } => src.put_zeros(offset, end),
            }
        }
        replayed += 1;
        if at == head {
            break;
        }
        at = next.get(at).copied().unwrap_or(NONE);
    }
    src.grow_to(last.last_file_offset);
    Ok(replayed)
}

type Found = (usize, usize, Vec<Option<Entry>>, Vec<usize>);

/// Finds the active sequence: (tail sector, head sector, the valid entries by sector, the
/// link from each entry to the next of its sequence). `Err` when the budget runs out.
fn active_sequence(ring: &Ring, log_guid: Uuid) -> Result<Option<Found>, ()> {
    let n = ring.sectors;
    let mut budget = CHECK_BUDGET;
    let mut entries = Vec::with_capacity(n);
    for at in 0..n {
        entries.push(ring.entry(at, log_guid, &mut budget)?);
    }
    // next[i]: the entry right after i in the ring, when it carries the next sequence number.
    let mut next = vec![NONE; n];
    for (i, e) in entries.iter().enumerate() {
        let Some(e) = e else { continue };
        let j = (i + e.sectors) % n;
        if let Some(f) = &entries[j] {
            if e.sequence.checked_add(1) == Some(f.sequence) {
                next[i] = j;
            }
        }
    }
    // head[i]: the last entry reached from i; span[i]: sectors from i through that entry.
    // Sequence numbers grow along the links, so they never loop; the walk is bounded anyway.
    let mut head = vec![NONE; n];
    let mut span = vec![0usize; n];
    let sectors = |i: usize| entries[i].map_or(0, |e| e.sectors);
    for start in 0..n {
        if entries[start].is_none() || head[start] != NONE {
            continue;
        }
        let mut path = Vec::new();
        let mut x = start;
        while head[x] == NONE && next[x] != NONE && path.len() <= n {
            path.push(x);
            x = next[x];
        }
        if head[x] == NONE {
            head[x] = x;
            span[x] = sectors(x);
        }
        for &p in path.iter().rev() {
            let q = next[p];
            head[p] = head[q];
            span[p] = span[q].saturating_add(sectors(p));
        }
    }
    // A sequence ends where no link leads on; it is complete when its head's tail reaches it
    // without overlapping itself in the ring.
    let mut best: Option<(usize, usize, u64)> = None;
    for (h, e) in entries.iter().enumerate() {
        let Some(e) = e else { continue };
        if next[h] != NONE {
            continue;
        }
        let t = e.tail;
        if entries[t].is_some()
            && head[t] == h
            && span[t] <= n
            && best.is_none_or(|(_, _, s)| e.sequence > s)
        {
            best = Some((t, h, e.sequence));
        }
    }
    Ok(best.map(|(t, h, _)| (t, h, entries, next)))
}
