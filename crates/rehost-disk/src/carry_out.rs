//! Carrying out a commit: its options, the plan applied phase by phase to a host file (each
//! phase flushed), a source copied by its data runs for a new image, the staged extents read
//! back through a fresh reader, and the report. Used by the commit of one file
//! ([`crate::commit`]) and of several (`several`).

use super::sync::{self, Observer, Steps, WriteFile};
use super::{detect, IoStats, OpenOptions, Plan, ReadAt};
use rehost_core::error::{Ctx, Layer, Result};
use std::path::{Path, PathBuf};

/// How to commit.
#[derive(Clone, Copy, Default)]
pub struct CommitOptions<'a> {
    /// Told of every step before it is taken (progress, tests that stop a commit midway).
    pub observer: Option<Observer<'a>>,
    /// Derive new identifiers (VHDX FileWriteGuid, DataWriteGuid, LogGuid) from this seed
    /// instead of the system's random source, so that the same commit gives the same bytes.
    pub seed: Option<u64>,
    /// The adapter a new VMDK's descriptor names (`None`: the source VMDK's, else IDE).
    pub vmdk_adapter: Option<crate::VmdkAdapter>,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct CommitReport {
    /// The image written (the source, or the new image).
    pub path: PathBuf,
    /// Staged extents, and their bytes.
    pub staged_extents: usize,
    /// Bytes staged.
    pub staged_bytes: u64,
    /// Writes issued to the host file, and their bytes.
    pub host_writes: usize,
    /// Bytes written into the host file.
    pub bytes_written: u64,
    /// The host file's length before and after.
    pub len_before: u64,
    /// The host file's length after.
    pub len_after: u64,
    /// The undo journal (commits in place).
    pub journal: Option<PathBuf>,
    /// Bytes this commit added to the journal.
    pub journal_bytes: u64,
    /// Steps taken (writes, flushes, renames).
    pub steps: u64,
    /// What the container did, in words.
    pub notes: Vec<String>,
}

/// Reads every staged extent back from `path` through a fresh, uncached reader; when the
/// commit `repaired` the container (a dirty qcow2's refcounts), checks the repair too.
pub(crate) fn verify(path: &Path, extents: &[(u64, Vec<u8>)], repaired: bool) -> Result<()> {
    let opts = OpenOptions {
        cache_blocks: 0,
        map_raw: false,
        cache_bulk: false,
    };
    let back = detect::open_target(path, &opts, IoStats::new())?;
    let ctx = Ctx::new(path.display().to_string(), Layer::File);
    let mut buf = Vec::new();
    for (at, bytes) in extents {
        for (i, piece) in bytes.chunks(sync::WRITE_PIECE).enumerate() {
            let pos = at + (i * sync::WRITE_PIECE) as u64;
            buf.resize(piece.len(), 0);
            back.read_at(pos, &mut buf)?;
            if buf != piece {
                let k = buf.iter().zip(piece).position(|(a, b)| a != b).unwrap_or(0);
                return Err(ctx.corrupt(
                    pos + k as u64,
                    "after the commit the image does not read back as staged at this \
                     virtual-disk offset",
                ));
            }
        }
    }
    if repaired {
        back.check_repaired()?;
    }
    Ok(())
}

/// Carries out `plan` on `file`: per phase, the length, the writes, a flush.
pub(crate) fn apply(plan: &Plan, file: &WriteFile, steps: &mut Steps) -> Result<()> {
    for phase in &plan.phases {
        steps.phase(phase.name);
        if let Some(len) = phase.set_len {
            file.set_len(steps, len)?;
        }
        for w in &phase.writes {
            file.write(steps, w.offset, &w.data)?;
        }
        file.sync(steps)?;
    }
    Ok(())
}

/// Copies the file at `src` into `out`, data runs only (holes stay holes), and flushes it.
pub(crate) fn copy_sparse(src: &Path, out: &WriteFile, steps: &mut Steps) -> Result<()> {
    use rustix::fs::{seek, SeekFrom};
    let input = WriteFile::open_read(src, Layer::File)?;
    let len = input.len()?;
    let mut runs = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let data = match seek(&input.file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            // No hole support here: copy everything.
            Err(_) => {
                runs = vec![(0, len)];
                break;
            }
        };
        let hole = seek(&input.file, SeekFrom::Hole(data))
            .map_err(|e| input.ctx.io(data, e.into()))?
            .min(len);
        runs.push((data, hole));
        pos = hole;
    }
    let mut buf = vec![0u8; sync::WRITE_PIECE];
    for (start, end) in runs {
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            if input.read_some(at, &mut buf[..n])? != n {
                return Err(input.ctx.invalid("the source shrank while it was copied"));
            }
            if buf[..n].iter().any(|b| *b != 0) {
                out.write(steps, at, &buf[..n])?;
            }
            at += n as u64;
        }
    }
    out.set_len(steps, len)?;
    out.sync(steps)
}

/// What a commit of `plan` into `path` of the staged `extents` reports before it is made.
pub(crate) fn report_of(plan: &Plan, path: &Path, extents: &[(u64, Vec<u8>)]) -> CommitReport {
    CommitReport {
        path: path.to_path_buf(),
        staged_extents: extents.len(),
        staged_bytes: extents.iter().map(|(_, b)| b.len() as u64).sum(),
        host_writes: plan.writes().count(),
        bytes_written: plan.bytes_written(),
        len_before: plan.file_len,
        len_after: plan.new_len,
        journal: None,
        journal_bytes: 0,
        steps: 0,
        notes: plan.notes.clone(),
    }
}
