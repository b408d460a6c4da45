//! Planning writes into a VHD.
//!
//! A fixed VHD stores the disk at offset 0; its footer, past the disk, is never touched.
//! A dynamic or differencing VHD is written block by block:
//! - a block already in the file gets its sectors written in place, and the bits of those
//!   sectors set in its sector bitmap;
//! - a block not yet in the file is allocated where the footer was (or past the last block,
//!   whichever is later): its sector bitmap (zeros, then the bits of the written sectors),
//!   then its data; sectors not written stay holes in the file, which read as zeros, and
//!   their bits stay clear, so a differencing disk keeps reading them from its parent;
//! - the BAT entries of new blocks are set, and the footer is written at the new end of the
//!   file. The copy of the footer at offset 0 stays as it is.
//!
//! A disk grown (staged past its size) also gets: a fixed disk, the old footer's bytes as
//! disk bytes and the footer at the new end; a dynamic disk, the new BAT entries (free, or
//! the new blocks'), the footers' and the dynamic header's new sizes (see `grow`).
//!
//! Every write covers whole 512-byte sectors (a partly written sector gets the rest of its
//! bytes from the disk as staged), since the bitmap has one bit per sector.
//!
//! Order: the new data, bitmaps and footer first, then (after a flush) the BAT, so a block
//! is never named in the BAT before its content is on disk.

use super::grow::resized_footer;
use super::{Vhd, SECTOR};
use crate::plan::{align, by_block, cover, HostWrite, Phase, Plan};
use crate::target::direct;
use crate::{Format, ReadAt};
use rehost_core::error::Result;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

const FREE: u32 = u32::MAX;

/// A block's sector bitmap as found and as planned.
struct Bitmap {
    at: u64,
    old: Vec<u8>,
    new: Vec<u8>,
}

impl Vhd {
    /// Where the footer at the end of the file starts, and its 512 bytes (a 511-byte footer
    /// padded with a zero, which leaves its checksum valid); when the end holds no footer,
    /// the file's length and the copy at offset 0.
    fn end_footer(&self) -> Result<(u64, Vec<u8>)> {
        let size = self.file.size();
        for tail in [512u64, 511] {
            if let Some(at) = size.checked_sub(tail) {
                let mut b = vec![0u8; 512];
                self.file.read_some_at(at, &mut b[..tail as usize])?;
                if &b[..8] == b"conectix" {
                    return Ok((at, b));
                }
            }
        }
        let mut b = vec![0u8; 512];
        self.file.read_some_at(0, &mut b)?;
        Ok((size, b))
    }

