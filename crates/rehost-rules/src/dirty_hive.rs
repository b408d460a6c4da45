//! `dirty-hive`: a hive whose primary file is behind its transaction logs. Windows replays
//! the logs at boot; rehost replays them in memory before it judges anything, so the
//! verdict is on what Windows would see. When they cannot be replayed, it says so.

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;

const ID: &str = "dirty-hive";

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    for h in s.install.hives.iter().filter(|h| h.dirty) {
        let evidence = Evidence {
            hive: Some(h.name.clone()),
            file: Some(h.path.clone()),
            volume: Some(s.install.volume),
            data: Some(if h.logs.is_empty() {
                "no logs".into()
            } else {
                format!("logs: {}", h.logs.join(", "))
            }),
            ..Default::default()
        };
        let f = match (&h.replayed, &h.dirty_reason) {
            (Some(what), _) => Finding::new(
                ID,
                "replayed",
                format!(
                    "{} is dirty; {what}: the check read the replayed hive",
                    h.name
                ),
            ),
            (None, why) => Finding::new(
                ID,
                "unreplayed",
                format!(
                    "{} is dirty and was read as its primary file stands: {}",
                    h.name,
                    why.as_deref().unwrap_or("its logs could not be replayed")
                ),
            ),
        };
        out.findings.push(f.with(evidence));
    }
    Ok(())
}
