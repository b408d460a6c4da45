//! The work of each fleet command on one [`Item`]: its options resolved for the item's row
//! (a manifest row's own target, driver folder, rules to skip, output), in canonical form
//! for the ledger, and what the ledger keeps of its report ([`Facts`]).

use crate::input::Item;
use rehost_core::error::Result;
use rehost_image::staged::Mode;
use rehost_ledger::{Change, Finding, Verdict};
use rehost_rules::fix::run::FixReport;
use rehost_rules::fix::FixOptions;
use rehost_rules::{CheckReport, Target};
use rehost_windows::report::ImageReport;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::Path;

/// What the ledger keeps of a report beside its JSON line.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Verdicts per install and target.
    pub verdicts: Vec<Verdict>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Changes written (or, in a dry run, planned).
    pub changes: Vec<Change>,
    /// Whether the image was written in place.
    pub in_place: bool,
    /// Whether anything was written.
    pub committed: bool,
    /// The undo journal.
    pub journal: Option<String>,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Errors in the report.
    pub errors: Vec<String>,
}

/// One fleet command's work.
pub trait Work: Sync {
    /// Its report on one image.
    type Report: Serialize + Send;
    /// What it runs for one item, resolved from the item's row.
    type Job: Send;
    /// inspect, check, fix.
    fn command(&self) -> &'static str;
    /// The job of `item`, and the options that decide its outcome as canonical JSON
    /// (lists whose order does not matter sorted); `Err`: why the row cannot run (an
    /// unknown target, say).
    fn prepare(&self, item: &Item) -> std::result::Result<(Self::Job, Value), RowError>;
    /// Does the job on `image`.
    fn run(&self, job: &Self::Job, image: &Path) -> Result<Self::Report>;
    /// What the ledger keeps of `report`.
    fn facts(&self, report: &Self::Report) -> Facts;
}

fn install(volume: Option<u32>, root: &Option<String>) -> String {
    match volume {
        Some(v) => format!("volume {v} {}", root.as_deref().unwrap_or("")),
        None => "no install".into(),
    }
    .trim_end()
    .to_string()
}

/// `inspect`: read-only, no options.
pub struct Inspect;

impl Work for Inspect {
    type Report = ImageReport;
    type Job = ();
    fn command(&self) -> &'static str {
        "inspect"
    }
    fn prepare(&self, _item: &Item) -> std::result::Result<((), Value), RowError> {
        Ok(((), json!({})))
    }
    fn run(&self, _job: &(), image: &Path) -> Result<ImageReport> {
        rehost_windows::inspect(image)
    }
    fn facts(&self, r: &ImageReport) -> Facts {
        Facts {
            bytes_read: r.bytes_read,
            errors: r.errors.clone(),
            ..Facts::default()
        }
    }
}

/// Finds a target by name among `all`.
fn target(all: &[Target], name: &str) -> std::result::Result<Target, RowError> {
    all.iter()
        .find(|t| t.name.eq_ignore_ascii_case(name.trim()))
        .cloned()
        .ok_or_else(|| RowError::UnknownTarget {
            name: name.to_string(),
            known: all.iter().map(|t| t.name.clone()).collect(),
        })
}

/// Why a row of the input cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// The row names a target no profile has.
    UnknownTarget {
        /// The name on the row.
        name: String,
        /// The targets there are.
        known: Vec<String>,
    },
    /// The row skips a rule that has no fix.
    UnknownRule(String),
    /// Neither the row nor the command names a target.
    NoTarget,
    /// Neither the row nor the command says where a fix writes.
    NoMode,
    /// The row's output exists already.
    OutputExists(std::path::PathBuf),
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowError::UnknownTarget { name, known } => write!(
                f,
                "no target profile {name:?}; the targets are: {}",
                known.join(", ")
            ),
            RowError::UnknownRule(r) => write!(f, "no rule with a fix is named {r:?}"),
            RowError::NoTarget => f.write_str("no target: give --target or a target on the row"),
            RowError::NoMode => {
                f.write_str("no write mode: give --dry-run or --in-place, or the row an output")
            }
            RowError::OutputExists(p) => write!(f, "the output {} exists already", p.display()),
        }
    }
}

