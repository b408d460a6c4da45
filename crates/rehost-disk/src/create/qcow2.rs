//! A new qcow2 image (QEMU's "qcow2 image format" specification, version 3): 64 KiB
//! clusters, 16-bit refcounts (`refcount_order` 4), no compression, no backing file, laid
//! out in one pass:
//!
//! | cluster | what |
//! |---|---|
//! | 0 | the header (104 bytes) and the end of its (empty) extension list |
//! | 1 | the refcount table, sized for the largest file this disk could make |
//! | then | the L1 table |
//! | then | per 512 MiB of the disk that holds data: its L2 table, then its data clusters |
//! | then | the refcount blocks, which count every cluster before them and themselves |
//!
//! A cluster that reads as zeros is left unallocated (its L2 entry zero, which an image
//! without a backing file reads as zeros). Every cluster of the file is in use once, so
//! each refcount is 1 and each L1 and L2 entry carries `QCOW_OFLAG_COPIED`: `qemu-img
//! check` finds neither errors nor leaks.

use super::{each_block, is_zero, Blocks, Gather, Out};
use crate::ReadAt;
use rehost_core::error::{Ctx, Result};

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// The blocks read from the source (whole clusters).
pub(super) const BLOCK: u64 = 1 << 20;
/// Entries of an L2 table (8 bytes each).
const L2_ENTRIES: u64 = CLUSTER / 8;
/// `refcount_order`: refcounts of 2^4 = 16 bits.
const REFCOUNT_ORDER: u32 = 4;
/// Refcounts in a refcount block.
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER * 8 / (1 << REFCOUNT_ORDER);
/// An L1 or L2 entry's flag: the cluster's refcount is exactly 1.
const COPIED: u64 = 1 << 63;
/// The header's length (version 3, without the compression type field).
const HEADER_LENGTH: u32 = 104;
/// The largest disk written (the VHDX's limit, which keeps the tables in memory small).
const MAX_SIZE: u64 = 64 << 40;

/// Writes `src` into `o` as a qcow2 image; returns the blocks (of [`BLOCK`]) with data and
/// the number of blocks.
pub(super) fn write(src: &dyn ReadAt, o: &mut Out, ctx: &Ctx) -> Result<Blocks> {
    let size = src.size();
    if size == 0 || size % 512 != 0 || size > MAX_SIZE {
        return Err(ctx.invalid(format!(
            "a qcow2 image is written for a disk of whole 512-byte sectors, up to 64 TiB; \
             this one is {size} bytes"
        )));
    }
    let l1_size = size.div_ceil(CLUSTER * L2_ENTRIES);
    let l1_clusters = (l1_size * 8).div_ceil(CLUSTER);
    let reftable_clusters = reftable_clusters(size, l1_size, l1_clusters);
    let l1_offset = (1 + reftable_clusters) * CLUSTER;
    let mut l1 = vec![0u64; l1_size as usize];
    let mut l2 = vec![0u64; L2_ENTRIES as usize];
    // The L2 table being filled: its index in L1 and its place in the file.
    let mut current: Option<(u64, u64)> = None;
    let mut next = l1_offset + l1_clusters * CLUSTER;
    let mut gather = Gather::new();
    let per_block = BLOCK / CLUSTER;
    let counts = each_block(src, BLOCK, |k, data| {
        for (i, cluster) in data.chunks(CLUSTER as usize).enumerate() {
            if is_zero(cluster) {
                continue;
            }
            let c = k * per_block + i as u64;
            let index = c / L2_ENTRIES;
            if current.is_none_or(|(j, _)| j != index) {
                if let Some((_, at)) = current {
                    gather.put(o, at, &table_bytes(&l2))?;
                    gather.flush(o)?;
                    l2.fill(0);
                }
                current = Some((index, next));
                l1[index as usize] = next | COPIED;
                next += CLUSTER;
            }
            gather.put(o, next, cluster)?;
            l2[(c % L2_ENTRIES) as usize] = next | COPIED;
            next += CLUSTER;
        }
        Ok(())
    })?;
    gather.flush(o)?;
    if let Some((_, at)) = current {
        o.write(at, &table_bytes(&l2))?;
    }
    // The refcount blocks go last and count themselves.
    let used = next / CLUSTER;
    let mut blocks = used.div_ceil(REFCOUNTS_PER_BLOCK);
    while (used + blocks).div_ceil(REFCOUNTS_PER_BLOCK) > blocks {
        blocks += 1;
    }
    if blocks > reftable_clusters * (CLUSTER / 8) {
        return Err(ctx.invalid("the qcow2 refcount table would overflow its room"));
    }
    let total = used + blocks;
    let mut reftable = vec![0u64; (reftable_clusters * CLUSTER / 8) as usize];
    let mut block = vec![0u8; CLUSTER as usize];
    for b in 0..blocks {
        let at = next + b * CLUSTER;
        reftable[b as usize] = at;
        let first = b * REFCOUNTS_PER_BLOCK;
        let counted = total.saturating_sub(first).min(REFCOUNTS_PER_BLOCK) as usize;
        block.fill(0);
        for r in block.chunks_exact_mut(2).take(counted) {
            r.copy_from_slice(&1u16.to_be_bytes());
        }
        gather.put(o, at, &block)?;
    }
    gather.flush(o)?;
    o.set_len(total * CLUSTER)?;
    o.write(l1_offset, &table_bytes(&l1))?;
    o.write(CLUSTER, &table_bytes(&reftable))?;
    o.write(0, &header(size, l1_size, l1_offset, reftable_clusters))?;
    Ok(counts)
}

