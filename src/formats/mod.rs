//! File formats wherever they live: registry hives, PE images, BCD stores, boot.ini,
//! cabinets and driver INF files.
//! These parse bytes handed to them; finding the bytes is the windows layer's job.

pub mod bcd;
pub mod bootini;
pub mod cab;
pub mod hive;
pub mod inf;
pub mod pe;
pub mod regf;
