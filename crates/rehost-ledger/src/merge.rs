//! Combining ledgers: the shards of one fleet (`--shard K/N`, each with its own ledger)
//! into one, as `rehost ledger merge OUT IN...` does.
//!
//! Every run of each input is copied with its outcomes and their verdicts, findings and
//! changes, under new row ids. Merging is idempotent: a run already in the output (the same
//! command, arguments, version, process id and times) is not copied again, nor is an
//! outcome already there (the same run, row, image, options, status, identity, times and
//! report), so merging the same shard twice, or a merged ledger into itself again, adds
//! nothing.
//!
//! A conflict is the same image identity (canonical path, size, modification time, hash)
//! with a final outcome (status `ok`) for the same command and options in two places whose
//! results differ: other verdicts, findings or changes. The merge then writes nothing and
//! returns every conflict found ([`Merged::conflicts`]): two rehost versions that judged
//! the same bytes differently, say, are for a person to sort out, not for the merge to
//! pick one.

use crate::schema;
use crate::Ledger;
use rehost_core::error::{Ctx, Layer, Result};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};

/// What the merge did with one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    /// The input ledger.
    pub path: PathBuf,
    /// Runs copied.
    pub runs_added: usize,
    /// Outcomes copied.
    pub outcomes_added: usize,
    /// Outcomes the output held already (left as they were).
    pub outcomes_present: usize,
}

/// One image with two different final outcomes for the same command and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The image's canonical path.
    pub path: String,
    /// The command.
    pub command: String,
    /// Its canonical options.
    pub options: String,
    /// The run of the outcome the output holds already (its command line).
    pub first: String,
    /// What it says: the verdicts, one per install and target.
    pub first_says: String,
    /// The ledger of the other outcome.
    pub second: String,
    /// What the other says.
    pub second_says: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} {}): {} says {}; {} says {}",
            self.path,
            self.command,
            self.options,
            self.first,
            self.first_says,
            self.second,
            self.second_says
        )
    }
}

/// What a merge came to.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// Per input, in the order given.
    pub inputs: Vec<Input>,
    /// Conflicts: when there is any, nothing was written.
    pub conflicts: Vec<Conflict>,
}

/// The outcome columns copied, in this order (all but `id` and `run`).
const COLUMNS: [&str; 26] = [
    "row",
    "source",
    "image",
    "command",
    "options",
    "options_key",
    "status",
    "path",
    "size",
    "mtime_ns",
    "dev",
    "inode",
    "hash",
    "hash_scheme",
    "after_size",
    "after_mtime_ns",
    "after_hash",
    "committed",
    "journal",
    "bytes_read",
    "bytes_written",
    "elapsed_ms",
    "version",
    "errors",
    "report",
    "finished_ms",
];

/// The tables that hang off an outcome, with their columns after `outcome`.
const DETAILS: [(&str, &str); 3] = [
    ("verdicts", "install, target, verdict, stop, before"),
    (
        "findings",
        "install, target, rule, \"case\", severity, fixable, message",
    ),
    ("changes", "install, rule, kind, file, why"),
];

/// Merges every ledger of `inputs` into `out` (created when missing), in one transaction.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<Merged> {
    let ctx = Ctx::new(out.display().to_string(), Layer::Fleet);
    let out_canonical = std::fs::canonicalize(out).ok();
    for i in inputs {
        let c = std::fs::canonicalize(i).map_err(|e| {
            Ctx::new(i.display().to_string(), Layer::Fleet).invalid(format!("ledger: {e}"))
        })?;
        if Some(&c) == out_canonical.as_ref() {
            return Err(ctx.invalid("ledger merge: the output is among the inputs"));
        }
    }
    let mut ledger = Ledger::open(out)?;
    let sql = |e: rusqlite::Error| ctx.invalid(format!("ledger merge: {e}"));
    let tx = ledger.conn.transaction().map_err(sql)?;
    let mut merged = Merged::default();
    for path in inputs {
        let input = open_input(path)?;
        let name = path.display().to_string();
        let inctx = Ctx::new(name.clone(), Layer::Fleet);
        let counts = copy(&input, &tx, &name, &mut merged.conflicts)
            .map_err(|e| inctx.invalid(format!("ledger merge: {e}")))?;
        merged.inputs.push(Input {
            path: path.clone(),
            ..counts
        });
    }
    if merged.conflicts.is_empty() {
        tx.commit().map_err(sql)?;
    }
    Ok(merged)
}

