//! Log replay, in memory: find the active sequence of log entries and lay its updates over
//! the file (section 2.3 of MS-VHDX). A read never writes the replay back.

use super::header::{crc_without, le32, le64, Header};
use super::source::{Source, PAGE};
use crate::disk::ReadAt;
use crate::error::{Ctx, Result};
use std::collections::HashMap;

/// Largest log replayed (Hyper-V writes 1 MiB logs; qemu lets a user choose).
pub const MAX_LOG: u32 = 256 << 20;

enum Descriptor {
    Data { offset: u64, page: Vec<u8> },
    Zero { offset: u64, len: u64 },
}

struct Entry {
    at: u64,
    length: u64,
    tail: u64,
    sequence: u64,
    flushed_file_offset: u64,
    last_file_offset: u64,
    descriptors: Vec<Descriptor>,
}

struct Log<'a> {
    src: &'a Source,
    offset: u64,
    length: u64,
    guid: [u8; 16],
}

impl Log<'_> {
    /// Reads `n` 4 KiB sectors starting at log offset `at`, wrapping around the ring.
    fn sectors(&self, at: u64, n: u64) -> Result<Vec<u8>> {
        let mut out = vec![0u8; (n * PAGE) as usize];
        for i in 0..n {
            let pos = (at + i * PAGE) % self.length;
            let dst = &mut out[(i * PAGE) as usize..((i + 1) * PAGE) as usize];
            self.src.read(self.offset + pos, dst)?;
        }
        Ok(out)
    }

    /// The valid entry at log offset `at`, if there is one.
    fn entry(&self, at: u64) -> Result<Option<Entry>> {
        let head = self.sectors(at, 1)?;
        if &head[..4] != b"loge" || head[32..48] != self.guid {
            return Ok(None);
        }
        let length = le32(&head, 8) as u64;
        let tail = le32(&head, 12) as u64;
        let sequence = le64(&head, 16);
        let count = le32(&head, 24) as u64;
        if length == 0
            || length % PAGE != 0
            || length > self.length
            || tail % PAGE != 0
            || tail >= self.length
            || sequence == 0
        {
            return Ok(None);
        }
        let desc_sectors = if count <= 126 {
            1
        } else {
            1 + (count - 126).div_ceil(128)
        };
        if desc_sectors * PAGE > length {
            return Ok(None);
        }
        let all = self.sectors(at, length / PAGE)?;
        if le32(&all, 4) != crc_without(&all, 4) {
            return Ok(None);
        }
        let mut descriptors = Vec::new();
        let mut data_index = desc_sectors;
        for i in 0..count {
            let o = (64 + 32 * i) as usize; // descriptors follow the 64-byte header
            let d = &all[o..o + 32];
            if le64(d, 24) != sequence {
                return Ok(None);
            }
            match &d[..4] {
                b"zero" => {
                    let (len, offset) = (le64(d, 8), le64(d, 16));
                    if len % PAGE != 0 || offset % PAGE != 0 {
                        return Ok(None);
                    }
                    descriptors.push(Descriptor::Zero { offset, len });
                }
                b"desc" => {
                    let offset = le64(d, 16);
                    if offset % PAGE != 0 || (data_index + 1) * PAGE > length {
                        return Ok(None);
                    }
                    let s = &all[(data_index * PAGE) as usize..((data_index + 1) * PAGE) as usize];
                    if &s[..4] != b"data"
                        || le32(s, 4) as u64 != sequence >> 32
                        || le32(s, 4092) as u64 != sequence & 0xFFFF_FFFF
                    {
                        return Ok(None);
                    }
                    let mut page = s.to_vec();
                    page[..8].copy_from_slice(&d[8..16]);
                    page[4092..].copy_from_slice(&d[4..8]);
                    descriptors.push(Descriptor::Data { offset, page });
                    data_index += 1;
                }
                _ => return Ok(None),
            }
        }
        if data_index * PAGE != length {
            return Ok(None);
        }
        Ok(Some(Entry {
            at,
            length,
            tail,
            sequence,
            flushed_file_offset: le64(&head, 48),
            last_file_offset: le64(&head, 56),
            descriptors,
        }))
    }
}

