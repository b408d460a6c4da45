//! rehost: open Windows disk images offline, tell whether each install will boot on a given
//! target machine and why not, and rewrite what stands in the way.
//!
//! This crate gathers the layers of the workspace under one name; each layer is a crate of
//! its own (see ARCHITECTURE.md), re-exported here under its layer's name.
//!
//! # Getting started
//! 1. Open an image with [`disk::open`]: raw, VHD or VHDX, detected from the content.
//! 2. List its volumes with [`volume::scan`].
//! 3. Open a file system on a volume with [`fs::FileSystem::open`] and read files by path.
//! 4. Find the Windows installs with [`windows::inspect`], and ask whether each boots on a
//!    target machine with [`rules::check`].
//!
//! The layers, bottom up: [`disk`] (containers), [`volume`] (partition tables),
//! [`fs`] (NTFS, FAT), [`formats`] (hives, PE, BCD, boot.ini), [`windows`] (the install
//! model), [`rules`] (target profiles and boot-readiness checks). Each knows only the
//! layers below it, and the compiler keeps it so: each is a crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use rehost_core::error;
pub use rehost_disk as disk;
pub use rehost_formats as formats;
pub use rehost_image as fs;
pub use rehost_rules as rules;
pub use rehost_volume as volume;
pub use rehost_windows as windows;

pub use rehost_core::{Ctx, Error, ErrorKind, Layer, Location, Result};
