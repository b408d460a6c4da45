//! A new dynamic VHDX (MS-VHDX 2.2 to 2.6), laid out as Hyper-V lays one out:
//!
//! | offset | what |
//! |---|---|
//! | 0 | file type identifier: `vhdxfile` and the creator |
//! | 64 KiB, 128 KiB | the two headers (sequence numbers 1 and 2), no log to replay |
//! | 192 KiB, 256 KiB | the two region tables: the BAT and the metadata |
//! | 1 MiB | the log (1 MiB, empty) |
//! | 2 MiB | the metadata region: file parameters, virtual disk size, page 83 data, sector sizes |
//! | 3 MiB | the BAT, its payload entries with a sector-bitmap entry after each chunk |
//! | then | the payload blocks that hold data, 32 MiB each, in disk order |
//!
//! A block that reads as zeros stays `PAYLOAD_BLOCK_NOT_PRESENT`, which a disk without a
//! parent reads as zeros.

use super::{each_block, write_sparse, Blocks, Out};
use crate::ids::Ids;
use crate::ReadAt;
use rehost_core::error::{Ctx, Result};
use uuid::{uuid, Uuid};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// Hyper-V's default block size.
pub(super) const BLOCK: u64 = 32 * MIB;
const LOGICAL_SECTOR: u64 = 512;
const PHYSICAL_SECTOR: u32 = 4096;
const LOG_OFFSET: u64 = MIB;
const LOG_LENGTH: u64 = MIB;
const METADATA_OFFSET: u64 = 2 * MIB;
const METADATA_LENGTH: u64 = MIB;
const BAT_OFFSET: u64 = 3 * MIB;
/// The largest virtual disk the format allows.
const MAX_SIZE: u64 = 64 << 40;

const BAT: Uuid = uuid!("2dc27766-f623-4200-9d64-115e9bfd4a08");
const METADATA: Uuid = uuid!("8b7ca206-4790-4b9a-b8fe-575f050f886e");
const FILE_PARAMETERS: Uuid = uuid!("caa16737-fa36-4d43-b3b6-33f0aa44e76b");
const VIRTUAL_DISK_SIZE: Uuid = uuid!("2fa54224-cd1b-4876-b211-5dbed83bf4b8");
const PAGE_83_DATA: Uuid = uuid!("beca12ab-b2e6-4523-93ef-c309e000c746");
const LOGICAL_SECTOR_SIZE: Uuid = uuid!("8141bf1d-a96f-4709-ba47-f233a8faab5f");
const PHYSICAL_SECTOR_SIZE: Uuid = uuid!("cda348c7-445d-4471-9cc9-e9885251c556");

/// BAT entry states.
const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;

