//! The registry file format itself (rehost's own code, beside `nt-hive` which only reads
//! clean hives): base blocks, and transaction log replay.
//!
//! Source of the format: the msuhanov/regf specification.

pub mod base;
pub mod cells;
pub mod export;
pub mod marvin;
pub mod regtext;
pub mod replay;

pub use replay::{recover, Log, Recovery};