impl std::error::Error for RowError {}

/// The fix options of a row: its driver folder instead of the command's, its rules to
/// skip beside the command's (each a rule with a fix).
fn row_options(base: &FixOptions, item: &Item) -> std::result::Result<FixOptions, RowError> {
    let mut o = base.clone();
    if let Some(d) = &item.row.drivers {
        o.drivers = Some(d.clone());
    }
    for s in &item.row.skip {
        if !rehost_rules::RULES
            .iter()
            .any(|r| r.fix.is_some() && r.id == s)
        {
            return Err(RowError::UnknownRule(s.clone()));
        }
        if !o.skip.contains(s) {
            o.skip.push(s.clone());
        }
    }
    Ok(o)
}

/// A target in canonical JSON: its name and a digest of its whole definition, so that a
/// profile of the same name changed (`--profiles`) is not taken for the one an outcome in
/// the ledger was judged against.
fn target_json(t: &Target) -> Value {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{t:?}").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    json!({"name": t.name, "definition": hex})
}

/// The canonical JSON of fix options.
fn options_json(o: &FixOptions) -> Value {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    let drivers = o.drivers.as_ref().map(|d| {
        std::fs::canonicalize(d)
            .unwrap_or_else(|_| d.clone())
            .display()
            .to_string()
    });
    // A named output format joins the key only when given, so that the keys of earlier
    // runs, which had none, stay as they were.
    let mut v = json!({
        "drivers": drivers,
        "replace_hal": o.replace_hal,
        "show_stop_screen": o.show_stop_screen,
        "only": sorted(&o.only),
        "skip": sorted(&o.skip),
        "accept_dirty_hive": o.accept_dirty_hive,
        "discard_hibernation": o.discard_hibernation,
        "rebuild_boot": o.rebuild_boot,
        "allow_shadow_copies": o.allow_shadow_copies,
    });
    if let Some(f) = o.output_format {
        v["output_format"] = json!(f.name());
    }
    if let Some(a) = o.vmdk_adapter {
        v["vmdk_adapter"] = json!(a.name());
    }
    v
}

fn findings_of(inst: &str, target: &str, f: &[rehost_rules::Shared]) -> Vec<Finding> {
    f.iter()
        .map(|f| Finding {
            install: inst.to_string(),
            target: target.to_string(),
            rule: f.rule.to_string(),
            case: f.case.to_string(),
            severity: f.severity.name().to_string(),
            fixable: f.fixable,
            message: f.message.clone(),
        })
        .collect()
}

/// `check`: the command's targets, or a row's own.
pub struct Check {
    /// The targets `--target` gave (may be empty when every row names its own).
    pub targets: Vec<Target>,
    /// Every target profile known, for the rows' names.
    pub all: Vec<Target>,
    /// The fix options a finding's `[fixable]` is judged with.
    pub options: FixOptions,
}

impl Work for Check {
    type Report = CheckReport;
    type Job = (Vec<Target>, FixOptions);
    fn command(&self) -> &'static str {
        "check"
    }
    fn prepare(&self, item: &Item) -> std::result::Result<(Self::Job, Value), RowError> {
        let targets = match &item.row.target {
            Some(n) => vec![target(&self.all, n)?],
            None if self.targets.is_empty() => return Err(RowError::NoTarget),
            None => self.targets.clone(),
        };
        let opts = row_options(&self.options, item)?;
        let mut named: Vec<Value> = targets.iter().map(target_json).collect();
        named.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let canonical = json!({"targets": named, "fix": options_json(&opts)});
        Ok(((targets, opts), canonical))
    }
    fn run(&self, (targets, opts): &Self::Job, image: &Path) -> Result<CheckReport> {
        rehost_rules::check_with(image, targets, opts)
    }
    fn facts(&self, r: &CheckReport) -> Facts {
        let mut f = Facts {
            bytes_read: r.bytes_read,
            errors: r.errors.clone(),
            ..Facts::default()
        };
        for i in &r.installs {
            let inst = install(i.volume, &i.system_root);
            f.verdicts.push(Verdict {
                install: inst.clone(),
                target: i.target.clone(),
                verdict: i.verdict.name().to_string(),
                stop: i.stop.clone(),
                before: None,
            });
            f.findings
                .extend(findings_of(&inst, &i.target, &i.findings));
        }
        f
    }
}

