//! When not to write: states of a volume or a file in which a write would be lost, undone
//! by Windows, or would damage what Windows keeps. Each refusal says why and what to do.

use super::bitmap::Bits;
use super::io::Vol;
use super::mft::Mft;
use super::names::{
    FILE_ATTRIBUTE_COMPRESSED, FILE_ATTRIBUTE_ENCRYPTED, FILE_ATTRIBUTE_REPARSE_POINT,
};
use super::WriteOptions;
use crate::file::File;
use crate::record::{Record, ATTR_COMPRESSED, ATTR_ENCRYPTED, AT_DATA, AT_REPARSE_POINT};
use crate::runlist::Run;
use crate::Ntfs;
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;

/// Records of the NTFS metafiles (`$MFT` to `$Extend` and the reserved ones after them).
const LAST_METAFILE: u64 = 23;

/// Refuses a BitLocker volume (its boot sector says `-FVE-FS-`).
pub fn check_encryption(dev: &dyn ReadAt, ctx: &Ctx) -> Result<()> {
    let mut sector = [0u8; 16];
    if dev.size() >= 16 {
        dev.read_at(0, &mut sector)?;
    }
    if &sector[3..11] == b"-FVE-FS-" {
        return Err(ctx.refused(
            "",
            "the volume is BitLocker-encrypted: its NTFS cannot be written offline; decrypt it in Windows first (manage-bde -off C:) or write it from a system that has unlocked it",
        ));
    }
    Ok(())
}

/// Refuses a volume whose `$LogFile` Windows would replay, one left by Fast Startup or
/// hibernation, one with a hibernation image waiting (both unless `allow_hibernated`), and
/// (unless allowed) one whose dirty flag is set. True when the write may go ahead only with
/// `$LogFile` emptied (Fast Startup's version-2.0 log on a volume whose hibernation the
/// caller discards).
pub fn check_state(ntfs: &Ntfs, opts: &WriteOptions) -> Result<bool> {
    let ctx = ntfs.ctx();
    let facts = ntfs.facts()?;
    let fast_startup = facts.logfile.version.as_deref() == Some("2.0");
    if fast_startup && !opts.allow_hibernated {
        return Err(ctx.refused(
            "$LogFile",
            "Windows left this volume with Fast Startup or hibernation (restart page version 2.0): it keeps the volume's state in memory and would overwrite any change; boot Windows and shut it down fully (shutdown /s /t 0, or turn Fast Startup off with powercfg /h off), or discard the hibernation (fix --discard-hibernation), then write",
        ));
    }
    if !facts.logfile.clean && !fast_startup {
        return Err(ctx.refused(
            "$LogFile",
            format!(
                "the volume was not shut down cleanly ({}): Windows would replay its log over any change; boot Windows and shut it down cleanly, or run chkdsk /f on it, then write",
                facts.logfile.detail
            ),
        ));
    }
    if let Some(h) = facts.hibernation.as_ref().filter(|h| h.active) {
        if !opts.allow_hibernated {
            return Err(ctx.refused(
                "hiberfil.sys",
                format!(
                    "a hibernated Windows waits to resume from this volume (hiberfil.sys begins with {:?}): resuming would undo any change; resume Windows and shut it down (or discard hibernation with powercfg /h off, or fix --discard-hibernation), then write",
                    h.signature
                ),
            ));
        }
    }
    if facts.dirty && !opts.allow_dirty_volume {
        return Err(ctx.refused(
            "$Volume",
            "the volume's dirty flag is set (chkdsk is due): boot Windows to let chkdsk check it, or run chkdsk /f, then write; or allow writing to a dirty volume",
        ));
    }
    Ok(fast_startup)
}

/// Records of `$MFTMirr` that must agree with `$MFT`: the system files before the first
/// user record (16).
///
/// `$MFTMirr` holds max(4 records, one cluster) (the NTFS documentation; ntfs-3g's
/// `mftmirr_size`). On clusters above 4 KiB, Windows 10 keeps only the first records of that
/// in step: a volume it formats with 2 MiB clusters has a 2,048-record mirror whose records
/// from 24 on still hold what format wrote (the CC0 sample in `testdata/ntfs`). ntfs-3g
/// therefore compares only the records below its `FILE_first_user` (16) when it mounts
/// (`libntfs-3g/volume.c`, `ntfs_device_mount`), and so does this check. The writer still
/// mirrors every record it writes that the mirror covers, as the Linux ntfs3 driver does
/// (`fs/ntfs3/super.c`: its `recs_mirr` is the mirror's size rounded up to a cluster).
pub const MIRROR_CHECKED: u64 = 16;

/// Refuses a volume whose `$MFTMirr` does not match the start of `$MFT` (chkdsk's job).
pub fn check_mirror(vol: &Vol, mft: &Mft) -> Result<()> {
    for n in 0..mft.mirror_records().min(MIRROR_CHECKED) {
        let a = mft.raw(vol, n)?;
        let b = mft.mirror_raw(vol, n)?;
        // Both must parse and hold the same record; update sequence numbers may differ.
        let ra = Record::parse(n, a, 0, &vol.ctx);
        let rb = Record::parse(n, b, 0, &vol.ctx);
        let same = match (&ra, &rb) {
            (Ok(x), Ok(y)) => {
                let used = x.data.len().min(crate::le::u32_at(&x.data, 0x18) as usize);
                strip_usa(&x.data[..used]) == strip_usa(&y.data[..used.min(y.data.len())])
            }
            _ => false,
        };
        if !same {
            return Err(vol.ctx.refused(
                "$MFTMirr",
                format!("$MFTMirr record {n} does not match $MFT: run chkdsk /f on the volume, then write"),
            ));
        }
    }
    Ok(())
}

