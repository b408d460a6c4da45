//! The registry file format itself (rehost's own code, beside `nt-hive` which only reads
//! clean hives): base blocks, transaction log replay, cells read and edited, .reg text.
//!
//! Source of the format: the msuhanov/regf specification.

pub mod alloc;
pub mod apply;
pub mod base;
pub mod cells;
pub mod diff;
pub mod edit;
pub mod export;
pub mod lists;
pub mod marvin;
pub mod names;
pub mod query;
pub mod regtext;
pub mod replay;
pub mod types;
pub mod values;
pub mod verify;

pub use apply::{apply, Mapping};
pub use edit::Editor;
pub use replay::{recover, Log, Recovery};
