//! `dirty-volume`: the state of the install's volume and of the volume the firmware starts:
//! an active hibernation image (hibernation or Fast Startup), a `$LogFile` Windows would
//! replay, the dirty flag. Windows resumes or replays what rehost would have to write
//! around, so `rehost fix` refuses these volumes.

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;

const ID: &str = "dirty-volume";

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let mut volumes = vec![s.install.volume];
    if let Some(sv) = s.install.boot.system_volume {
        if sv != s.install.volume {
            volumes.push(sv);
        }
    }
    for index in volumes {
        let Some(v) = s.volume(index) else {
            continue;
        };
        if v.hibernated == Some(true) {
            out.findings.push(
                Finding::new(
                    ID,
                    "hibernated",
                    format!(
                        "volume {index} holds an active hibernation image (hiberfil.sys): \
                         Windows would try to resume the old machine's session"
                    ),
                )
                .with(Evidence::file(
                    index,
                    "hiberfil.sys",
                    "active hibernation image",
                )),
            );
        }
        if v.logfile_clean == Some(false) {
            out.findings.push(
                Finding::new(
                    ID,
                    "logfile",
                    format!("volume {index}'s $LogFile holds changes Windows would replay"),
                )
                .with(Evidence::file(index, "$LogFile", "not clean")),
            );
        }
        if v.dirty == Some(true) {
            out.findings.push(
                Finding::new(ID, "dirty", format!("volume {index} is marked dirty"))
                    .with(Evidence::file(index, "$Volume", "dirty flag set")),
            );
        }
    }
    Ok(())
}
