//! rehost-core: what every layer of rehost shares.
//!
//! - [`Error`]: one error type, naming the image, the layer and the offset or path of every
//!   failure ([`error`]).
//! - [`io::ReadAt`] and [`io::WriteAt`]: the one I/O shape, positional and shared, with
//!   adapters for crates that want `Read + Seek`.
//! - [`entry`]: what a file system's directory listing says.
//! - [`names`]: names from input checked to stay inside the directory they are joined to.
//! - [`time`]: the time stamped on what rehost writes (`SOURCE_DATE_EPOCH` honoured).
//!
//! ```
//! use rehost_core::io::{Memory, ReadAt};
//! let disk = Memory::new("example", vec![0x55, 0xAA, 1, 2]);
//! let mut two = [0u8; 2];
//! disk.read_at(2, &mut two)?;
//! assert_eq!(two, [1, 2]);
//! # Ok::<(), rehost_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod entry;
pub mod error;
pub mod io;
pub mod le;
pub mod names;
pub mod time;

pub use error::{Ctx, Error, ErrorKind, Layer, Located, Location, Result};
