//! New images made from a virtual disk: raw, VHD (fixed, dynamic, or fixed and sized for
//! Azure), VHDX (dynamic), qcow2 (version 3) and VMDK (monolithicSparse or
//! streamOptimized), whatever the source's container, and with the staged writes of a
//! [`crate::Overlay`] applied on the way when the source is one (a fix written as a new
//! image of another format).
//!
//! The source is read block by block; a block (a cluster, a grain) that reads as zeros is
//! left a hole (unallocated in VHD, VHDX, qcow2 and VMDK, a sparse hole in a raw file),
//! so a disk's free space costs nothing in the copy. The source is read on one thread
//! while the blocks read before are written on another. The image is written under a
//! temporary name beside the output; it is opened again by this crate's own reader, every
//! block compared with the source's (by the CRC-32C taken as it was read), while its last
//! flush runs; then it is renamed into place and its directory flushed: the output appears
//! whole or not at all, and an existing file is never written over.

mod copy;
mod qcow2;
mod raw;
mod verify;
mod vhd;
mod vhdx;
mod vmdk;

pub use vmdk::VmdkAdapter;

use crate::ids::Ids;
use crate::ReadAt;
use copy::{each_block, is_zero, write_sparse, Blocks, Gather, Out};
use rehost_core::error::{Ctx, Layer, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use verify::verify;

/// The format of a new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewFormat {
    /// A raw image, sparse where the disk reads as zeros.
    Raw,
    /// A fixed VHD: the disk, then a 512-byte footer (what Azure takes).
    VhdFixed,
    /// A dynamic VHD with 2 MiB blocks.
    VhdDynamic,
    /// A dynamic VHDX with 32 MiB blocks (Hyper-V's default).
    Vhdx,
    /// A fixed VHD whose disk is a whole number of MiB, as Azure takes one (a disk of
    /// another size is rounded up, the added sectors reading as zeros).
    VhdAzure,
    /// A qcow2 image, version 3, 64 KiB clusters, 16-bit refcounts, uncompressed.
    Qcow2,
    /// A monolithicSparse VMDK (hosted, 64 KiB grains, with the redundant grain directory).
    VmdkSparse,
    /// A streamOptimized VMDK (deflate-compressed grains behind markers, the grain
    /// directory at the end), as vSphere takes one for upload.
    VmdkStream,
}

impl NewFormat {
    /// The format named `name`: `raw`, `vhd` (or `vhd-dynamic`), `vhd-fixed`,
    /// `vhd-azure`, `vhdx`, `qcow2`, `vmdk` (or `vmdk-sparse`: monolithicSparse),
    /// `vmdk-stream` (or `vmdk-streamoptimized`).
    pub fn from_name(name: &str) -> Option<NewFormat> {
        Some(match name.to_ascii_lowercase().as_str() {
            "raw" | "img" => NewFormat::Raw,
            "vhd" | "vhd-dynamic" | "vpc" => NewFormat::VhdDynamic,
            "vhd-fixed" => NewFormat::VhdFixed,
            "vhd-azure" => NewFormat::VhdAzure,
            "vhdx" => NewFormat::Vhdx,
            "qcow2" => NewFormat::Qcow2,
            "vmdk" | "vmdk-sparse" | "vmdk-monolithicsparse" => NewFormat::VmdkSparse,
            "vmdk-stream" | "vmdk-streamoptimized" => NewFormat::VmdkStream,
            _ => return None,
        })
    }

    /// The format a file name's extension asks for (`.raw`, `.img`, `.vhd`, `.vhdx`,
    /// `.qcow2`, `.vmdk`: a dynamic VHD, a monolithicSparse VMDK).
    pub fn from_path(path: &Path) -> Option<NewFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        ["raw", "img", "vhd", "vhdx", "qcow2", "vmdk"]
            .contains(&ext.as_str())
            .then(|| NewFormat::from_name(&ext))?
    }

    /// Its name, as `from_name` takes it (`vhd` for the dynamic VHD, `vmdk` for the
    /// monolithicSparse VMDK).
    pub fn name(self) -> &'static str {
        match self {
            NewFormat::Raw => "raw",
            NewFormat::VhdFixed => "vhd-fixed",
            NewFormat::VhdDynamic => "vhd",
            NewFormat::Vhdx => "vhdx",
            NewFormat::VhdAzure => "vhd-azure",
            NewFormat::Qcow2 => "qcow2",
            NewFormat::VmdkSparse => "vmdk",
            NewFormat::VmdkStream => "vmdk-stream",
        }
    }

    /// The names `from_name` takes, for messages.
    pub const NAMES: &'static str = "raw, vhd (dynamic), vhd-fixed, vhd-azure, vhdx, qcow2, \
                                     vmdk (monolithicSparse), vmdk-stream (streamOptimized)";

    /// The container format it is.
    pub fn format(self) -> crate::Format {
        match self {
            NewFormat::Raw => crate::Format::Raw,
            NewFormat::VhdFixed | NewFormat::VhdDynamic | NewFormat::VhdAzure => crate::Format::Vhd,
            NewFormat::Vhdx => crate::Format::Vhdx,
            NewFormat::Qcow2 => crate::Format::Qcow2,
            NewFormat::VmdkSparse | NewFormat::VmdkStream => crate::Format::Vmdk,
        }
    }

    /// The virtual size of the new image of a disk of `size` bytes: the same, but for the
    /// Azure VHD's, which is rounded up to a whole MiB.
    pub fn virtual_size(self, size: u64) -> u64 {
        match self {
            NewFormat::VhdAzure => size.div_ceil(1 << 20).saturating_mul(1 << 20),
            _ => size,
        }
    }
}