/// `fix`: one target (the command's, or a row's own), a mode (the command's, or a new
/// image at the row's output).
pub struct Fix {
    /// The target `--target` gave.
    pub target: Option<Target>,
    /// Every target profile known, for the rows' names.
    pub all: Vec<Target>,
    /// The command's mode (`None`: every row gives an output).
    pub mode: Option<Mode>,
    /// The options of the fixes.
    pub options: FixOptions,
    /// Write even when the staged image would still not boot.
    pub force: bool,
}

impl Work for Fix {
    type Report = FixReport;
    type Job = (Target, Mode, FixOptions);
    fn command(&self) -> &'static str {
        "fix"
    }
    fn prepare(&self, item: &Item) -> std::result::Result<(Self::Job, Value), RowError> {
        let t = match (&item.row.target, &self.target) {
            (Some(n), _) => target(&self.all, n)?,
            (None, Some(t)) => t.clone(),
            (None, None) => return Err(RowError::NoTarget),
        };
        let mode = match (&item.row.output, &self.mode) {
            (Some(out), _) if out.symlink_metadata().is_ok() => {
                return Err(RowError::OutputExists(out.clone()))
            }
            (Some(out), _) => Mode::Output(out.clone()),
            (None, Some(m)) => m.clone(),
            (None, None) => return Err(RowError::NoMode),
        };
        let opts = row_options(&self.options, item)?;
        let mode_json = match &mode {
            Mode::DryRun => json!("dry-run"),
            Mode::InPlace => json!("in-place"),
            Mode::Output(p) => json!({"output": p.display().to_string()}),
        };
        let canonical = json!({
            "target": target_json(&t),
            "mode": mode_json,
            "force": self.force,
            "fix": options_json(&opts),
        });
        Ok(((t, mode, opts), canonical))
    }
    fn run(&self, (t, mode, opts): &Self::Job, image: &Path) -> Result<FixReport> {
        rehost_rules::fix::run::fix(image, t, mode.clone(), opts, self.force)
    }
    fn facts(&self, r: &FixReport) -> Facts {
        let mut f = Facts {
            bytes_read: r.bytes_read,
            errors: r.errors.clone(),
            in_place: r.mode == "in-place",
            committed: r.committed,
            // A journal an earlier run left is the one that undoes this image too.
            journal: r
                .written
                .as_ref()
                .and_then(|w| w.journal.clone())
                .or_else(|| {
                    let j = format!("{}.rehost-undo", r.image);
                    (r.mode == "in-place" && Path::new(&j).exists()).then_some(j)
                }),
            bytes_written: r.written.as_ref().map_or(0, |w| w.bytes_written),
            ..Facts::default()
        };
        for i in &r.installs {
            let inst = install(i.volume, &i.system_root);
            f.verdicts.push(Verdict {
                install: inst.clone(),
                target: r.target.clone(),
                verdict: i.after.name().to_string(),
                stop: i.after_stop.clone(),
                before: Some(i.before.name().to_string()),
            });
            f.findings
                .extend(findings_of(&inst, &r.target, &i.remaining));
            f.changes.extend(i.changes.iter().map(|c| Change {
                install: inst.clone(),
                rule: c.rule.clone(),
                kind: c.kind.to_string(),
                file: c.file.clone().or_else(|| c.hive.clone()),
                why: c.why.clone(),
            }));
        }
        f
    }
}
