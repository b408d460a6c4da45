//! `class-filter`: the UpperFilters and LowerFilters of the storage device classes (disk
//! drives, volumes, SCSI adapters, IDE controllers, system devices). Windows loads each
//! one into the stack; one whose service key or driver file is missing, or whose service
//! is disabled, stops the stack: 0x7B.

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use crate::error::Result;
use crate::windows::knowledge::Knowledge;

const ID: &str = "class-filter";

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let k = Knowledge::builtin();
    for c in &s.install.class_filters {
        if !s.sets.contains(&c.control_set) {
            continue;
        }
        let cs = c.control_set;
        let guid = k
            .classes
            .iter()
            .find(|x| x.name == c.class)
            .map(|x| x.guid.clone())
            .unwrap_or_default();
        let class_key = format!("{}\\Control\\Class\\{guid}", s.cs_key(cs));
        for (list, names) in [("UpperFilters", &c.upper), ("LowerFilters", &c.lower)] {
            for name in names {
                let listed = Evidence::system(class_key.clone(), list, names.join(", "));
                let svc_key = format!("{}\\Services\\{name}", s.cs_key(cs));
                let f = match s.service(cs, name)? {
                    None => Finding::new(
                        ID,
                        "missing-service",
                        format!(
                            "the {} class lists {name} in its {list}, but there is no service {name}",
                            c.class
                        ),
                    )
                    .with(listed)
                    .with(Evidence::system_key(svc_key, "missing")),
                    Some(r) if r.start == Some(4) => Finding::new(
                        ID,
                        "disabled",
                        format!(
                            "the {} class lists {name} in its {list}, and {name} is disabled",
                            c.class
                        ),
                    )
                    .with(listed)
                    .with(Evidence::system(svc_key, "Start", "4")),
                    Some(r) if !r.file_present => Finding::new(
                        ID,
                        "missing-file",
                        format!(
                            "the {} class lists {name} in its {list}, and {name}'s driver file is missing",
                            c.class
                        ),
                    )
                    .with(listed)
                    .with(Evidence::system(
                        svc_key,
                        "ImagePath",
                        r.image_path.clone().unwrap_or_else(|| "(default)".into()),
                    )),
                    Some(_) => continue,
                };
                out.findings.push(f.about(Some(cs), Some(name)));
            }
        }
    }
    Ok(())
}
