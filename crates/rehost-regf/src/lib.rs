//! The registry file format itself (rehost's own code, beside `nt-hive` which only reads
//! clean hives): base blocks, transaction log replay, cells read and edited, .reg text.
//!
//! Source of the format: the msuhanov/regf specification.
//!
//! ```no_run
//! use rehost_core::{Ctx, Layer};
//! use rehost_regf::hive::Hive;
//! let bytes = std::fs::read("SYSTEM")?;
//! let hive = Hive::parse(bytes, Ctx::new("SYSTEM", Layer::Hive))?;
//! let start = hive.value("ControlSet001\\Services\\storahci", "Start")?;
//! println!("storahci Start = {:?}", start.and_then(|v| v.as_u64()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alloc;
pub mod apply;
pub mod base;
pub mod cells;
pub mod create;
pub mod diff;
pub mod edit;
pub mod error;
pub mod export;
pub mod hive;
pub mod lists;
pub mod marvin;
pub mod names;
pub mod query;
pub mod regtext;
pub mod replay;
pub mod security;
pub mod types;
pub mod values;
pub mod verify;

pub use apply::{apply, Mapping};
pub use create::NewHive;
pub use edit::Editor;
pub use error::Error;
pub use replay::{recover, Log, Recovery};