/// Writes `src` into `o` as a dynamic VHDX; returns the blocks with data and
/// the number of blocks.
pub(super) fn write(src: &dyn ReadAt, o: &mut Out, ids: &mut Ids, ctx: &Ctx) -> Result<Blocks> {
    let size = src.size();
    if size == 0 || size % LOGICAL_SECTOR != 0 || size > MAX_SIZE {
        return Err(ctx.invalid(format!(
            "a VHDX holds a disk of whole 512-byte sectors, up to 64 TiB; this one is {size} \
             bytes"
        )));
    }
    let blocks = size.div_ceil(BLOCK);
    let chunk_ratio = ((1u64 << 23) * LOGICAL_SECTOR) / BLOCK;
    let entries = blocks + (blocks - 1) / chunk_ratio;
    let bat_length = (entries * 8).div_ceil(MIB) * MIB;
    let mut bat = vec![0u8; bat_length as usize];
    let mut next = BAT_OFFSET + bat_length;
    let counts = each_block(src, BLOCK, |k, data| {
        let at = next;
        write_sparse(o, at, data)?;
        next += BLOCK;
        let entry = PAYLOAD_BLOCK_FULLY_PRESENT | (at / MIB) << 20;
        let i = (k + k / chunk_ratio) as usize * 8;
        bat[i..i + 8].copy_from_slice(&entry.to_le_bytes());
        Ok(())
    })?;
    o.set_len(next)?;
    // Mostly zeros: what is zero stays a hole of the new file, which reads as zeros.
    write_sparse(o, BAT_OFFSET, &bat)?;
    write_sparse(o, METADATA_OFFSET, &metadata(size, ids.guid()))?;
    let regions = region_table(bat_length);
    o.write(192 * KIB, &regions)?;
    o.write(256 * KIB, &regions)?;
    let (file_write, data_write) = (ids.guid(), ids.guid());
    o.write(64 * KIB, &header(1, file_write, data_write))?;
    o.write(128 * KIB, &header(2, file_write, data_write))?;
    o.write(0, &identifier())?;
    Ok(counts)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// CRC-32C of `b` stored at `at` (computed with the field zero, as it is until then).
fn seal(b: &mut [u8], at: usize) {
    let c = crc32c::crc32c(b);
    put(b, at, &c.to_le_bytes());
}

/// The file type identifier: the signature and who made the file.
fn identifier() -> Vec<u8> {
    let mut b = vec![0u8; 64 * KIB as usize];
    put(&mut b, 0, b"vhdxfile");
    let creator = format!("rehost {}", env!("CARGO_PKG_VERSION"));
    let utf16: Vec<u8> = creator.encode_utf16().flat_map(u16::to_le_bytes).collect();
    put(&mut b, 8, &utf16);
    b
}

/// A header: no log to replay (LogGuid zero), the log's place, version 1.
fn header(sequence: u64, file_write: Uuid, data_write: Uuid) -> Vec<u8> {
    let mut b = vec![0u8; 4 * KIB as usize];
    put(&mut b, 0, b"head");
    put(&mut b, 8, &sequence.to_le_bytes());
    put(&mut b, 16, &file_write.to_bytes_le());
    put(&mut b, 32, &data_write.to_bytes_le());
    put(&mut b, 64, &0u16.to_le_bytes()); // LogVersion
    put(&mut b, 66, &1u16.to_le_bytes()); // Version
    put(&mut b, 68, &(LOG_LENGTH as u32).to_le_bytes());
    put(&mut b, 72, &LOG_OFFSET.to_le_bytes());
    seal(&mut b, 4);
    b
}

/// The region table: the BAT and the metadata region, both required.
fn region_table(bat_length: u64) -> Vec<u8> {
    let mut b = vec![0u8; 64 * KIB as usize];
    put(&mut b, 0, b"regi");
    put(&mut b, 8, &2u32.to_le_bytes());
    for (i, (id, offset, length)) in [
        (BAT, BAT_OFFSET, bat_length),
        (METADATA, METADATA_OFFSET, METADATA_LENGTH),
    ]
    .into_iter()
    .enumerate()
    {
        let e = 16 + 32 * i;
        put(&mut b, e, &id.to_bytes_le());
        put(&mut b, e + 16, &offset.to_le_bytes());
        put(&mut b, e + 24, &(length as u32).to_le_bytes());
        put(&mut b, e + 28, &1u32.to_le_bytes()); // Required
    }
    seal(&mut b, 4);
    b
}

/// The metadata region: its table and five items after it.
fn metadata(size: u64, disk_id: Uuid) -> Vec<u8> {
    const IS_VIRTUAL_DISK: u32 = 2;
    const IS_REQUIRED: u32 = 4;
    let mut b = vec![0u8; METADATA_LENGTH as usize];
    let mut params = BLOCK.to_le_bytes()[..4].to_vec();
    params.extend_from_slice(&0u32.to_le_bytes()); // neither LeaveBlocksAllocated nor HasParent
    let items: [(Uuid, Vec<u8>, u32); 5] = [
        (FILE_PARAMETERS, params, IS_REQUIRED),
        (
            VIRTUAL_DISK_SIZE,
            size.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            PAGE_83_DATA,
            disk_id.to_bytes_le().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            LOGICAL_SECTOR_SIZE,
            (LOGICAL_SECTOR as u32).to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            PHYSICAL_SECTOR_SIZE,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
    ];
    put(&mut b, 0, b"metadata");
    put(&mut b, 10, &(items.len() as u16).to_le_bytes());
    let mut at = 64 * KIB as usize;
    for (i, (id, bytes, flags)) in items.iter().enumerate() {
        let e = 32 + 32 * i;
        put(&mut b, e, &id.to_bytes_le());
        put(&mut b, e + 16, &(at as u32).to_le_bytes());
        put(&mut b, e + 20, &(bytes.len() as u32).to_le_bytes());
        put(&mut b, e + 24, &flags.to_le_bytes());
        put(&mut b, at, bytes);
        at += bytes.len();
    }
    b
}
