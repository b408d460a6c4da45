//! rehost: open Windows disk images offline, tell whether each install will boot on a given
//! target machine and why not, and rewrite what stands in the way.
//!
//! # Getting started
//! 1. Open an image with [`disk::open`]: raw, VHD or VHDX, detected from the content.
//! 2. List its volumes with [`volume::scan`].
//! 3. Open a file system on a volume with [`fs::open`] and read files by path.
//!
//! The layers, bottom up: [`disk`] (containers), [`volume`] (partition tables),
//! [`fs`] (NTFS, FAT). Each knows only the layers below it.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod disk;
pub mod error;
pub mod formats;
pub mod fs;
pub mod volume;
pub mod windows;

pub use error::{Ctx, Error, ErrorKind, Layer, Location, Result};