impl std::fmt::Display for NewFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NewFormat::Raw => "raw",
            NewFormat::VhdFixed => "fixed VHD",
            NewFormat::VhdDynamic => "dynamic VHD",
            NewFormat::Vhdx => "dynamic VHDX",
            NewFormat::VhdAzure => "fixed VHD for Azure",
            NewFormat::Qcow2 => "qcow2",
            NewFormat::VmdkSparse => "monolithicSparse VMDK",
            NewFormat::VmdkStream => "streamOptimized VMDK",
        })
    }
}

/// How to make a new image.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Derive the new image's identifiers from this seed (reproducible bytes), instead of
    /// the system's random source.
    pub seed: Option<u64>,
    /// The adapter a new VMDK's descriptor names (`None`: IDE).
    pub vmdk_adapter: Option<VmdkAdapter>,
}

/// What making a new image did.
#[derive(Debug, Clone)]
pub struct CreateReport {
    /// The new image.
    pub path: PathBuf,
    /// Its format.
    pub format: NewFormat,
    /// The new image's virtual disk size (the source's, unless the format rounds it up).
    pub virtual_size: u64,
    /// Blocks of the new image's block size that hold data (the rest are holes).
    pub blocks_written: u64,
    /// Blocks in all.
    pub blocks: u64,
    /// Bytes written into the new file.
    pub bytes_written: u64,
    /// The new file's length.
    pub file_len: u64,
    /// What the format changed and the caller should be told (a size rounded up).
    pub notes: Vec<String>,
}

/// Makes a new image of `format` at `out` (which must not exist) holding the virtual disk
/// `src`, then reads it back through this crate's reader and compares it with `src`.
pub fn create(
    src: &dyn ReadAt,
    out: &Path,
    format: NewFormat,
    opts: &CreateOptions,
) -> Result<CreateReport> {
    let ctx = Ctx::new(out.display().to_string(), Layer::File);
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(ctx.invalid(
            "the output exists; rehost never writes over it: remove it or choose another name",
        ));
    }
    if let Some(dir) = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        return Err(ctx.invalid(format!(
            "there is no directory {} to write the new image in",
            dir.display()
        )));
    }
    let mut tmp = out.as_os_str().to_os_string();
    tmp.push(".rehost-partial");
    let tmp = PathBuf::from(tmp);
    let tctx = Ctx::new(tmp.display().to_string(), Layer::File);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| tctx.io(0, e))?;
    let mut o = Out::new(file, &tctx);
    let mut ids = Ids::new(opts.seed);
    let result = (|| {
        let mut notes = Vec::new();
        let ((with_data, blocks), block) = match format {
            NewFormat::Raw => (raw::write(src, &mut o)?, raw::BLOCK),
            NewFormat::VhdFixed => (
                vhd::write_fixed(src, src.size(), &mut o, &mut ids)?,
                vhd::BLOCK,
            ),
            NewFormat::VhdAzure => {
                let size = format.virtual_size(src.size());
                if size != src.size() {
                    notes.push(format!(
                        "the disk's {} bytes were rounded up to {size} ({} MiB), as Azure \
                         wants a whole number of MiB; the added sectors read as zeros",
                        src.size(),
                        size >> 20
                    ));
                }
                (vhd::write_fixed(src, size, &mut o, &mut ids)?, vhd::BLOCK)
            }
            NewFormat::VhdDynamic => (vhd::write_dynamic(src, &mut o, &mut ids, &ctx)?, vhd::BLOCK),
            NewFormat::Vhdx => (vhdx::write(src, &mut o, &mut ids, &ctx)?, vhdx::BLOCK),
            NewFormat::Qcow2 => (qcow2::write(src, &mut o, &ctx)?, qcow2::BLOCK),
            NewFormat::VmdkSparse | NewFormat::VmdkStream => {
                let name = out
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| ctx.invalid("a VMDK's descriptor names its file in UTF-8"))?;
                let stream = format == NewFormat::VmdkStream;
                (
                    vmdk::write(
                        src,
                        &mut o,
                        &mut ids,
                        name,
                        stream,
                        opts.vmdk_adapter.unwrap_or_default(),
                        &ctx,
                    )?,
                    vmdk::BLOCK,
                )
            }
        };
        let file_len = o.file.metadata().map_err(|e| tctx.io(0, e))?.len();
        // The read-back runs while the last flush does: both read what the page cache
        // holds, flushed or not, and the image is renamed into place only after both.
        std::thread::scope(|s| {
            let check = s.spawn(|| verify(src, &tmp, format, &with_data, block));
            let flushed = o.flush_all();
            let checked = check
                .join()
                .unwrap_or_else(|_| Err(tctx.invalid("the read-back of the new image stopped")));
            flushed.and(checked)
        })?;
        std::fs::rename(&tmp, out).map_err(|e| ctx.io(0, e))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ctx.io(0, e))?;
        }
        Ok(CreateReport {
            path: out.to_path_buf(),
            format,
            virtual_size: format.virtual_size(src.size()),
            blocks_written: with_data.len() as u64,
            blocks,
            bytes_written: o.written,
            file_len,
            notes,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