/// The clusters of the refcount table: room for the refcount blocks of the largest file
/// a disk of `size` bytes can make (every cluster holding data).
fn reftable_clusters(size: u64, l1_size: u64, l1_clusters: u64) -> u64 {
    let fixed = 1 + l1_clusters + l1_size + size.div_ceil(CLUSTER);
    let mut table = 1;
    loop {
        let mut blocks = 0;
        while (fixed + table + blocks).div_ceil(REFCOUNTS_PER_BLOCK) > blocks {
            blocks += 1;
        }
        let need = (blocks * 8).div_ceil(CLUSTER);
        if need <= table {
            return table;
        }
        table = need;
    }
}

/// A table of big-endian 64-bit entries.
fn table_bytes(entries: &[u64]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.to_be_bytes()).collect()
}

/// The header: version 3, no backing file, no encryption, no snapshots, no features.
fn header(size: u64, l1_size: u64, l1_offset: u64, reftable_clusters: u64) -> Vec<u8> {
    let mut b = vec![0u8; CLUSTER as usize];
    let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(0, b"QFI\xfb");
    put(4, &3u32.to_be_bytes());
    // backing_file_offset (8) and backing_file_size (16): none.
    put(20, &CLUSTER_BITS.to_be_bytes());
    put(24, &size.to_be_bytes());
    // crypt_method (32): none.
    put(36, &(l1_size as u32).to_be_bytes());
    put(40, &l1_offset.to_be_bytes());
    put(48, &CLUSTER.to_be_bytes()); // refcount_table_offset
    put(56, &(reftable_clusters as u32).to_be_bytes());
    // nb_snapshots (60), snapshots_offset (64), incompatible (72), compatible (80) and
    // autoclear (88) features: none.
    put(96, &REFCOUNT_ORDER.to_be_bytes());
    put(100, &HEADER_LENGTH.to_be_bytes());
    // Then the header extensions: only the end marker (type 0, length 0), zeros.
    b.truncate(HEADER_LENGTH as usize + 8);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refcount_table_has_room_for_every_cluster() {
        // 40 GiB: 655,360 data clusters, 80 L2 tables; 21 refcount blocks at most.
        assert_eq!(reftable_clusters(40 << 30, 80, 1), 1);
        // 64 TiB: 2^30 data clusters need 32,769 refcount blocks: five table clusters.
        let size = MAX_SIZE;
        let l1 = size.div_ceil(CLUSTER * L2_ENTRIES);
        assert_eq!(reftable_clusters(size, l1, (l1 * 8).div_ceil(CLUSTER)), 5);
    }
}