    /// The host writes that store `extents` on a disk of `new_size` bytes (see the module
    /// documentation).
    pub(crate) fn plan(
        &self,
        view: &dyn ReadAt,
        extents: &[(u64, Vec<u8>)],
        new_size: u64,
    ) -> Result<Plan> {
        let size = self.file.size();
        let old_size = self.footer.current_size;
        let grows = new_size > old_size;
        if let Some(why) = grows.then(|| self.growth_refusal(new_size)).flatten() {
            return Err(self.ctx.refused("", format!("the disk cannot grow: {why}")));
        }
        let Some(d) = &self.dynamic else {
            if !grows {
                return Ok(direct(Format::Vhd, size, extents));
            }
            let (footer_at, footer) = self.end_footer()?;
            // The old footer (and anything before it past the disk) becomes disk bytes.
            let extents = cover(view, extents, old_size, size)?;
            let mut plan = direct(Format::Vhd, size, &extents);
            plan.new_len = new_size + SECTOR;
            let footer = self.grown_fixed_footer(&footer, new_size);
            plan.phases.truncate(1);
            let phase = plan.phases.first_mut();
            let Some(p) = phase else {
                return Err(self.ctx.invalid("a grown fixed VHD has nothing to write"));
            };
            p.set_len = Some(plan.new_len);
            p.writes.push(footer);
            plan.notes.push(format!(
                "the disk grows from {old_size} to {new_size} bytes: the footer moves from \
                 {footer_at:#x} to {new_size:#x}"
            ));
            return plan.seal(&self.ctx);
        };
        let bs = u64::from(d.header.block_size);
        let extents = align(view, extents, SECTOR)?;
        let (footer_at, mut footer) = self.end_footer()?;
        let block_span = d.bitmap_bytes + bs;
        let mut next = d
            .bat
            .iter()
            .filter(|e| **e != FREE)
            .map(|e| u64::from(*e) * SECTOR + block_span)
            .fold(footer_at, u64::max)
            .div_ceil(SECTOR)
            * SECTOR;
        let mut bat = d.bat.clone();
        let mut changed_entries = BTreeSet::new();
        let entries = new_size.div_ceil(bs);
        if grows && entries > bat.len() as u64 {
            changed_entries.extend(bat.len() as u64..entries);
            bat.resize(entries as usize, FREE);
        }
        if grows {
            footer = resized_footer(&footer, new_size);
        }
        let mut bitmaps: BTreeMap<u64, Bitmap> = BTreeMap::new();
        let mut data = Vec::new();
        by_block(&extents, bs, |block, within, bytes| {
            let entry_at = d.header.table_offset + block * 4;
            let Some(entry) = bat.get_mut(block as usize) else {
                return Err(self
                    .ctx
                    .corrupt(entry_at, format!("no BAT entry for block {block}")));
            };
            if *entry == FREE {
                let sector = next / SECTOR;
                if sector >= u64::from(FREE) {
                    return Err(self.ctx.unsupported(
                        entry_at,
                        format!("block {block} would lie past the 2 TiB a VHD can address"),
                    ));
                }
                *entry = sector as u32;
                changed_entries.insert(block);
                let at = next;
                next += block_span;
                bitmaps.insert(
                    block,
                    Bitmap {
                        at,
                        old: Vec::new(),
                        new: vec![0; d.bitmap_bytes as usize],
                    },
                );
            }
            let bitmap_at = u64::from(*entry) * SECTOR;
            let write_end = bitmap_at + d.bitmap_bytes + within + bytes.len() as u64;
            let is_new = bitmaps.get(&block).is_some_and(|m| m.old.is_empty());
            if !is_new && write_end > footer_at {
                return Err(self.ctx.unsupported(
                    entry_at,
                    format!(
                        "block {block} is stored short in the file (it ends before the footer \
                         at {footer_at:#x}) and the write reaches past it"
                    ),
                ));
            }
            let map = match bitmaps.entry(block) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    let mut old = vec![0u8; d.bitmap_bytes as usize];
                    self.file.read_at(bitmap_at, &mut old)?;
                    v.insert(Bitmap {
                        at: bitmap_at,
                        new: old.clone(),
                        old,
                    })
                }
            };
            let first = within / SECTOR;
            for s in first..first + bytes.len() as u64 / SECTOR {
                map.new[(s / 8) as usize] |= 0x80 >> (s % 8);
            }
            data.push(HostWrite::new(
                bitmap_at + d.bitmap_bytes + within,
                bytes.to_vec(),
                format!("data of block {block}"),
            ));
            Ok(())
        })?;
        let mut plan = Plan::empty(Format::Vhd, size);
        for (block, map) in &bitmaps {
            if map.old.is_empty() {
                data.push(HostWrite::new(
                    map.at,
                    map.new.clone(),
                    format!("sector bitmap of new block {block}"),
                ));
                continue;
            }
            // Only the bitmap's sectors that change.
            for (i, (o, n)) in map.old.chunks(512).zip(map.new.chunks(512)).enumerate() {
                if o != n {
                    data.push(HostWrite::new(
                        map.at + i as u64 * 512,
                        n.to_vec(),
                        format!("sector bitmap of block {block}"),
                    ));
                }
            }
        }
        let grown = bitmaps.values().any(|m| m.old.is_empty());
        if grown {
            plan.new_len = next + SECTOR;
            data.push(HostWrite::new(next, footer.clone(), "footer"));
            plan.notes.push(format!(
                "{} new blocks of {bs} bytes from file offset {:#x}; the footer moves from \
                 {footer_at:#x} to {next:#x} (its copy at offset 0 is kept)",
                changed_entries.len(),
                footer_at.div_ceil(SECTOR) * SECTOR
            ));
        }
        plan.notes.push(format!(
            "{} bytes of data in {} pieces",
            data.iter()
                .filter(|w| w.what.starts_with("data"))
                .map(|w| w.data.len())
                .sum::<usize>(),
            data.iter().filter(|w| w.what.starts_with("data")).count()
        ));
        let mut resize = Vec::new();
        if grows {
            if !grown {
                // No new block moves it: the footer at the end takes the new size in place.
                plan.new_len = plan.new_len.max(footer_at + SECTOR);
                data.push(HostWrite::new(footer_at, footer.clone(), "footer"));
            }
            let mut copy = vec![0u8; 512];
            self.file.read_at(0, &mut copy)?;
            resize.push(HostWrite::new(
                0,
                resized_footer(&copy, new_size),
                "footer copy",
            ));
            if bat.len() > d.bat.len() {
                resize.push(self.grown_header(bat.len() as u32)?);
            }
            plan.notes.push(format!(
                "the disk grows from {old_size} to {new_size} bytes: {} BAT entries (were {})",
                bat.len(),
                d.bat.len()
            ));
        }
        plan.phases.push(Phase {
            name: "data",
            set_len: (plan.new_len > size).then_some(plan.new_len),
            writes: data,
        });
        // The BAT, in runs of one 512-byte sector of the table each.
        let mut bat_writes = Vec::new();
        let per_sector = 128u64;
        let groups: BTreeSet<u64> = changed_entries.iter().map(|b| b / per_sector).collect();
        for g in groups {
            let first = g * per_sector;
            let last = (first + per_sector).min(bat.len() as u64);
            let bytes: Vec<u8> = bat[first as usize..last as usize]
                .iter()
                .flat_map(|e| e.to_be_bytes())
                .collect();
            bat_writes.push(HostWrite::new(
                d.header.table_offset + first * 4,
                bytes,
                format!("BAT entries {first} to {}", last - 1),
            ));
        }
        bat_writes.extend(resize);
        plan.phases.push(Phase {
            name: "bat",
            set_len: None,
            writes: bat_writes,
        });
        plan.seal(&self.ctx)
    }
}
