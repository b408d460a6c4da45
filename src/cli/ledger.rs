//! `rehost ledger merge OUT IN...`: the ledgers of a fleet's shards combined into one.

use anyhow::Result;
use std::path::{Path, PathBuf};

// What `rehost ledger` does.
// (Not a doc comment: clap would show one as the help of each command that
// flattens this in, in place of the command's own.)
#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum LedgerCommand {
    /// Combine ledgers (the shards of one fleet, each run with --shard K/N and its own
    /// --ledger) into OUT, created when missing. Idempotent: a run or outcome OUT holds
    /// already is not added again. Refuses, writing nothing, when the same image (path,
    /// size, time and hash) has final outcomes for the same command and options that
    /// differ in verdicts, findings or changes, and lists them. Exit code 0 when merged, 1
    /// on a conflict or an input that is not a ledger, 2 on a usage error.
    Merge {
        /// The ledger to merge into.
        out: PathBuf,
        /// The ledgers to merge.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

pub fn run(command: &LedgerCommand) -> Result<i32> {
    match command {
        LedgerCommand::Merge { out, inputs } => merge(out, inputs),
    }
}

fn merge(out: &Path, inputs: &[PathBuf]) -> Result<i32> {
    let merged = rehost_ledger::merge::merge(out, inputs)?;
    if !merged.conflicts.is_empty() {
        for c in &merged.conflicts {
            eprintln!("rehost ledger merge: conflict: {c}");
        }
        eprintln!(
            "rehost ledger merge: {} conflict{}: nothing written to {}",
            merged.conflicts.len(),
            if merged.conflicts.len() == 1 { "" } else { "s" },
            out.display()
        );
        return Ok(1);
    }
    for i in &merged.inputs {
        println!(
            "{}: {} run{} and {} outcome{} added, {} outcome{} there already",
            i.path.display(),
            i.runs_added,
            if i.runs_added == 1 { "" } else { "s" },
            i.outcomes_added,
            if i.outcomes_added == 1 { "" } else { "s" },
            i.outcomes_present,
            if i.outcomes_present == 1 { "" } else { "s" },
        );
    }
    Ok(0)
}
