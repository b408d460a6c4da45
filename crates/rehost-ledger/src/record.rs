//! What the ledger records of one image, independent of the command that produced it.

use crate::identity::Identity;
use sha2::{Digest, Sha256};

/// How an image's work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The work returned a report: a final outcome, which `--resume` skips.
    Ok,
    /// The work failed (unreadable, refused): tried again by `--resume`.
    Failed,
    /// Another rehost process held the image's lock: tried again by `--resume`.
    Busy,
    /// The input row itself is wrong (missing file, duplicate, unknown target): not run.
    Input,
}

impl Status {
    /// The name stored.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Busy => "busy",
            Status::Input => "input",
        }
    }
}

/// A command and its options in canonical form: equal options give equal keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// inspect, check, fix.
    pub command: String,
    /// Canonical JSON (object keys sorted, as `serde_json` keeps them).
    pub canonical: String,
    /// Hex SHA-256 of the command and the canonical JSON.
    pub key: String,
}

impl Options {
    /// The canonical options of `command`. The caller puts in `options` only what decides
    /// the outcome (not the output format or the number of workers), with lists whose
    /// order does not matter sorted.
    pub fn new(command: &str, options: &serde_json::Value) -> Options {
        let canonical = options.to_string();
        let digest = Sha256::digest(format!("{command}\n{canonical}").as_bytes());
        Options {
            command: command.to_string(),
            canonical,
            key: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// One install's verdict on one target.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// The install: volume and system root.
    pub install: String,
    /// The target.
    pub target: String,
    /// The verdict (after the fix, for fix).
    pub verdict: String,
    /// Its STOP code.
    pub stop: Option<String>,
    /// For fix: the verdict before.
    pub before: Option<String>,
}

/// One finding.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Finding {
    /// The install.
    pub install: String,
    /// The target.
    pub target: String,
    /// The rule.
    pub rule: String,
    /// The rule's case.
    pub case: String,
    /// error, warning, info.
    pub severity: String,
    /// Whether fix repairs it.
    pub fixable: bool,
    /// What it says.
    pub message: String,
}

/// One change a fix made (or would make, in a dry run).
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The install.
    pub install: String,
    /// The rule whose fix it is.
    pub rule: String,
    /// registry, file, ...
    pub kind: String,
    /// The file written, if any.
    pub file: Option<String>,
    /// Why.
    pub why: String,
}

/// Everything the ledger keeps of one image in one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The image's position in the run's input.
    pub row: usize,
    /// Where the input named it.
    pub source: String,
    /// The path as given.
    pub image: String,
    /// The command and options its work ran with.
    pub options: Options,
    /// How it ended.
    pub status: Status,
    /// Its identity before the work (`None`: it could not be read).
    pub before: Option<Identity>,
    /// Its identity after a write in place.
    pub after: Option<Identity>,
    /// Whether the work wrote the image (or a new one).
    pub committed: bool,
    /// The undo journal of a write in place.
    pub journal: Option<String>,
    /// Bytes read from the image.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Time taken.
    pub elapsed_ms: f64,
    /// What went wrong.
    pub errors: Vec<String>,
    /// Verdicts per install and target.
    pub verdicts: Vec<Verdict>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Changes.
    pub changes: Vec<Change>,
    /// The image's JSON line.
    pub report: String,
}
