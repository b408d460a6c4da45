//! rehost-formats: the file formats of a Windows install other than the hive itself: PE
//! images, BCD stores (hives read through rehost-regf), boot.ini, cabinets and driver INF
//! files.
//!
//! These parse bytes handed to them; finding the bytes is the windows layer's job.
//!
//! ```no_run
//! let ini = rehost_formats::bootini::parse(&std::fs::read("boot.ini")?);
//! for e in &ini.entries {
//!     println!("{:?}", e);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bcd;
pub mod bcd_build;
pub mod bcd_ids;
pub mod bcdboot;
pub mod bootini;
pub mod cab;
pub mod inf;
pub mod pe;

/// The registry hive engine, re-exported: the formats above it read BCD stores through it.
pub use rehost_regf as regf;
pub use rehost_regf::hive;
