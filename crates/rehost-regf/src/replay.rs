//! Transaction log replay, in memory: the old format (a `DIRT` vector of dirty 512-byte
//! pages, Windows XP to 8) and the new one (`HvLE` entries checked by Marvin32, Windows 8.1
//! and later), by the rules of the msuhanov/regf specification.

use super::base::{self, BaseBlock, BASE};
use super::marvin::{marvin32, REGISTRY_SEED};

/// Most hive bins data a replay may grow a hive to.
pub const MAX_HIVE: u64 = 2 << 30;

/// What became of a hive and its logs.
#[derive(Debug)]
pub enum Recovery {
    /// The primary file is clean: nothing to replay, logs ignored.
    Clean,
    /// The logs were replayed: the recovered hive, clean, and what was done.
    Replayed {
        /// The hive with the logged changes applied.
        bytes: Vec<u8>,
        /// What was applied, in words.
        note: String,
    },
    /// The hive is dirty but no log could be applied; why.
    Unreplayable(String),
}

/// A transaction log file: its name (for messages) and bytes.
pub struct Log<'a> {
    /// File name, `SYSTEM.LOG1`.
    pub name: &'a str,
    /// Its content.
    pub bytes: &'a [u8],
}

/// Replays `logs` over `primary` if the primary is dirty.
pub fn recover(primary: &[u8], logs: &[Log]) -> Recovery {
    let Some(pb) = BaseBlock::read(primary) else {
        return Recovery::Unreplayable("the primary file has no base block".into());
    };
    if !pb.dirty() {
        return Recovery::Clean;
    }
    let usable: Vec<&Log> = logs
        .iter()
        .filter(|l| BaseBlock::read(l.bytes).is_some())
        .collect();
    if usable.is_empty() {
        let names: Vec<&str> = logs.iter().map(|l| l.name).collect();
        return Recovery::Unreplayable(if names.is_empty() {
            "the hive is dirty and no transaction log was found beside it".into()
        } else {
            format!(
                "the hive is dirty and none of its logs ({}) holds a log base block",
                names.join(", ")
            )
        });
    }
    let new: Vec<&Log> = usable
        .iter()
        .copied()
        .filter(|l| l.bytes.get(512..516) == Some(b"HvLE"))
        .collect();
    if !new.is_empty() {
        return replay_new(primary, &pb, &new);
    }
    let old: Vec<&Log> = usable
        .iter()
        .copied()
        .filter(|l| l.bytes.get(512..516) == Some(b"DIRT"))
        .collect();
    match old.first() {
        Some(log) => replay_old(primary, &pb, log),
        None => {
            Recovery::Unreplayable("the logs hold neither a DIRT vector nor HvLE entries".into())
        }
    }
}

/// Finishes a recovered hive: equal sequence numbers, the bins size, the checksum.
fn seal(bytes: &mut Vec<u8>, sequence: u32, bins: u32) {
    let end = BASE + bins as usize;
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    base::put_u32(bytes, 4, sequence);
    base::put_u32(bytes, 8, sequence);
    base::put_u32(bytes, 28, 0);
    base::put_u32(bytes, 40, bins);
    let sum = base::checksum(bytes);
    base::put_u32(bytes, 508, sum);
}

fn replay_old(primary: &[u8], pb: &BaseBlock, log: &Log) -> Recovery {
    let lb = match BaseBlock::read(log.bytes) {
        Some(b) if b.seq1 == b.seq2 => b,
        _ => return Recovery::Unreplayable(format!("{}: its base block is not valid", log.name)),
    };
    if pb.checksum_ok && lb.timestamp != pb.timestamp {
        return Recovery::Unreplayable(format!(
            "{}: written at another time than the primary file (timestamps differ)",
            log.name
        ));
    }
    let bins = lb.bins_size as u64;
    if bins % 4096 != 0 || bins > MAX_HIVE {
        return Recovery::Unreplayable(format!("{}: hive bins size {bins} is invalid", log.name));
    }
    let pages = (bins / 512) as usize;
    let bitmap_len = pages.div_ceil(8);
    let Some(bitmap) = log.bytes.get(516..516 + bitmap_len) else {
        return Recovery::Unreplayable(format!("{}: the dirty vector is truncated", log.name));
    };
    // Dirty pages start at the sector after the vector.
    let mut at = (512 + 4 + bitmap_len).div_ceil(512) * 512;
    let mut bytes = primary.to_vec();
    if bytes.len() < BASE + bins as usize {
        bytes.resize(BASE + bins as usize, 0);
    }
    let mut applied = 0;
    for page in 0..pages {
        if bitmap[page / 8] & (1 << (page % 8)) == 0 {
            continue;
        }
        let Some(data) = log.bytes.get(at..at + 512) else {
            return Recovery::Unreplayable(format!("{}: dirty page {page} is missing", log.name));
        };
        let dst = BASE + page * 512;
        bytes[dst..dst + 512].copy_from_slice(data);
        at += 512;
        applied += 1;
    }
    let sequence = pb.seq1.max(lb.seq1);
    seal(&mut bytes, sequence, lb.bins_size);
    Recovery::Replayed {
        bytes,
        note: format!(
            "replayed {applied} dirty pages from {} (old format)",
            log.name
        ),
    }
}