/// Replays the log of `h` over `src` when its log GUID is set. Returns the number of
/// entries replayed (0: nothing to replay).
pub fn replay(src: &mut Source, h: &Header, ctx: &Ctx) -> Result<usize> {
    if h.log_guid == [0; 16] {
        return Ok(0);
    }
    let refuse = |why: String| {
        ctx.unsupported(
            h.log_offset,
            format!("the image's log cannot be replayed: {why}"),
        )
    };
    if h.log_version != 0 {
        return Err(refuse(format!("log version {}", h.log_version)));
    }
    let mb = 1 << 20;
    if h.log_length == 0
        || h.log_length as u64 % mb != 0
        || h.log_offset % mb != 0
        || h.log_length > MAX_LOG
    {
        return Err(refuse(format!(
            "a log of {} bytes at {:#x}",
            h.log_length, h.log_offset
        )));
    }
    if h.log_offset
        .checked_add(h.log_length as u64)
        .is_none_or(|e| e > src.size())
    {
        return Err(refuse("the log lies past the end of the file".into()));
    }
    let log = Log {
        src,
        offset: h.log_offset,
        length: h.log_length as u64,
        guid: h.log_guid,
    };
    // Every offset is examined at most once; sequences are built from the cached entries.
    let mut cache: HashMap<u64, Option<std::rc::Rc<Entry>>> = HashMap::new();
    let mut get = |at: u64| -> Result<Option<std::rc::Rc<Entry>>> {
        if let Some(e) = cache.get(&at) {
            return Ok(e.clone());
        }
        let e = log.entry(at)?.map(std::rc::Rc::new);
        cache.insert(at, e.clone());
        Ok(e)
    };
    let mut best: Vec<std::rc::Rc<Entry>> = Vec::new();
    let (mut tail, mut old_tail) = (0u64, 0u64);
    let max_entries = (log.length / PAGE) as usize;
    loop {
        let mut seq: Vec<std::rc::Rc<Entry>> = Vec::new();
        let mut head = tail;
        while seq.len() < max_entries {
            match get(head)? {
                Some(e) if seq.last().is_none_or(|l| e.sequence == l.sequence + 1) => {
                    head = (head + e.length) % log.length;
                    seq.push(e);
                }
                _ => break,
            }
        }
        // Valid when the head entry's tail is one of the sequence's entries; the active part
        // runs from that entry to the head.
        let active = seq
            .last()
            .and_then(|h| seq.iter().position(|e| e.at == h.tail))
            .map(|i| seq[i..].to_vec());
        let valid = active.is_some();
        if let Some(a) = active {
            if best
                .last()
                .is_none_or(|b| a.last().is_some_and(|h| h.sequence > b.sequence))
            {
                best = a;
            }
        }
        tail = if valid {
            head
        } else {
            (tail + PAGE) % log.length
        };
        if tail <= old_tail {
            break;
        }
        old_tail = tail;
    }
    let Some(head) = best.last().cloned() else {
        return Err(refuse("no valid, complete log sequence".into()));
    };
    if src.file().size() < head.flushed_file_offset {
        return Err(refuse(format!(
            "the file is {} bytes but the log says {} were flushed: the file was truncated",
            src.file().size(),
            head.flushed_file_offset
        )));
    }
    let count = best.len();
    for e in &best {
        for d in &e.descriptors {
            match d {
                Descriptor::Data { offset, page } => src.put_page(*offset, page.clone()),
                Descriptor::Zero { offset, len } => src.put_zeros(*offset, *len),
            }
        }
    }
    if head.last_file_offset > 1 << 47 {
        return Err(refuse(format!(
            "last file offset {:#x} is beyond any VHDX",
            head.last_file_offset
        )));
    }
    src.grow_to(head.last_file_offset);
    Ok(count)
}
