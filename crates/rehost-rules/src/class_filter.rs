//! `class-filter`: the UpperFilters and LowerFilters of the storage device classes (disk
//! drives, volumes, SCSI adapters, IDE controllers, system devices). Windows loads each
//! one into the stack; one whose service key or driver file is missing, or whose service
//! is disabled, stops the stack: 0x7B. The fix takes such entries out of the class's list.

use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;
use rehost_windows::knowledge::Knowledge;

const ID: &str = "class-filter";

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let k = Knowledge::builtin();
    for c in &s.install.class_filters {
        if !s.sets.contains(&c.control_set) {
            continue;
        }
        let cs = c.control_set;
        let Some(guid) = k.class_guid(&c.class) else {
            continue;
        };
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

/// The operations that take `drop` out of the `list` (UpperFilters or LowerFilters) of
/// the class key `class_key` (`ControlSet001\Control\Class\{guid}`), whose entries
/// were `listed` when inspected, starting from the list as the changes planned so far
/// leave it (two rules' removals from one list compose); the other entries keep their
/// order, and a list left empty is deleted. `None` when nothing is to remove.
pub fn without(
    plan: &Plan,
    class_key: &str,
    list: &str,
    listed: &[String],
    drop: &[&str],
) -> Option<Vec<Op>> {
    let key = reg::system(class_key);
    let current = match super::inject::planned_value(plan, &key, list) {
        Some(Some(data)) => super::inject::multi_strings(&data),
        Some(None) => Vec::new(),
        None => listed.to_vec(),
    };
    let kept: Vec<&str> = current
        .iter()
        .map(String::as_str)
        .filter(|n| !drop.iter().any(|d| d.eq_ignore_ascii_case(n)))
        .collect();
    if kept.len() == current.len() {
        return None;
    }
    let value = if kept.is_empty() {
        Op::DeleteValue(list.to_string())
    } else {
        reg::set(list, 7, reg::multi_sz(&kept))
    };
    Some(vec![Op::Key(key), value])
}

/// The entries of `list` (`UpperFilters`, `LowerFilters`) of `class` in control set `cs`,
/// as inspected.
pub fn listed<'s>(s: &'s Subject, cs: u32, class: &str, list: &str) -> &'s [String] {
    s.install
        .class_filters
        .iter()
        .find(|c| c.control_set == cs && c.class == class)
        .map(|c| {
            if list.eq_ignore_ascii_case("UpperFilters") {
                c.upper.as_slice()
            } else {
                c.lower.as_slice()
            }
        })
        .unwrap_or(&[])
}

/// The fix: each filter found missing, without its file or disabled taken out of its
/// class's list, in its control set. The service itself is left as it is.
pub fn fix(
    s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    _o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let k = Knowledge::builtin();
    // (class key, list, class name, filters to drop)
    let mut lists: Vec<(String, String, String, Vec<String>)> = Vec::new();
    for f in findings {
        let (Some(cs), Some(name)) = (f.control_set, &f.service) else {
            continue;
        };
        let Some(e) = f.evidence.first() else {
            continue;
        };
        let (Some(key), Some(list)) = (&e.key, &e.value) else {
            continue;
        };
        let guid = key.rsplit('\\').next().unwrap_or_default();
        let Some(class) = k.classes.iter().find(|c| c.guid.eq_ignore_ascii_case(guid)) else {
            continue;
        };
        debug_assert!(key.starts_with(&s.cs_key(cs)));
        match lists.iter_mut().find(|l| l.0 == *key && l.1 == *list) {
            Some(l) => l.3.push(name.clone()),
            None => lists.push((
                key.clone(),
                list.clone(),
                class.name.clone(),
                vec![name.clone()],
            )),
        }
    }
    for (key, list, class, drop) in &lists {
        let cs = s
            .sets
            .iter()
            .copied()
            .find(|cs| key.starts_with(&s.cs_key(*cs)))
            .unwrap_or_default();
        let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
        let Some(ops) = without(plan, key, list, listed(s, cs, class, list), &drop) else {
            continue;
        };
        plan.add(
            ID,
            format!(
                "{} taken out of the {class} class's {list} in {}",
                drop.join(", "),
                s.cs_key(cs)
            ),
            Change::system(ops),
        );
    }
    Ok(())
}