/// A parsed, verified `HvLE` entry.
struct Entry<'a> {
    sequence: u32,
    bins: u32,
    pages: Vec<(u32, &'a [u8])>,
}

/// The valid entries of a new-format log, in file order, stopping at the first bad one.
fn entries<'a>(log: &'a [u8]) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    let mut at = 512usize;
    while let Some(head) = log.get(at..at + 40) {
        if &head[..4] != b"HvLE" {
            break;
        }
        let size = base::u32_at(head, 4) as usize;
        let Some(entry) = log
            .get(at..at.saturating_add(size))
            .filter(|_| size >= 40 && size % 512 == 0)
        else {
            break;
        };
        let bins = base::u32_at(head, 16);
        let count = base::u32_at(head, 20) as usize;
        let hash1 = u64::from_le_bytes(head[24..32].try_into().unwrap_or_default());
        let hash2 = u64::from_le_bytes(head[32..40].try_into().unwrap_or_default());
        if bins % 4096 != 0
            || bins as u64 > MAX_HIVE
            || marvin32(&entry[40..], REGISTRY_SEED) != hash1
            || marvin32(&entry[..32], REGISTRY_SEED) != hash2
        {
            break;
        }
        let refs_end = 40 + count.saturating_mul(8);
        if refs_end > size {
            break;
        }
        let mut pages = Vec::with_capacity(count);
        let mut data = refs_end;
        let mut ok = true;
        for i in 0..count {
            let r = 40 + 8 * i;
            let (offset, len) = (base::u32_at(entry, r), base::u32_at(entry, r + 4) as usize);
            match entry.get(data..data + len) {
                Some(page) if offset as u64 + len as u64 <= bins as u64 => {
                    pages.push((offset, page))
                }
                _ => {
                    ok = false;
                    break;
                }
            }
            data += len;
        }
        if !ok {
            break;
        }
        out.push(Entry {
            sequence: base::u32_at(head, 12),
            bins,
            pages,
        });
        at += size;
    }
    out
}

fn replay_new(primary: &[u8], pb: &BaseBlock, logs: &[&Log]) -> Recovery {
    // Each log's entries start at the sequence number of its own base block. The log with
    // the earlier entries goes first; recovery goes on into the other while the sequence
    // numbers follow on. A log older than a valid primary is not eligible.
    let mut lists: Vec<(&Log, BaseBlock, Vec<Entry>)> = logs
        .iter()
        .filter_map(|l| Some((*l, BaseBlock::read(l.bytes)?, entries(l.bytes))))
        .filter(|(_, b, e)| e.first().is_some_and(|f| f.sequence == b.seq1))
        .filter(|(_, b, _)| !pb.checksum_ok || b.seq1 >= pb.seq2)
        .collect();
    if lists.is_empty() {
        return Recovery::Unreplayable(format!(
            "no log has valid HvLE entries from its own sequence number on, at or after the primary's {}",
            pb.seq2
        ));
    }
    lists.sort_by_key(|(_, b, _)| b.seq1);
    let mut bytes = primary.to_vec();
    // The base block fields the log recorded (root cell, version, flags) win.
    let first = lists[0].0.bytes;
    for (o, len) in [(12usize, 8usize), (20, 8), (36, 4), (144, 4)] {
        bytes[o..o + len].copy_from_slice(&first[o..o + len]);
    }
    let mut bins = pb.bins_size;
    let mut last: Option<u32> = None;
    let mut applied = Vec::new();
    for (log, base, list) in &lists {
        if last.is_some_and(|n| base.seq1 != n.wrapping_add(1)) {
            break;
        }
        let mut n = 0;
        for e in list {
            if last.is_some_and(|l| e.sequence != l.wrapping_add(1)) {
                break;
            }
            bins = e.bins;
            let end = BASE + bins as usize;
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            for (offset, page) in &e.pages {
                let dst = BASE + *offset as usize;
                bytes[dst..dst + page.len()].copy_from_slice(page);
            }
            last = Some(e.sequence);
            n += 1;
        }
        applied.push(format!("{n} from {}", log.name));
    }
    seal(&mut bytes, last.unwrap_or(pb.seq1), bins);
    Recovery::Replayed {
        bytes,
        note: format!("replayed log entries: {} (new format)", applied.join(", ")),
    }
}

/// The highest sequence number the logs hold: in their base blocks and, for the new format,
/// in every valid entry (0 when there are none).
pub fn highest_sequence(logs: &[Log]) -> u32 {
    let mut top = 0;
    for l in logs {
        if let Some(b) = BaseBlock::read(l.bytes) {
            top = top.max(b.seq1).max(b.seq2);
        }
        for e in entries(l.bytes) {
            top = top.max(e.sequence);
        }
    }
    top
}
