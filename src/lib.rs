//! rehost: open Windows disk images offline, tell whether each install will boot on a given
//! target machine and why not, and rewrite what stands in the way.
//!
//! # Getting started
//! 1. Open an image with [`disk::open`]: raw, VHD or VHDX, detected from the content.
//! 2. List its volumes with [`volume::scan`].
//! 3. Open a file system on a volume with [`fs::open`] and read files by path.
//!
//! 4. Find the Windows installs with [`windows::inspect`], and ask whether each boots on a
//!    target machine with [`rules::check`].
//!
//! The layers, bottom up: [`disk`] (containers), [`volume`] (partition tables),
//! [`fs`] (NTFS, FAT), [`formats`] (hives, PE, BCD, boot.ini), [`windows`] (the install
//! model), [`rules`] (target profiles and boot-readiness checks). Each knows only the
//! layers below it.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod disk;
pub mod error;
pub mod formats;
pub mod fs;
pub mod rules;
pub mod volume;
pub mod windows;

pub use error::{Ctx, Error, ErrorKind, Layer, Location, Result};