/// Opens an input ledger read-only, refusing what is not a ledger of this schema.
fn open_input(path: &Path) -> Result<Connection> {
    let ctx = Ctx::new(path.display().to_string(), Layer::Fleet);
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| ctx.invalid(format!("ledger: {e}")))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| ctx.invalid(format!("ledger: {e}")))?;
    if version != schema::VERSION {
        return Err(ctx.invalid(format!(
            "ledger: schema version {version}, not a ledger this rehost merges (version {})",
            schema::VERSION
        )));
    }
    Ok(conn)
}

/// Copies the runs and outcomes of `input` into `tx`, noting conflicts.
fn copy(
    input: &Connection,
    tx: &Transaction,
    name: &str,
    conflicts: &mut Vec<Conflict>,
) -> rusqlite::Result<Input> {
    let mut counts = Input::default();
    let mut runs = input.prepare(
        "SELECT id, command, argv, version, pid, started_ms, finished_ms FROM runs ORDER BY id",
    )?;
    let runs: Vec<(i64, [Value; 6])> = runs
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                [
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ],
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let list = COLUMNS.join(", ");
    let mut outcomes = input.prepare(&format!(
        "SELECT id, {list} FROM outcomes WHERE run = ?1 ORDER BY id"
    ))?;
    for (old_run, run) in runs {
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM runs WHERE command IS ?1 AND argv IS ?2 AND version IS ?3 \
                 AND pid IS ?4 AND started_ms IS ?5 AND finished_ms IS ?6",
                params_from_iter(run.iter()),
                |r| r.get(0),
            )
            .optional()?;
        let new_run = match existing {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO runs (command, argv, version, pid, started_ms, finished_ms) \
                     VALUES (?1,?2,?3,?4,?5,?6)",
                    params_from_iter(run.iter()),
                )?;
                counts.runs_added += 1;
                tx.last_insert_rowid()
            }
        };
        let rows: Vec<(i64, Vec<Value>)> = outcomes
            .query_map([old_run], |r| {
                let values = (1..=COLUMNS.len())
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((r.get(0)?, values))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (old_id, values) in rows {
            if present(tx, new_run, &values)? {
                counts.outcomes_present += 1;
                continue;
            }
            if let Some(c) = conflict(input, tx, old_id, &values, name)? {
                conflicts.push(c);
            }
            let marks: Vec<String> = (2..=COLUMNS.len() + 1).map(|i| format!("?{i}")).collect();
            tx.execute(
                &format!(
                    "INSERT INTO outcomes (run, {list}) VALUES (?1, {})",
                    marks.join(", ")
                ),
                params_from_iter(std::iter::once(&Value::Integer(new_run)).chain(&values)),
            )?;
            let new_id = tx.last_insert_rowid();
            for (table, cols) in DETAILS {
                let mut st =
                    input.prepare(&format!("SELECT {cols} FROM {table} WHERE outcome = ?1"))?;
                let n = cols.split(',').count();
                let details: Vec<Vec<Value>> = st
                    .query_map([old_id], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
                    .collect::<rusqlite::Result<_>>()?;
                let marks: Vec<String> = (2..=n + 1).map(|i| format!("?{i}")).collect();
                let insert = format!(
                    "INSERT INTO {table} (outcome, {cols}) VALUES (?1, {})",
                    marks.join(", ")
                );
                for d in details {
                    tx.execute(
                        &insert,
                        params_from_iter(std::iter::once(&Value::Integer(new_id)).chain(&d)),
                    )?;
                }
            }
            counts.outcomes_added += 1;
        }
    }
    Ok(counts)
}

fn col(values: &[Value], name: &str) -> Value {
    COLUMNS
        .iter()
        .position(|c| *c == name)
        .and_then(|i| values.get(i).cloned())
        .unwrap_or(Value::Null)
}

/// Whether `run` of the output holds this outcome already, every column alike.
fn present(tx: &Transaction, run: i64, values: &[Value]) -> rusqlite::Result<bool> {
    let cond: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} IS ?{}", i + 2))
        .collect();
    let sql = format!(
        "SELECT count(*) FROM outcomes WHERE run = ?1 AND {}",
        cond.join(" AND ")
    );
    let n: i64 = tx.query_row(
        &sql,
        params_from_iter(std::iter::once(&Value::Integer(run)).chain(values)),
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// What an outcome found, in one comparable text: its verdicts, findings and changes,
/// each sorted (messages and reasons left out: the same finding may be worded anew).
fn result_of(conn: &Connection, id: i64) -> rusqlite::Result<(String, String)> {
    let rows = |sql: &str| -> rusqlite::Result<Vec<String>> {
        let mut st = conn.prepare(sql)?;
        let mut v: Vec<String> = st
            .query_map([id], |r| {
                let n = r.as_ref().column_count();
                let parts = (0..n)
                    .map(|i| {
                        Ok(match r.get::<_, Value>(i)? {
                            Value::Null => "-".to_string(),
                            Value::Integer(n) => n.to_string(),
                            Value::Real(f) => f.to_string(),
                            Value::Text(t) => t,
                            Value::Blob(_) => "blob".to_string(),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(parts.join(" "))
            })?
            .collect::<rusqlite::Result<_>>()?;
        v.sort();
        Ok(v)
    };
    let verdicts = rows(
        "SELECT install, target, coalesce(before || ' -> ', '') || verdict, stop \
         FROM verdicts WHERE outcome = ?1",
    )?;
    let findings = rows(
        "SELECT install, target, rule, \"case\", severity, fixable FROM findings WHERE outcome = ?1",
    )?;
    let changes = rows("SELECT install, rule, kind, file FROM changes WHERE outcome = ?1")?;
    let says = if verdicts.is_empty() {
        "no verdict".to_string()
    } else {
        verdicts.join(", ")
    };
    Ok((
        format!(
            "{}\n{}\n{}",
            verdicts.join("\n"),
            findings.join("\n"),
            changes.join("\n")
        ),
        says,
    ))
}

/// A final outcome already in the output for the same identity and options whose result
/// differs from this one's.
fn conflict(
    input: &Connection,
    tx: &Transaction,
    old_id: i64,
    values: &[Value],
    name: &str,
) -> rusqlite::Result<Option<Conflict>> {
    if col(values, "status") != Value::Text("ok".into()) || col(values, "path") == Value::Null {
        return Ok(None);
    }
    let mut st = tx.prepare(
        "SELECT o.id, r.argv FROM outcomes o JOIN runs r ON r.id = o.run \
         WHERE o.options_key IS ?1 AND o.path IS ?2 AND o.size IS ?3 AND o.mtime_ns IS ?4 \
         AND o.hash IS ?5 AND o.status = 'ok'",
    )?;
    let same: Vec<(i64, String)> = st
        .query_map(
            params![
                col(values, "options_key"),
                col(values, "path"),
                col(values, "size"),
                col(values, "mtime_ns"),
                col(values, "hash")
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    if same.is_empty() {
        return Ok(None);
    }
    let (theirs, says) = result_of(input, old_id)?;
    for (id, argv) in same {
        let (ours, first_says) = result_of(tx, id)?;
        if ours != theirs {
            let text = |v: Value| match v {
                Value::Text(t) => t,
                _ => String::new(),
            };
            return Ok(Some(Conflict {
                path: text(col(values, "path")),
                command: text(col(values, "command")),
                options: text(col(values, "options")),
                first: format!("the run {argv}"),
                first_says,
                second: name.to_string(),
                second_says: says,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
