//! The disk layer: virtual disks (raw, VHD, VHDX, VMDK, qcow2, E01, Ex01) as one
//! positional, shared interface.
//!
//! Everything above this layer reads through [`ReadAt`]: a positional read with no hidden
//! cursor, callable from many threads at once. [`open`] detects the container format from
//! the content (never from the file name), opens differencing chains, and puts a
//! [`BlockCache`] above the container so that the many small reads of the file-system and
//! registry parsers cost one host read per block.
//!
//! ```no_run
//! use rehost_disk::{self as disk, ReadAt};
//! let disk = disk::open("server.vhdx".as_ref(), &disk::OpenOptions::default())?;
//! let mut sector = [0u8; 512];
//! disk.read_at(0, &mut sector)?;
//! println!("{} bytes, {}", disk.size(), disk.info().format);
//! # Ok::<(), rehost_core::Error>(())
//! ```
//!
//! # Writing
//! [`open_for_write`] takes the image's advisory lock ([`ImageLock`]), rolls back a commit
//! that was interrupted, and puts a staging [`Overlay`] above the container: the layers
//! above write there (through [`WindowMut`] for a volume) and read their own writes back,
//! while the file is untouched. [`WriteSession::commit`] then turns the staged extents into
//! a [`Plan`] of host-file writes for the container's format (raw and fixed VHD directly;
//! dynamic and differencing VHD in `vhd`; VHDX in `vhdx`, through its log), journals every
//! byte the plan overwrites (`journal`), carries the plan out phase by phase with a flush
//! after each, marks the journal complete and reads the staged bytes back through a fresh
//! reader. [`WriteSession::commit_to`] writes a new image instead, and [`undo`] restores an
//! image from its journal. Each step of these is reported to an optional [`Observer`].

// The one place rehost needs `unsafe`: mapping a raw image read-only (file.rs).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod carry_out;
mod commit;
pub mod create;
mod detect;
pub mod ewf;
mod file;
mod ids;
mod inflate;
pub mod journal;
mod lock;
mod overlay;
mod plan;
pub mod qcow2;
mod raw;
mod several;
mod sync;
mod tables;
mod target;
mod undo;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

pub use cache::{BlockCache, BLOCK_SIZE};
pub use carry_out::{CommitOptions, CommitReport};
pub use commit::{
    in_place_check, in_place_refusal, open_for_write, refuse_growth, undo, vmdk_adapter_for,
    InPlace, WriteOptions, WriteSession,
};
pub use create::{create, CreateOptions, CreateReport, NewFormat, VmdkAdapter};
pub use detect::{
    detect_format, open, open_container, parent_candidates, OpenOptions, ParentOpener,
    MAX_CHAIN_DEPTH, SESSION_CACHE_BLOCKS,
};
pub use file::{HostFile, IoStats};
pub use ids::Ids;
pub use lock::ImageLock;
pub use overlay::{Overlay, WindowMut, MAX_STAGED};
pub use plan::{HostWrite, Phase, Plan};
pub use raw::Raw;
pub use rehost_core::io::{Cursor, CursorMut, Memory, ReadAt, Slice, WriteAt};
pub use sync::{Observer, Step, WRITE_PIECE};
pub use undo::{Recovery, UndoReport};

use rehost_core::error::Result;
use serde::Serialize;
use std::sync::Arc;

/// The container format of a virtual disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A plain sector-for-sector image or a block device.
    Raw,
    /// Microsoft Virtual Hard Disk (Virtual PC, Hyper-V 2008, Disk2vhd).
    Vhd,
    /// Microsoft VHDX (Hyper-V 2012+, Azure).
    Vhdx,
    /// VMware VMDK (Workstation, ESXi, OVA exports): a descriptor and its extents.
    Vmdk,
    /// QEMU qcow2 (KVM, OpenStack, Proxmox).
    Qcow2,
    /// Expert Witness evidence files (EnCase, libewf): E01 (EWF version 1) and Ex01 (EWF2)
    /// segment files, read-only.
    E01,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Raw => "raw",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vmdk => "vmdk",
            Format::Qcow2 => "qcow2",
            Format::E01 => "e01",
        })
    }
}

/// How the container stores its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subformat {
    /// Every byte stored in place (raw images, fixed VHD/VHDX).
    Fixed,
    /// Blocks allocated on demand through a block allocation table.
    Dynamic,
    /// Blocks not present in this file are read from a parent image.
    Differencing,
}

