//! The read-back of a new image through this crate's own reader.

use super::NewFormat;
use crate::ReadAt;
use rehost_core::error::{Ctx, Layer, Result};
use std::path::Path;

/// Reads the new image at `path` through this crate's reader: the blocks that hold data
/// must read as what was written (their CRC-32C, taken as each was read from the source, so
/// the source is not read and decoded twice), and its allocation map (where the format has
/// one) must name no other block. The rest of a raw or fixed VHD file was never written:
/// holes.
pub(super) fn verify(
    src: &dyn ReadAt,
    path: &Path,
    format: NewFormat,
    with_data: &[(u64, u32)],
    block: u64,
) -> Result<()> {
    let ctx = Ctx::new(path.display().to_string(), Layer::File);
    let disk = crate::open(path, &crate::OpenOptions::default())?;
    let expected = format.virtual_size(src.size());
    if disk.info().format != format.format() || disk.size() != expected {
        return Err(ctx.corrupt(
            0,
            format!(
                "the new image reads back as a {} disk of {} bytes, not a {} of {}",
                disk.info().format,
                disk.size(),
                format.format(),
                expected
            ),
        ));
    }
    let size = src.size();
    // The blocks are read back on as many threads as there are cores (up to four), a share
    // of them each: reading back from the page cache and summing them is all CPU.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let share = with_data.len().div_ceil(threads).max(1);
    let read_back = |blocks: &[(u64, u32)]| -> Result<()> {
        let mut b = vec![0u8; block.min(size) as usize];
        for &(k, sum) in blocks {
            let at = k * block;
            let n = block.min(size - at) as usize;
            disk.read_once(at, &mut b[..n])?;
            if crc32c::crc32c(&b[..n]) != sum {
                return Err(ctx.corrupt(
                    at,
                    "the new image does not read back as the source: it is removed",
                ));
            }
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let others: Vec<_> = with_data
            .chunks(share)
            .skip(1)
            .map(|part| s.spawn(move || read_back(part)))
            .collect();
        let first = read_back(with_data.chunks(share).next().unwrap_or(&[]));
        others.into_iter().fold(first, |r, t| {
            let other = t
                .join()
                .unwrap_or_else(|_| Err(ctx.invalid("a read-back thread stopped")));
            r.and(other)
        })
    })?;
    if let Some(ranges) = disk.allocated()? {
        for (o, l) in ranges {
            let (first, last) = (o / block, (o + l - 1) / block);
            if (first..=last).any(|k| with_data.binary_search_by_key(&k, |d| d.0).is_err()) {
                return Err(ctx.corrupt(
                    o,
                    "the new image's allocation table names a block that holds no data",
                ));
            }
        }
    }
    Ok(())
}
