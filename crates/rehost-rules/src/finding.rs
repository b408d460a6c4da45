//! What a rule finds: a case of one rule (from `profiles/rules.toml`: its severity, the STOP
//! code or symptom it predicts, whether rehost can fix it), a message, and the evidence a
//! person, or the rule's fix, needs: the control set, the service, the keys and files.

use serde::{Deserialize, Serialize, Serializer};
use std::sync::{Arc, OnceLock};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the install boots.
    Info,
    /// The install boots, but something is wrong or will be (fewer processors, the Last
    /// Known Good set broken, a disk left offline).
    Warning,
    /// The install does not boot on the target.
    Error,
}

impl Severity {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One place that shows a finding: a registry value, a key, a file, a byte offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The hive ("SYSTEM", "SOFTWARE", "BCD"), when the evidence is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hive: Option<String>,
    /// The key, from the hive's root (`ControlSet001\Services\msahci`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value name ("" is the default value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What the value, file or field holds, in words ("3", "missing", "acpiapic_up").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// A file, as a path on `volume`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The volume the file or field is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<u32>,
    /// A byte offset on the disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl Evidence {
    /// A value of the SYSTEM hive.
    pub fn system(key: impl Into<String>, value: &str, data: impl Into<String>) -> Evidence {
        Evidence {
            hive: Some("SYSTEM".into()),
            key: Some(key.into()),
            value: Some(value.into()),
            data: Some(data.into()),
            ..Default::default()
        }
    }

    /// A key of the SYSTEM hive, present or not (`data` says which).
    pub fn system_key(key: impl Into<String>, data: impl Into<String>) -> Evidence {
        Evidence {
            hive: Some("SYSTEM".into()),
            key: Some(key.into()),
            data: Some(data.into()),
            ..Default::default()
        }
    }

    /// A file on a volume.
    pub fn file(volume: u32, path: impl Into<String>, data: impl Into<String>) -> Evidence {
        Evidence {
            file: Some(path.into()),
            volume: Some(volume),
            data: Some(data.into()),
            ..Default::default()
        }
    }

    /// A fact of the image or install with no better place ("partitioning: gpt").
    pub fn fact(data: impl Into<String>) -> Evidence {
        Evidence {
            data: Some(data.into()),
            ..Default::default()
        }
    }
}

/// A finding of one rule for one install on one target.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The rule's id ("storage-driver").
    pub rule: &'static str,
    /// Which case of the rule ("not-boot-start"), as `profiles/rules.toml` names it.
    pub case: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The STOP code (`0x7B`) or symptom it predicts, if any.
    pub stop: Option<String>,
    /// What is wrong, in words a person understands.
    pub message: String,
    /// Where it shows.
    pub evidence: Vec<Evidence>,
    /// `rehost fix`, with the options the check was given, repairs it: the check plans the
    /// fix of each finding its case calls fixable, and keeps the mark only when the plan
    /// repairs it and can be written (otherwise `cannot_fix` says why).
    pub fixable: bool,
    /// The control set it was found in, when it is about one.
    pub control_set: Option<u32>,
    /// The service it is about, when it is about one.
    pub service: Option<String>,
    /// For a case rehost can fix in general: why the fix, with the options given, does
    /// not repair this one, and what would (an option, a driver folder), when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot_fix: Option<String>,
}

/// A finding shared by the targets that got it; it reads and serialises as the finding.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<Finding>);

impl std::ops::Deref for Shared {
    type Target = Finding;
    fn deref(&self) -> &Finding {
        &self.0
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// One case of a rule in `profiles/rules.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// The rule's id.
    pub rule: String,
    /// The case's id.
    pub case: String,
    /// Its severity.
    pub severity: Severity,
    /// The STOP code or symptom it predicts.
    #[serde(default)]
    pub stop: Option<String>,
    /// Whether rehost's fix can repair it, in general: whether it repairs a finding of
    /// the case on one image is settled by planning it (`cannot_fix` says why not).
    pub fixable: bool,
    /// What the case means, in one line.
    pub summary: String,
}

#[derive(Deserialize)]
struct CaseFile {
    case: Vec<Case>,
}

struct Table {
    cases: Vec<Case>,
    /// Each rule with the indexes of its cases.
    by_rule: Vec<(String, Vec<usize>)>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let cases = toml::from_str::<CaseFile>(include_str!("../../../profiles/rules.toml"))
            .map(|f| f.case)
            .expect("profiles/rules.toml parses (a unit test checks it)");
        let mut by_rule: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, c) in cases.iter().enumerate() {
            match by_rule.iter_mut().find(|(r, _)| *r == c.rule) {
                Some((_, v)) => v.push(i),
                None => by_rule.push((c.rule.clone(), vec![i])),
            }
        }
        Table { cases, by_rule }
    })
}

/// The cases of every rule, built into rehost.
pub fn cases() -> &'static [Case] {
    &table().cases
}

/// The case `case` of rule `rule`.
pub fn case(rule: &str, case: &str) -> Option<&'static Case> {
    let t = table();
    let (_, of_rule) = t.by_rule.iter().find(|(r, _)| r == rule)?;
    of_rule
        .iter()
        .map(|i| &t.cases[*i])
        .find(|c| c.case == case)
}

impl Finding {
    /// A finding of `rule`'s case `case`, with its severity, STOP and fixability from the
    /// table. A case missing from the table is a programming error: it reads as an error
    /// finding that says so, never a panic.
    pub fn new(rule: &'static str, case_id: &'static str, message: impl Into<String>) -> Finding {
        let (severity, stop, fixable) = match case(rule, case_id) {
            Some(c) => (c.severity, c.stop.clone(), c.fixable),
            None => (
                Severity::Error,
                Some(format!("rules.toml has no case {rule}/{case_id}")),
                false,
            ),
        };
        Finding {
            rule,
            case: case_id,
            severity,
            stop,
            message: message.into(),
            evidence: Vec::new(),
            fixable,
            control_set: None,
            service: None,
            cannot_fix: None,
        }
    }

    /// Adds evidence.
    pub fn with(mut self, e: Evidence) -> Finding {
        self.evidence.push(e);
        self
    }

    /// Says which control set and service it is about.
    pub fn about(mut self, control_set: Option<u32>, service: Option<&str>) -> Finding {
        self.control_set = control_set;
        self.service = service.map(str::to_string);
        self
    }
}
