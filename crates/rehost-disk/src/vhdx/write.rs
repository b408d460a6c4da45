//! Planning writes into a VHDX (MS-VHDX 2.2.2.1, 2.3, 2.5).
//!
//! Per block of the virtual disk:
//! - fully present: the bytes are written in place;
//! - partially present (differencing): written in place, and their sectors' bits set in the
//!   chunk's sector bitmap;
//! - not present in a differencing disk: a payload block is allocated at the end of the
//!   file (1 MiB aligned), partially present, with the written sectors' bits set (the
//!   others keep reading from the parent); the chunk's sector bitmap block is allocated
//!   too when it has none;
//! - not present, zero, unmapped or undefined otherwise: a payload block is allocated,
//!   fully present; what is not written stays a hole of the file and reads as zeros.
//!
//! The BAT and sector bitmap pages go through the log. The commit runs in phases, each
//! flushed before the next:
//! 1. the non-current header gets the next sequence number and a new FileWriteGuid and
//!    DataWriteGuid (before any other write, and before user-visible data changes);
//! 2. the file grows and the payload is written;
//! 3. a log entry holding the metadata pages is written into the log, under a LogGuid no
//!    header names yet (so it is inert);
//! 4. a header names that LogGuid: from here the log replays to the new metadata;
//! 5. the pages are written in place;
//! 6. a header with a nil LogGuid says the log is empty again.
//!
//! A crash after (4) leaves an image whose log replays to the new metadata (its data being
//! on disk since (2)), as any VHDX reader must replay it; before (4) the old metadata is
//! intact and no header names a log without a valid entry. More metadata pages than half
//! the log holds take several rounds of (3) to (5), alternating between the log's halves.
//!
//! An image whose log still holds updates (not written into the file by whoever crashed)
//! is refused: rehost replays such logs in memory only.

use super::bat::{self, Bat};
use super::entry;
use super::source::PAGE;
use super::Vhdx;
use crate::ids::Ids;
use crate::plan::{align, by_block, HostWrite, Phase, Plan};
use crate::{Format, ReadAt};
use rehost_core::error::Result;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const SB_SIZE: u64 = MIB;

/// The planner's view of the BAT: the table as read, the entries changed so far.
struct Table<'a> {
    bat: &'a Bat,
    changed: BTreeMap<u64, u64>,
}

impl Table<'_> {
    fn get(&self, index: u64) -> u64 {
        self.changed
            .get(&index)
            .copied()
            .or_else(|| self.bat.raw(index))
            .unwrap_or(0)
    }
}

/// `at + len`, if the file stays under 1 PiB (far beyond any VHDX of 64 TiB).
fn grow(at: u64, len: u64) -> Option<u64> {
    at.checked_add(len).filter(|e| *e <= 1 << 50)
}

impl Vhdx {
    /// Length of the host file.
    pub(crate) fn file_len(&self) -> u64 {
        self.src.file().size()
    }

    /// The first 1 MiB-aligned file offset past every structure and block in the file.
    fn first_free(&self) -> u64 {
        let mut end = self.file_len();
        for r in [self.regions.bat, self.regions.metadata] {
            end = end.max(r.offset + r.length);
        }
        end = end.max(self.header.log_offset + u64::from(self.header.log_length));
        let cr = self.bat.chunk_ratio;
        for i in 0..self.bat.len() {
            let raw = self.bat.raw(i).unwrap_or(0);
            let (state, at) = ((raw & 7) as u8, (raw >> 20) << 20);
            let is_bitmap = i % (cr + 1) == cr;
            let len = match (is_bitmap, state) {
                (true, bat::SB_PRESENT) => SB_SIZE,
                (false, bat::FULLY_PRESENT | bat::PARTIALLY_PRESENT) => self.bat.block_size,
                _ => 0,
            };
            if len > 0 {
                end = end.max(at.saturating_add(len));
            }
        }
        end.div_ceil(MIB).saturating_mul(MIB)
    }

