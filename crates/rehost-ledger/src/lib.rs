//! rehost-ledger: what a fleet run did to each image, kept in an SQLite database.
//!
//! Every run of `inspect`, `check` or `fix` with `--ledger FILE` adds a row to `runs` and,
//! as each image finishes, a row to `outcomes` with the image's [`Identity`] (before the
//! work and, after a write in place, after it), the command and its canonical
//! [`Options`], the status, bytes, time, errors and the image's JSON line, and rows of
//! `verdicts`, `findings` and `changes` that point to it. Each outcome is one transaction:
//! a run killed at any point leaves the ledger with the outcomes of the images finished
//! before it. The database is in WAL mode (readers see each committed outcome while the
//! run goes on) and is written by one thread ([`writer`]).
//!
//! [`Ledger::finals`] lists the identities that have a final outcome ([`Status::Ok`]) for
//! a command and its options: what `--resume` skips.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod identity;
pub mod merge;
pub mod record;
pub mod report;
pub mod schema;
pub mod writer;

pub use identity::Identity;
pub use record::{Change, Finding, Options, Outcome, Status, Verdict};

use rehost_core::error::{Ctx, Error, Layer, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;
use std::path::Path;

/// An open ledger.
pub struct Ledger {
    conn: Connection,
    ctx: Ctx,
}

/// What identifies an image for `--resume`: the options' key, the path, size, time, hash.
pub type Key = (String, String, u64, i64, String);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (and its tables) when it does not exist.
    pub fn open(path: &Path) -> Result<Ledger> {
        let ctx = Ctx::new(path.display().to_string(), Layer::Fleet);
        let conn = Connection::open(path).map_err(|e| ctx.invalid(format!("ledger: {e}")))?;
        let ledger = Ledger { conn, ctx };
        ledger.setup()?;
        Ok(ledger)
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        self.ctx.invalid(format!("ledger: {e}"))
    }

    fn setup(&self) -> Result<()> {
        let c = &self.conn;
        // A run waits for another run's write to the same ledger rather than failing.
        c.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| self.err(e))?;
        let mode: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(self.ctx.invalid(format!(
                "ledger: cannot use write-ahead logging (journal mode {mode})"
            )));
        }
        // FULL: an outcome committed is on disk, like the image's own commit before it.
        c.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| self.err(e))?;
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        match version {
            0 => {
                let tables: i64 = c
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                    .map_err(|e| self.err(e))?;
                if tables > 0 {
                    return Err(self
                        .ctx
                        .invalid("ledger: the file is an SQLite database of something else"));
                }
                let sql = format!(
                    "BEGIN; {} PRAGMA user_version={}; COMMIT;",
                    schema::CREATE,
                    schema::VERSION
                );
                c.execute_batch(&sql).map_err(|e| self.err(e))
            }
            schema::VERSION => Ok(()),
            v => Err(self.ctx.invalid(format!(
                "ledger: schema version {v}, written by a newer rehost (this one knows {})",
                schema::VERSION
            ))),
        }
    }

    /// Starts a run: its id for [`Ledger::record`].
    pub fn begin_run(&self, command: &str, argv: &[String], version: &str) -> Result<i64> {
        let argv = serde_json::to_string(argv).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO runs (command, argv, version, pid, started_ms) VALUES (?1,?2,?3,?4,?5)",
                params![command, argv, version, std::process::id(), now_ms()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks a run finished.
    pub fn end_run(&self, run: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET finished_ms = ?1 WHERE id = ?2",
                params![now_ms(), run],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The identities that have a final outcome for `command`, with the key of their
    /// options, before or after their work (an image fixed in place is done in the state
    /// the fix left it in).
    pub fn finals(&self, command: &str) -> Result<HashSet<Key>> {
        let mut out = HashSet::new();
        let sql = "SELECT path, size, mtime_ns, hash, after_size, after_mtime_ns, after_hash, \
                   options_key FROM outcomes \
                   WHERE command = ?1 AND status = 'ok' AND path IS NOT NULL";
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        type Row = (
            (String, i64, i64, String),
            (Option<i64>, Option<i64>, Option<String>),
            String,
        );
        let rows = st
            .query_map([command], |r| {
                Ok::<Row, _>((
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                    (r.get(4)?, r.get(5)?, r.get(6)?),
                    r.get(7)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let ((path, size, mtime, hash), after, key) = row.map_err(|e| self.err(e))?;
            if let (Some(s), Some(m), Some(h)) = after {
                out.insert((key.clone(), path.clone(), s as u64, m, h));
            }
            out.insert((key, path, size as u64, mtime, hash));
        }
        Ok(out)
    }

    /// Records one image's outcome in `run`, in one transaction.
    pub fn record(&mut self, run: i64, o: &Outcome) -> Result<i64> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| self.ctx.invalid(format!("ledger: {e}")))?;
        let id = insert(&tx, run, o).map_err(|e| self.ctx.invalid(format!("ledger: {e}")))?;
        tx.commit()
            .map_err(|e| self.ctx.invalid(format!("ledger: {e}")))?;
        Ok(id)
    }

    /// The schema version of this ledger.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.err(e))
    }
}

fn insert(tx: &rusqlite::Transaction, run: i64, o: &Outcome) -> rusqlite::Result<i64> {
    let b = o.before.as_ref();
    let a = o.after.as_ref();
    tx.execute(
        "INSERT INTO outcomes (run, row, source, image, command, options, options_key, status,
            path, size, mtime_ns, dev, inode, hash, hash_scheme,
            after_size, after_mtime_ns, after_hash, committed, journal,
            bytes_read, bytes_written, elapsed_ms, version, errors, report, finished_ms)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,
            ?22,?23,?24,?25,?26,?27)",
        params![
            run,
            o.row as i64,
            o.source,
            o.image,
            o.options.command,
            o.options.canonical,
            o.options.key,
            o.status.name(),
            b.map(|i| i.path.clone()),
            b.map(|i| i.size as i64),
            b.map(|i| i.mtime_ns),
            b.map(|i| i.dev as i64),
            b.map(|i| i.inode as i64),
            b.map(|i| i.hash.clone()),
            b.map(|_| identity::SCHEME),
            a.map(|i| i.size as i64),
            a.map(|i| i.mtime_ns),
            a.map(|i| i.hash.clone()),
            o.committed,
            o.journal,
            o.bytes_read as i64,
            o.bytes_written as i64,
            o.elapsed_ms,
            env!("CARGO_PKG_VERSION"),
            serde_json::to_string(&o.errors).unwrap_or_default(),
            o.report,
            now_ms(),
        ],
    )?;
    let id = tx.last_insert_rowid();
    for v in &o.verdicts {
        tx.execute(
            "INSERT INTO verdicts VALUES (?1,?2,?3,?4,?5,?6)",
            params![id, v.install, v.target, v.verdict, v.stop, v.before],
        )?;
    }
    for f in &o.findings {
        tx.execute(
            "INSERT INTO findings VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![id, f.install, f.target, f.rule, f.case, f.severity, f.fixable, f.message],
        )?;
    }
    for c in &o.changes {
        tx.execute(
            "INSERT INTO changes VALUES (?1,?2,?3,?4,?5,?6)",
            params![id, c.install, c.rule, c.kind, c.file, c.why],
        )?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests;
