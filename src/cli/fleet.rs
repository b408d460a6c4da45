//! What the fleet commands (inspect, check, fix) share on the command line: the output
//! modes and how a fleet's results are written in each. The running itself is the
//! library's (`rehost_fleet`).

use anyhow::Result;
use rehost_fleet::Done;
use serde::Serialize;
use std::io::Write;

/// Output mode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Jsonl,
}

impl Output {
    /// The mode `--json` and `--jsonl` ask for.
    pub fn from_flags(json: bool, jsonl: bool) -> Output {
        match (json, jsonl) {
            (true, _) => Output::Json,
            (_, true) => Output::Jsonl,
            _ => Output::Text,
        }
    }
}

/// A finished image as one JSON value: its report, or its failure record (the value the
/// ledger keeps too).
fn value<R: Serialize>(d: &Done<R>) -> serde_json::Value {
    d.json()
}

/// Writes a finished image as one JSON line on stdout, as it finishes.
pub fn line<R: Serialize>(d: &Done<R>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", value(d));
    let _ = out.flush();
}

/// Writes every image's result as one JSON document: the report itself for one image,
/// an array for several.
pub fn json<R: Serialize>(done: &[Done<R>]) -> Result<()> {
    let mut docs: Vec<serde_json::Value> = done.iter().map(value).collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if docs.len() == 1 {
        serde_json::to_writer_pretty(&mut out, &docs.remove(0))?;
    } else {
        serde_json::to_writer_pretty(&mut out, &docs)?;
    }
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// The sink of a fleet run: each image's result as a JSON line as it finishes, when JSON
/// lines are the output.
pub fn stream<R: Serialize>(output: Output) -> impl Fn(&Done<R>) + Sync {
    move |d| {
        if output == Output::Jsonl {
            line(d)
        }
    }
}

/// Writes a fleet's results once it is done: one JSON document, or text through `text`
/// with a failed image said in one line (JSON lines were written as each image finished).
pub fn finish<R: Serialize>(
    output: Output,
    done: &[Done<R>],
    text: impl Fn(&mut dyn Write, &R) -> Result<()>,
) -> Result<()> {
    match output {
        Output::Jsonl => {}
        Output::Json => json(done)?,
        Output::Text => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for d in done {
                match &d.result {
                    Ok(rep) => text(&mut out, rep)?,
                    Err(e) => writeln!(out, "{}: cannot be read: {e:#}", d.image.display())?,
                }
            }
            out.flush()?;
        }
    }
    Ok(())
}