/// What a container says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct DiskInfo {
    /// The image file.
    pub path: String,
    /// Container format.
    pub format: Format,
    /// Fixed, dynamic or differencing.
    pub subformat: Subformat,
    /// The format's own name for how the image is laid out, where it has one (a VMDK's
    /// `createType` such as `streamOptimized`, a qcow2's version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Size of the virtual disk in bytes.
    pub virtual_size: u64,
    /// Logical sector size in bytes (512 or 4096).
    pub logical_sector_size: u32,
    /// Physical sector size in bytes (512 or 4096).
    pub physical_sector_size: u32,
    /// Block size of a dynamic or differencing container, in bytes.
    pub block_size: Option<u32>,
    /// The container's identity (VHD unique id, VHDX virtual disk id).
    pub disk_id: Option<String>,
    /// VHDX DataWriteGuid: the identity a differencing child links to.
    pub data_write_guid: Option<String>,
    /// Notes worth telling a user (a log replayed in memory, an old footer, ...).
    pub notes: Vec<String>,
    /// The parent, for a differencing image.
    pub parent: Option<Box<DiskInfo>>,
    /// The hashes of the media the container stores (an evidence file's MD5 and SHA-1,
    /// computed when it was acquired).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stored_hashes: Vec<StoredHash>,
}

/// A hash of the whole media, as the container stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredHash {
    /// `MD5` or `SHA-1`.
    pub algorithm: String,
    /// The digest in lower-case hex.
    pub hex: String,
}

impl StoredHash {
    /// A stored hash of `algorithm`.
    pub fn new(algorithm: &str, hex: String) -> Self {
        StoredHash {
            algorithm: algorithm.to_string(),
            hex,
        }
    }
}

impl DiskInfo {
    /// The info of a plain file or device of `size` bytes.
    pub fn raw(path: &str, size: u64) -> Self {
        DiskInfo {
            path: path.to_string(),
            format: Format::Raw,
            subformat: Subformat::Fixed,
            variant: None,
            virtual_size: size,
            logical_sector_size: 512,
            physical_sector_size: 512,
            block_size: None,
            disk_id: None,
            data_write_guid: None,
            notes: Vec::new(),
            parent: None,
            stored_hashes: Vec::new(),
        }
    }
}

/// An opened container: a [`ReadAt`] that also describes itself.
pub trait Container: ReadAt {
    /// The container's description.
    fn info(&self) -> &DiskInfo;
}

/// An opened virtual disk: the container, a block cache above it, and the I/O counters of
/// every host file it reads (parents included).
pub struct Disk {
    info: DiskInfo,
    reader: Arc<dyn ReadAt>,
    stats: Arc<IoStats>,
}

impl Disk {
    /// Wraps an opened container and its counters.
    pub fn new(info: DiskInfo, reader: Arc<dyn ReadAt>, stats: Arc<IoStats>) -> Self {
        Disk {
            info,
            reader,
            stats,
        }
    }

    /// What the container says about itself.
    pub fn info(&self) -> &DiskInfo {
        &self.info
    }

    /// Bytes and reads issued to host files so far.
    pub fn stats(&self) -> &Arc<IoStats> {
        &self.stats
    }

    /// A shared handle to the reader, for the layers above.
    pub fn reader(&self) -> Arc<dyn ReadAt> {
        self.reader.clone()
    }
}

impl ReadAt for Disk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.reader.read_at(offset, buf)
    }
    fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.reader.read_once(offset, buf)
    }
    fn size(&self) -> u64 {
        self.reader.size()
    }
    fn allocated(&self) -> Result<Option<Vec<(u64, u64)>>> {
        self.reader.allocated()
    }
}

pub(crate) use rehost_core::io::in_bounds;

/// Splits a read of `buf` at `offset` into pieces that stay inside one `block`-byte block,
/// calling `f(block number, offset within the block, piece)` for each.
pub(crate) fn for_each_block(
    offset: u64,
    buf: &mut [u8],
    block: u64,
    mut f: impl FnMut(u64, u64, &mut [u8]) -> Result<()>,
) -> Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let pos = offset + done as u64;
        let within = pos % block;
        let n = ((block - within) as usize).min(buf.len() - done);
        f(pos / block, within, &mut buf[done..done + n])?;
        done += n;
    }
    Ok(())
}

/// Reads from the parent of a differencing disk; a child larger than its parent reads
/// zeros past the parent's end.
pub(crate) fn read_parent(parent: &dyn ReadAt, offset: u64, buf: &mut [u8]) -> Result<()> {
    let inside = parent.size().saturating_sub(offset).min(buf.len() as u64) as usize;
    buf[inside..].fill(0);
    if inside > 0 {
        parent.read_at(offset, &mut buf[..inside])?;
    }
    Ok(())
}