    /// The host writes that store `extents` on a disk of `new_size` bytes (its size, or
    /// more: see `grow`) (see the module documentation).
    pub(crate) fn plan(
        &self,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        ids: &mut Ids,
        new_size: u64,
    ) -> Result<Plan> {
        let file_len = self.file_len();
        let old_size = self.info.virtual_size;
        let grows = new_size > old_size;
        if extents.is_empty() && !grows {
            return Ok(Plan::empty(Format::Vhdx, file_len));
        }
        if let Some(why) = grows.then(|| self.growth_refusal(new_size)).flatten() {
            return Err(self.ctx.refused("", format!("the disk cannot grow: {why}")));
        }
        if self.src.replayed() {
            return Err(self.ctx.unsupported(
                self.header.log_offset,
                "this VHDX's log holds updates that were never written into the file; rehost \
                 replays them in memory to read, but writes only into clean images: replay \
                 the log first (qemu-img check -r all, or attach the disk once in Hyper-V)",
            ));
        }
        let diff = self.parent.is_some();
        let ss = self.logical_sector_size;
        let extents = if diff {
            align(view, extents, ss)?
        } else {
            extents.to_vec()
        };
        let bs = self.bat.block_size;
        let vsize = new_size.max(old_size);
        let mut table = Table {
            bat: &self.bat,
            changed: BTreeMap::new(),
        };
        let mut next = self.first_free();
        let grow_from = next;
        let mut sb_pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut new_sb: Vec<u64> = Vec::new();
        let mut data = Vec::new();
        let (mut new_blocks, mut in_place) = (0u64, 0u64);
        let too_big = |at: u64| {
            self.ctx.unsupported(
                at,
                "the file would grow past 1 PiB: the BAT points at blocks that far out",
            )
        };
        by_block(&extents, bs, |block, within, bytes| {
            let pidx = self.bat.payload_index(block);
            let entry_at = self.bat.offset() + pidx * 8;
            let raw = table.get(pidx);
            let (state, mut at) = ((raw & 7) as u8, (raw >> 20) << 20);
            let block_len = bs.min(vsize - block * bs);
            let mut partial = false;
            match state {
                bat::FULLY_PRESENT => {}
                bat::PARTIALLY_PRESENT if diff => partial = true,
                bat::NOT_PRESENT
                | bat::UNDEFINED
                | bat::ZERO
                | bat::UNMAPPED
                | bat::UNMAPPED_V095 => {
                    partial = diff && state == bat::NOT_PRESENT;
                    at = next;
                    next = grow(next, bs).ok_or_else(|| too_big(entry_at))?;
                    new_blocks += 1;
                    let s = if partial {
                        bat::PARTIALLY_PRESENT
                    } else {
                        bat::FULLY_PRESENT
                    };
                    table.changed.insert(pidx, at | u64::from(s));
                }
                s => {
                    return Err(self.ctx.corrupt(
                        entry_at,
                        format!("BAT entry {pidx} has the state {s}, which a write cannot follow"),
                    ))
                }
            }
            if at < MIB
                || at
                    .checked_add(block_len)
                    .is_none_or(|e| e > file_len.max(next))
            {
                return Err(self.ctx.corrupt(
                    entry_at,
                    format!("BAT entry {pidx} points at file offset {at:#x}, outside the file"),
                ));
            }
            if at < grow_from {
                in_place += bytes.len() as u64;
            }
            if partial {
                let sidx = self.bat.bitmap_index(block);
                let sraw = table.get(sidx);
                let mut sb_at = (sraw >> 20) << 20;
                if (sraw & 7) as u8 != bat::SB_PRESENT {
                    if state == bat::PARTIALLY_PRESENT {
                        return Err(self.ctx.corrupt(
                            self.bat.offset() + sidx * 8,
                            format!("block {block} is partially present without a sector bitmap"),
                        ));
                    }
                    sb_at = next;
                    next = grow(next, SB_SIZE).ok_or_else(|| too_big(entry_at))?;
                    new_sb.push(sb_at);
                    table
                        .changed
                        .insert(sidx, sb_at | u64::from(bat::SB_PRESENT));
                } else if sb_at < MIB || sb_at.checked_add(SB_SIZE).is_none_or(|e| e > file_len) {
                    return Err(self.ctx.corrupt(
                        self.bat.offset() + sidx * 8,
                        format!("sector bitmap entry {sidx} points outside the file"),
                    ));
                }
                let first = self.bat.sector_in_chunk(block, ss) + within / ss;
                for s in first..first + bytes.len() as u64 / ss {
                    let page = sb_at + (s / 8) / PAGE * PAGE;
                    let p = match sb_pages.entry(page) {
                        Entry::Occupied(o) => o.into_mut(),
                        Entry::Vacant(v) => {
                            let mut p = vec![0u8; PAGE as usize];
                            if !new_sb.contains(&sb_at) {
                                self.src.read(page, &mut p)?;
                            }
                            v.insert(p)
                        }
                    };
                    p[((s / 8) % PAGE) as usize] |= 1 << (s % 8);
                }
            }
            data.push(HostWrite::new(
                at + within,
                bytes.to_vec(),
                format!("data of block {block}"),
            ));
            Ok(())
        })?;
        if grows && self.leave_allocated {
            // A fixed VHDX keeps every block allocated: the new ones too.
            for block in old_size.div_ceil(bs)..new_size.div_ceil(bs) {
                let pidx = self.bat.payload_index(block);
                if let std::collections::btree_map::Entry::Vacant(v) = table.changed.entry(pidx) {
                    v.insert(next | u64::from(bat::FULLY_PRESENT));
                    next = grow(next, bs).ok_or_else(|| too_big(self.bat.offset() + pidx * 8))?;
                    new_blocks += 1;
                }
            }
        }
        let grown = next > grow_from;
        let new_len = if grown { next } else { file_len };
        // BAT pages with their changed entries (a grown disk's size and new entries first).
        let mut pages: BTreeMap<u64, Vec<u8>> = if grows {
            self.grown_pages(new_size)?
        } else {
            BTreeMap::new()
        };
        for (idx, value) in &table.changed {
            let byte = self.bat.offset() + idx * 8;
            let page = byte - byte % PAGE;
            let p = match pages.entry(page) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    let mut p = vec![0u8; PAGE as usize];
                    self.src.read(page, &mut p)?;
                    v.insert(p)
                }
            };
            let o = (byte - page) as usize;
            p[o..o + 8].copy_from_slice(&value.to_le_bytes());
        }
        pages.extend(sb_pages);
        let metadata: Vec<(u64, Vec<u8>)> = pages.into_iter().collect();

        let mut current = vec![0u8; PAGE as usize];
        self.src.file().read_at(self.header.at, &mut current)?;
        let (file_write, data_write) = (ids.guid(), ids.guid());
        let [first_slot, second_slot] = super::header::HEADER_OFFSETS;
        let mut seq = self.header.sequence;
        let mut slot = self.header.at;
        // Each header update goes to the slot not current, with the next sequence number.
        // Headers are rewritten several times in one commit, so they are scratch: their
        // content between phases is checked by no rollback.
        let mut header = |log: Uuid, what: &str| {
            seq += 1;
            slot = if slot == first_slot {
                second_slot
            } else {
                first_slot
            };
            let mut w = HostWrite::new(
                slot,
                entry::header(&current, seq, file_write, data_write, log),
                what,
            );
            w.scratch = true;
            w
        };
        let mut plan = Plan::empty(Format::Vhdx, file_len);
        plan.new_len = new_len;
        plan.phases.push(Phase {
            name: "header",
            set_len: None,
            writes: vec![header(
                Uuid::nil(),
                "header: new FileWriteGuid and DataWriteGuid",
            )],
        });
        plan.phases.push(Phase {
            name: "data",
            set_len: grown.then_some(new_len),
            writes: data,
        });
        // Each round's entry goes to the half of the log the previous one did not use, under
        // a new LogGuid, so that the header switches from one valid log to the next.
        let half = u64::from(self.header.log_length) / 2 / PAGE * PAGE;
        let per_entry = entry::capacity(half);
        if per_entry == 0 && !metadata.is_empty() {
            return Err(self
                .ctx
                .unsupported(self.header.log_offset, "a log too small for one entry"));
        }
        for (round, chunk) in metadata.chunks(per_entry.max(1)).enumerate() {
            let log_guid = ids.guid();
            let tail = (round as u64 % 2) * half;
            let mut e = HostWrite::new(
                self.header.log_offset + tail,
                entry::log_entry(chunk, round as u64 + 1, tail as u32, log_guid, new_len),
                format!("log entry {} ({} pages)", round + 1, chunk.len()),
            );
            e.scratch = true;
            plan.phases.push(Phase {
                name: "log",
                set_len: None,
                writes: vec![e],
            });
            plan.phases.push(Phase {
                name: "header",
                set_len: None,
                writes: vec![header(log_guid, "header: the log entry is to be replayed")],
            });
            plan.phases.push(Phase {
                name: "metadata",
                set_len: None,
                writes: chunk
                    .iter()
                    .map(|(at, p)| HostWrite::new(*at, p.clone(), "BAT or sector bitmap page"))
                    .collect(),
            });
        }
        plan.phases.push(Phase {
            name: "header",
            set_len: None,
            writes: vec![header(Uuid::nil(), "header: the log is empty")],
        });
        if grows {
            plan.notes.push(format!(
                "the disk grows from {old_size} to {new_size} bytes: the virtual disk size \
                 and {} BAT entries (were {}) through the log",
                self.bat_entries(new_size),
                self.bat.len()
            ));
        }
        plan.notes.push(format!(
            "{in_place} bytes written into blocks already in the file; {new_blocks} new blocks \
             of {bs} bytes{} from file offset {grow_from:#x}; {} metadata pages through the \
             log; DataWriteGuid becomes {data_write}",
            if new_sb.is_empty() {
                String::new()
            } else {
                format!(" and {} sector bitmap blocks", new_sb.len())
            },
            metadata.len()
        ));
        plan.seal(&self.ctx)
    }
}
