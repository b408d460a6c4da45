//! `dirty-volume`: the state of the install's volume and of the volume the firmware starts:
//! an active hibernation image (hibernation or Fast Startup), a `$LogFile` Windows would
//! replay, the dirty flag. Windows resumes or replays what rehost would have to write
//! around, so `rehost fix` refuses these volumes; a hibernation image it discards when
//! asked (`--discard-hibernation`): it empties `hiberfil.sys`, as ntfs-3g's
//! `remove_hiberfile` removes it, and the boot loader then finds nothing to resume.

use super::finding::{Evidence, Finding};
use super::fix::{Change, FixOptions, Plan};
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
                        "volume {index} holds an active hibernation image (hiberfil.sys): the \
                         first start on the new machine resumes the old machine's session \
                         from it, with the old machine's drivers in memory, not the install \
                         this check judged (the loader may find the hardware changed and \
                         offer to delete the image instead)"
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

/// The fix: with `--discard-hibernation`, `hiberfil.sys` emptied on each hibernated volume
/// (its clusters freed; Windows makes the file again when it next hibernates); without it,
/// nothing, and why.
pub fn fix(
    _s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    for f in findings.iter().filter(|f| f.case == "hibernated") {
        let Some(volume) = f.evidence.iter().find_map(|e| e.volume) else {
            continue;
        };
        if !o.discard_hibernation {
            plan.cannot(
                ID,
                format!(
                    "volume {volume} holds an active hibernation image: fix \
                     --discard-hibernation empties hiberfil.sys (the hibernated session is \
                     lost) and writes"
                ),
            );
            continue;
        }
        let path = "\\hiberfil.sys".to_string();
        plan.add(
            ID,
            format!(
                "discard volume {volume}'s hibernation image (--discard-hibernation): \
                 hiberfil.sys emptied, so the loader starts Windows afresh instead of \
                 resuming the old machine's session"
            ),
            Change::Put {
                volume,
                path,
                bytes: Vec::new(),
            },
        );
    }
    Ok(())
}
