//! What the storage rules (storage-driver, start-override, critical-device,
//! driver-database) share of their checks: the driver the target's boot controller needs
//! on this install, and Start values in words.

use super::subject::Subject;
use super::target::{Driver, Target};
use super::Out;

/// The driver the profile gives for the install's version; `None` when the version is
/// unknown (said in `out`) or no driver applies.
pub fn driver_for<'t>(s: &Subject, t: &'t Target, out: &mut Out) -> Option<&'t Driver> {
    match s.version {
        Some(v) => t.controller.driver_for(v),
        None => {
            out.unknown.push(
                "the Windows version is unknown (no readable SOFTWARE hive): the driver for the \
                 target's controller cannot be chosen"
                    .into(),
            );
            None
        }
    }
}

/// A Start value in words.
pub fn start_name(start: Option<u32>) -> &'static str {
    match start {
        Some(0) => "at boot",
        Some(1) => "at system start",
        Some(2) => "automatically",
        Some(3) => "on demand",
        Some(4) => "never (disabled)",
        _ => "in an unknown way",
    }
}