/// A record's bytes with the update sequence array blanked (it differs between the copies).
fn strip_usa(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    let ofs = crate::le::u16_at(b, 4) as usize;
    let n = crate::le::u16_at(b, 6) as usize;
    let end = (ofs + 2 * n).min(v.len());
    if ofs < end {
        v[ofs..end].fill(0);
    }
    v
}

/// Refuses to change the data of a metafile, or of a compressed, encrypted or
/// reparse-point file.
pub fn check_data_writable(f: &File, path: &str, ctx: &Ctx) -> Result<()> {
    check_not_metafile(f, path, ctx)?;
    let si_attrs = f.standard_information().map_or(0, |s| s.file_attributes);
    let data_flags = f
        .attributes
        .iter()
        .filter(|a| a.ty == AT_DATA && a.name.is_empty())
        .fold(0u16, |acc, a| acc | a.flags);
    if data_flags & ATTR_ENCRYPTED != 0 || si_attrs & FILE_ATTRIBUTE_ENCRYPTED != 0 {
        return Err(ctx.refused(
            path,
            "the file is EFS-encrypted: its bytes cannot be written offline; decrypt it in Windows (cipher /d) first, or delete it and create a new one",
        ));
    }
    if data_flags & ATTR_COMPRESSED != 0 || si_attrs & FILE_ATTRIBUTE_COMPRESSED != 0 {
        return Err(ctx.refused(
            path,
            "the file is NTFS-compressed: rehost does not write compressed data; uncompress it in Windows (compact /u) first, or delete it and create a new one",
        ));
    }
    if f.attributes.iter().any(|a| a.ty == AT_REPARSE_POINT)
        || si_attrs & FILE_ATTRIBUTE_REPARSE_POINT != 0
    {
        return Err(ctx.refused(
            path,
            "the file is a reparse point (a link, or compressed by Windows' CompactOS/WOF): writing its data stream would not change what Windows reads; delete it and create a new one",
        ));
    }
    Ok(())
}

/// Refuses to touch an NTFS metafile.
pub fn check_not_metafile(f: &File, path: &str, ctx: &Ctx) -> Result<()> {
    let in_extend = f.names().iter().any(|n| n.parent == 11);
    if f.record <= LAST_METAFILE || in_extend {
        return Err(ctx.refused(
            path,
            "this is an NTFS metadata file; rehost does not write those",
        ));
    }
    Ok(())
}

/// The clusters of the metafiles the writer writes through: `$MFT` (data and bitmap),
/// `$MFTMirr`, `$LogFile`, `$Boot` and `$Bitmap`, as `(lcn, len, name)`.
pub fn metafile_extents(ntfs: &Ntfs) -> Result<Vec<(u64, u64, &'static str)>> {
    let mut out = Vec::new();
    for (rec, name) in [
        (0, "$MFT"),
        (1, "$MFTMirr"),
        (2, "$LogFile"),
        (6, "$Bitmap"),
        (7, "$Boot"),
    ] {
        let f = ntfs.file(rec)?;
        for a in &f.attributes {
            if let crate::record::Body::NonResident(n) = &a.body {
                out.extend(
                    n.runs
                        .iter()
                        .filter_map(|r| r.lcn.map(|l| (l, r.len, name))),
                );
            }
        }
    }
    Ok(out)
}

/// Refuses a volume whose metafiles overlap or lie in clusters `$Bitmap` calls free: the
/// writer would write one over another.
pub fn check_metafiles(extents: &[(u64, u64, &str)], bits: &Bits, ctx: &Ctx) -> Result<()> {
    let mut sorted = extents.to_vec();
    sorted.sort_unstable();
    for w in sorted.windows(2) {
        if w[0].0 + w[0].1 > w[1].0 {
            return Err(ctx.corrupt(
                w[1].0,
                format!(
                    "{} and {} share clusters: run chkdsk /f on the volume",
                    w[0].2, w[1].2
                ),
            ));
        }
    }
    for (l, n, name) in &sorted {
        if !bits.all_set(*l, *n) {
            return Err(ctx.corrupt_at_path(
                name,
                format!(
                    "clusters {l}..{} are free in $Bitmap: run chkdsk /f on the volume",
                    l + n
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses to write through runs that a damaged record may have pointed elsewhere: every
/// stored cluster must be allocated in `$Bitmap` and outside the metafiles.
pub fn check_owned(
    runs: &[Run],
    bits: &Bits,
    meta: &[(u64, u64, &str)],
    what: &str,
    ctx: &Ctx,
) -> Result<()> {
    for r in runs {
        let Some(l) = r.lcn else { continue };
        if !bits.all_set(l, r.len) {
            return Err(ctx.corrupt_at_path(
                what,
                format!(
                    "its clusters {l}..{} are free in $Bitmap: run chkdsk /f on the volume",
                    l + r.len
                ),
            ));
        }
        if let Some((_, _, name)) = meta.iter().find(|(m, n, _)| l < m + n && *m < l + r.len) {
            return Err(ctx.corrupt_at_path(
                what,
                format!(
                    "its clusters {l}..{} belong to {name}: run chkdsk /f on the volume",
                    l + r.len
                ),
            ));
        }
    }
    Ok(())
}
