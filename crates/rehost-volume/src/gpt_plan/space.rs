//! Where the ESP and the MSR go: free space, a System Reserved partition, or space added at
//! the end of the disk.

use super::MIB;
use super::{is_system_reserved, mask, Entry, EspSource, Origin, Plan, Profile, Refusal, Request};
use crate::gpt_write::{self, Partition, ENTRY_COUNT};
use crate::Layout;

/// The unused spans (inclusive sector ranges) of `lo..=hi` between `entries` (sorted).
fn gaps(entries: &[Entry], lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = lo;
    for e in entries {
        if e.partition.first_lba > at && at <= hi {
            out.push((at, (e.partition.first_lba - 1).min(hi)));
        }
        at = at.max(e.partition.last_lba.saturating_add(1));
    }
    if at <= hi {
        out.push((at, hi));
    }
    out
}

/// The first start in `gap`, aligned to `align`, of a span of `len` sectors that fits.
fn fit(gap: (u64, u64), len: u64, align: u64) -> Option<u64> {
    let start = gap.0.div_ceil(align).checked_mul(align)?;
    let end = start.checked_add(len)?.checked_sub(1)?;
    (end <= gap.1).then_some(start)
}

fn mib(sectors: u64, ss: u64) -> String {
    let bytes = sectors * ss;
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// Places the ESP (unless one is mapped already) and an MSR, grows the disk if it must.
pub(super) fn place(
    layout: &Layout,
    req: &Request,
    profile: &Profile,
    mut entries: Vec<Entry>,
    mut notes: Vec<String>,
) -> Result<Plan, Refusal> {
    let ss32 = layout.sector_size;
    let ss = ss32 as u64;
    let align = MIB / ss;
    let first_usable = gpt_write::first_usable_lba(ss32);
    let backup = gpt_write::backup_sectors(ss32);
    let sectors = req.disk_size / ss;
    let last_usable = sectors.saturating_sub(backup + 1);
    let end_used = entries.last().map(|e| e.partition.last_lba);
    let esp_sectors = req.esp_size.div_ceil(MIB).max(1) * align;
    let mut new_sectors = sectors;

    let existing = entries.iter().position(|e| e.origin == Origin::Esp);
    let (esp_source, esp_reason) = if let Some(i) = existing {
        let volume = layout
            .volumes
            .iter()
            .find(|v| v.offset / ss == entries[i].partition.first_lba)
            .map_or(0, |v| v.index);
        (
            EspSource::Existing { volume },
            format!(
                "partition {volume} is an EFI system partition (MBR type 0xEF) already: it is kept"
            ),
        )
    } else {
        let free = gaps(&entries, first_usable, last_usable);
        let largest = free.iter().map(|g| g.1 - g.0 + 1).max().unwrap_or(0);
        let want = mib(esp_sectors, ss);
        let no_free = format!(
            "no free span of {want} on a 1 MiB boundary (the largest free span is {})",
            mib(largest, ss)
        );
        let sr = layout
            .volumes
            .iter()
            .find(|v| is_system_reserved(v, req, profile) && v.size >= esp_sectors * ss);
        if let Some((gap, start)) = free
            .iter()
            .find_map(|g| fit(*g, esp_sectors, align).map(|s| (*g, s)))
        {
            entries.push(esp_entry(profile, start, esp_sectors));
            (
                EspSource::FreeSpace,
                format!(
                    "sectors {}..={} are free ({}): the {want} ESP goes at sector {start}",
                    gap.0,
                    gap.1,
                    mib(gap.1 - gap.0 + 1, ss)
                ),
            )
        } else if let (Some(v), true) = (sr, req.reuse_system_reserved) {
            let e = entries
                .iter_mut()
                .find(|e| e.origin == Origin::Mbr(v.index))
                .ok_or_else(|| Refusal::NoRoomForEsp("System Reserved not in the table".into()))?;
            let (first, last) = (e.partition.first_lba, e.partition.last_lba);
            *e = esp_entry(profile, first, last - first + 1);
            (
                EspSource::SystemReserved { volume: v.index },
                format!(
                    "{no_free}; partition {} is System Reserved (active NTFS of {}, no install on it), \
                     which a UEFI boot does not use: it becomes the ESP, reformatted FAT32, as MBR2GPT does",
                    v.index,
                    mib(v.size / ss, ss)
                ),
            )
        } else if req.can_grow {
            let start = end_used.map_or(first_usable, |l| l + 1).div_ceil(align) * align;
            new_sectors = start + esp_sectors + align;
            entries.push(esp_entry(profile, start, esp_sectors));
            (
                EspSource::Grown,
                format!(
                    "{no_free}{}; the disk grows by {} at its end: the ESP after the last partition, \
                     1 MiB for the backup GPT",
                    sr_why_not(layout, req, profile, esp_sectors * ss),
                    mib(new_sectors - sectors, ss)
                ),
            )
        } else {
            return Err(Refusal::NoRoomForEsp(format!(
                "{no_free}{}; and the container cannot grow",
                sr_why_not(layout, req, profile, esp_sectors * ss)
            )));
        }
    };

    // The backup GPT after the last partition: grow for it if it does not fit.
    if let Some(end) = end_used {
        if new_sectors == sectors && end > last_usable {
            if !req.can_grow {
                return Err(Refusal::NoRoomForBackup {
                    last_lba: end,
                    last_usable,
                });
            }
            new_sectors = (end + 1).div_ceil(align) * align + align;
            notes.push(format!(
                "the last partition reaches sector {end}: the disk grows by {} for the backup GPT",
                mib(new_sectors - sectors, ss)
            ));
        }
    }
    entries.sort_by_key(|e| e.partition.first_lba);
    if entries.len() > ENTRY_COUNT as usize {
        return Err(Refusal::TooManyPartitions(entries.len()));
    }

    let Some(new_last_usable) = new_sectors.checked_sub(backup + 1) else {
        return Err(Refusal::NoRoomForBackup {
            last_lba: end_used.unwrap_or(0),
            last_usable: 0,
        });
    };
    let msr_sectors = profile.msr.mib * align;
    let esp_end = entries
        .iter()
        .find(|e| e.origin == Origin::Esp)
        .map_or(0, |e| e.partition.last_lba);
    let free = gaps(&entries, first_usable, new_last_usable);
    // Right after the ESP, as Windows lays it out, else the first span that holds it.
    let after_esp = free.iter().find_map(|g| {
        let lo = g.0.max(esp_end + 1);
        (lo <= g.1)
            .then(|| fit((lo, g.1), msr_sectors, align))
            .flatten()
    });
    let spot = after_esp.or_else(|| free.iter().find_map(|g| fit(*g, msr_sectors, align)));
    let msr_reason = match spot {
        _ if entries.len() >= ENTRY_COUNT as usize => {
            "no MSR: the table's 128 entries are taken".to_string()
        }
        Some(start) => {
            entries.push(Entry {
                origin: Origin::Msr,
                partition: Partition {
                    first_lba: start,
                    last_lba: start + msr_sectors - 1,
                    type_guid: profile.msr.type_guid,
                    unique_guid: None,
                    attributes: mask(&profile.msr.attributes),
                    name: profile.msr.name.clone(),
                },
            });
            entries.sort_by_key(|e| e.partition.first_lba);
            format!("a {} MiB MSR fits at sector {start}", profile.msr.mib)
        }
        None => format!(
            "no MSR: no free span of {} MiB (Windows boots without one)",
            profile.msr.mib
        ),
    };
    Ok(Plan {
        sector_size: ss32,
        disk_size: new_sectors * ss,
        grow_by: (new_sectors - sectors) * ss,
        entries,
        esp_source,
        esp_reason,
        msr_reason,
        notes,
    })
}

fn esp_entry(profile: &Profile, first: u64, len: u64) -> Entry {
    Entry {
        origin: Origin::Esp,
        partition: Partition {
            first_lba: first,
            last_lba: first + len - 1,
            type_guid: profile.esp.type_guid,
            unique_guid: None,
            attributes: mask(&profile.esp.attributes),
            name: profile.esp.name.clone(),
        },
    }
}

/// Why no System Reserved partition was taken, after "; ".
fn sr_why_not(layout: &Layout, req: &Request, profile: &Profile, esp: u64) -> String {
    let Some(v) = layout
        .volumes
        .iter()
        .find(|v| is_system_reserved(v, req, profile))
    else {
        return "; no System Reserved partition (active NTFS without an install) to take over"
            .into();
    };
    if v.size < esp {
        format!(
            "; System Reserved (partition {}) is {} MiB, smaller than the ESP",
            v.index,
            v.size / MIB
        )
    } else {
        format!(
            "; System Reserved (partition {}) may not be taken over",
            v.index
        )
    }
}
