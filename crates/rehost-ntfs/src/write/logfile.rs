//! `$LogFile` and the dirty flag after an offline change.
//!
//! The log of a volume the writer accepts is clean, so Windows has nothing to replay; but
//! it describes the volume as Windows last saw it. ntfs-3g empties it after writing (fills
//! its whole `$DATA` with 0xFF bytes, `ntfs_logfile_reset`), and Windows then starts a new
//! log at the next mount, as it does on a volume fresh from mkntfs. The writer does the
//! same, once, with its first change; a log already empty is left alone.
//!
//! The dirty flag (`VOLUME_IS_DIRTY` in `$Volume`'s `$VOLUME_INFORMATION`) makes chkdsk
//! check the volume at the next boot; it is set only when asked.

use super::io::Vol;
use super::mft::Mft;
use crate::facts::VOLUME_IS_DIRTY;
use crate::record::{AT_DATA, AT_VOLUME_INFORMATION};
use crate::{Ntfs, RECORD_LOGFILE, RECORD_VOLUME};
use rehost_core::error::Result;

/// Fills `$LogFile`'s data with 0xFF, unless the log is empty already.
pub fn reset(vol: &Vol, ntfs: &Ntfs) -> Result<()> {
    let state = ntfs.logfile_state()?;
    if state.clean && state.version.is_none() {
        return Ok(());
    }
    let f = ntfs.file(RECORD_LOGFILE)?;
    let desc = f
        .stream_desc(AT_DATA, "", &vol.ctx, "$LogFile")?
        .ok_or_else(|| vol.ctx.corrupt_at_path("$LogFile", "no $DATA"))?;
    if desc.resident.is_some() {
        return Err(vol.ctx.corrupt_at_path("$LogFile", "resident $DATA"));
    }
    const CHUNK: u64 = 1 << 20;
    let ff = vec![0xFFu8; CHUNK.min(desc.data_size) as usize];
    let mut done = 0u64;
    while done < desc.data_size {
        let n = CHUNK.min(desc.data_size - done);
        vol.write_runs(&desc.runs, done, &ff[..n as usize], "$LogFile")?;
        done += n;
    }
    Ok(())
}

/// Sets the dirty flag in `$Volume` (in the MFT cache, written with the operation).
pub fn set_dirty(vol: &Vol, mft: &mut Mft) -> Result<()> {
    let ctx = vol.ctx.clone();
    let r = mft.get(vol, RECORD_VOLUME)?;
    let at = r
        .find(AT_VOLUME_INFORMATION, &[], &ctx)?
        .ok_or_else(|| ctx.corrupt_at_path("$Volume", "no $VOLUME_INFORMATION"))?;
    let mut value = r
        .value(&at)
        .filter(|v| v.len() >= 12)
        .ok_or_else(|| ctx.corrupt_at_path("$Volume", "$VOLUME_INFORMATION is too short"))?
        .to_vec();
    let flags = crate::le::u16_at(&value, 10) | VOLUME_IS_DIRTY;
    value[10..12].copy_from_slice(&flags.to_le_bytes());
    r.set_value(&at, &value)
        .then_some(())
        .ok_or_else(|| ctx.corrupt_at_path("$Volume", "$VOLUME_INFORMATION cannot be rewritten"))
}
