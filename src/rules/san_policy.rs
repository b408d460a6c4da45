//! `san-policy` (Vista and later): `Services\partmgr\Parameters\SanPolicy` 3 or 4 keeps
//! disks Windows has not seen before offline. After a move every disk is new: the data
//! disks stay offline (the boot disk is always brought online).

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use crate::error::Result;

const ID: &str = "san-policy";

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    if s.version.is_some_and(|v| v < Version::VISTA) {
        return Ok(());
    }
    for &cs in &s.sets {
        let key = format!("{}\\Services\\partmgr\\Parameters", s.cs_key(cs));
        let Some(policy) = s.system.number(&key, "SanPolicy")? else {
            continue;
        };
        if policy == 3 || policy == 4 {
            out.findings.push(
                Finding::new(
                    ID,
                    "offline",
                    format!(
                        "SanPolicy is {policy} ({}): disks Windows has not seen keep offline \
                         after the move",
                        if policy == 3 {
                            "offline"
                        } else {
                            "offline internal"
                        }
                    ),
                )
                .with(Evidence::system(key, "SanPolicy", policy.to_string()))
                .about(Some(cs), Some("partmgr")),
            );
        }
    }
    Ok(())
}
