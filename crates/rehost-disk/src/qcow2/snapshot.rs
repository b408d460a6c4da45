//! The internal snapshot table (qcow2.txt, "Snapshots"): listed, never read; the active
//! state (the header's L1 table) is the disk.

use crate::{HostFile, ReadAt};
use rehost_core::error::{Ctx, Result};

/// QEMU's limit on internal snapshots.
const MAX_SNAPSHOTS: u32 = 65_536;
/// Snapshot names named in the image's notes; the rest are counted.
const NAMED: usize = 16;

/// One internal snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The snapshot's unique id string.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was taken, seconds since 1970.
    pub date_sec: u32,
    /// Offset of the snapshot's L1 table.
    pub l1_table_offset: u64,
    /// Entries in the snapshot's L1 table.
    pub l1_size: u32,
}

/// The snapshot table: its entries, and the bytes they span from the table's offset (each
/// entry's header, extra data, id and name, entries 8-byte aligned), as QEMU counts them.
pub struct Table {
    /// The snapshots, in table order.
    pub snapshots: Vec<Snapshot>,
    /// Bytes from the table's offset to the end of the last entry.
    pub bytes: u64,
}

/// Reads the `nb` entries of the snapshot table at `offset`.
pub fn read_table(file: &HostFile, ctx: &Ctx, offset: u64, nb: u32) -> Result<Table> {
    if nb > MAX_SNAPSHOTS {
        return Err(ctx.corrupt(
            60,
            format!("{nb} internal snapshots (more than {MAX_SNAPSHOTS})"),
        ));
    }
    if nb > 0 && offset % 8 != 0 {
        return Err(ctx.corrupt(
            64,
            format!("snapshot table offset {offset:#x} is not 8-byte aligned"),
        ));
    }
    let mut out = Vec::new();
    let mut at = offset;
    let mut bytes = 0;
    for i in 0..nb {
        let mut e = [0u8; 40];
        if at.checked_add(40).is_none_or(|end| end > file.size()) {
            return Err(ctx.corrupt(at, format!("snapshot {i} lies past the end of the file")));
        }
        file.read_at(at, &mut e)?;
        let id_len = u16::from_be_bytes([e[12], e[13]]) as u64;
        let name_len = u16::from_be_bytes([e[14], e[15]]) as u64;
        let extra = u32::from_be_bytes([e[36], e[37], e[38], e[39]]) as u64;
        let date_sec = u32::from_be_bytes([e[16], e[17], e[18], e[19]]);
        let l1_table_offset = u64::from_be_bytes(e[0..8].try_into().unwrap_or_default());
        let l1_size = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        if extra > 1024 {
            return Err(ctx.corrupt(
                at + 36,
                format!("snapshot {i} has {extra} bytes of extra data (at most 1024)"),
            ));
        }
        let strings = at + 40 + extra;
        let end = strings + id_len + name_len;
        if end > file.size() {
            return Err(ctx.corrupt(
                at,
                format!("snapshot {i}'s names run past the end of the file"),
            ));
        }
        let mut s = vec![0u8; (id_len + name_len) as usize];
        file.read_at(strings, &mut s)?;
        let (id, name) = s.split_at(id_len as usize);
        out.push(Snapshot {
            id: String::from_utf8_lossy(id).into_owned(),
            name: String::from_utf8_lossy(name).into_owned(),
            date_sec,
            l1_table_offset,
            l1_size,
        });
        bytes = end - offset;
        at = bytes.div_ceil(8) * 8 + offset;
    }
    Ok(Table {
        snapshots: out,
        bytes,
    })
}

/// The note that lists the snapshots.
pub fn note(snapshots: &[Snapshot]) -> String {
    let mut named: Vec<String> = snapshots
        .iter()
        .take(NAMED)
        .map(|s| format!("{} ({})", s.name, s.id))
        .collect();
    if snapshots.len() > NAMED {
        named.push(format!("and {} more", snapshots.len() - NAMED));
    }
    format!(
        "{} internal snapshot{}: {}; the active state is what is read",
        snapshots.len(),
        if snapshots.len() == 1 { "" } else { "s" },
        named.join(", ")
    )
}
