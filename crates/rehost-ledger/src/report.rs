//! A fleet's ledgers read back for people: each image's latest outcome of one command, and
//! what they add up to (verdicts by target, the OS mix, findings by rule, STOP codes, fix
//! outcomes, the spread of time and bytes read). `rehost report` renders it as a table,
//! CSV, JSON or a self-contained HTML page.
//!
//! ```no_run
//! let r = rehost_ledger::report::read(&[std::path::Path::new("fleet.db")], None).unwrap();
//! let failed = r.summary.status.get("failed").copied().unwrap_or(0);
//! println!("{} images, {failed} failed", r.images.len());
//! ```

use crate::record::{Finding, Verdict};
use rehost_core::error::{Ctx, Layer, Result};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One image's latest outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Image {
    /// The image's canonical path (its name as given when it could not be read).
    pub path: String,
    /// The ledger the outcome is in.
    pub ledger: String,
    /// ok, failed, busy or input.
    pub status: String,
    /// The products of its installs (`Windows Server 2019 Standard`), one per install.
    pub products: Vec<String>,
    /// Each install's verdict on each target.
    pub verdicts: Vec<Verdict>,
    /// The findings, per install and target.
    pub findings: Vec<Finding>,
    /// How many changes a fix wrote (or would write).
    pub changes: usize,
    /// A fix's write in place committed.
    pub committed: bool,
    /// Bytes read from the image's files.
    pub bytes_read: Option<u64>,
    /// Bytes written to them.
    pub bytes_written: Option<u64>,
    /// Time the image took, in milliseconds.
    pub elapsed_ms: Option<f64>,
    /// The errors met.
    pub errors: Vec<String>,
    /// When the outcome was recorded (Unix milliseconds).
    pub finished_ms: i64,
}

/// The spread of one measure over the images that have it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Spread {
    /// Images counted.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Median (the lower middle of an even count).
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

/// Counts of one rule's findings.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RuleCount {
    /// Images with at least one finding of the rule.
    pub images: usize,
    /// Findings (per install, target and control set).
    pub findings: usize,
    /// Of them, errors.
    pub errors: usize,
    /// Of them, fixable.
    pub fixable: usize,
}

/// What the images add up to.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Images by status.
    pub status: BTreeMap<String, usize>,
    /// Per target, installs by verdict.
    pub verdicts: BTreeMap<String, BTreeMap<String, usize>>,
    /// Installs by product.
    pub products: BTreeMap<String, usize>,
    /// Findings by rule.
    pub rules: BTreeMap<String, RuleCount>,
    /// Predicted STOP codes (and other failures), counted per install and target.
    pub stops: BTreeMap<String, usize>,
    /// For fix: install-and-target verdicts before → after, counted.
    pub transitions: BTreeMap<String, usize>,
    /// For fix: images whose write committed.
    pub committed: usize,
    /// Time per image, milliseconds.
    pub elapsed_ms: Spread,
    /// Bytes read per image.
    pub bytes_read: Spread,
}

/// A fleet's report: one command's latest outcome per image, over one or more ledgers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The ledgers read.
    pub ledgers: Vec<String>,
    /// The command reported on.
    pub command: String,
    /// The images, by path.
    pub images: Vec<Image>,
    /// Their sum.
    pub summary: Summary,
}

/// Reads the ledgers: for `command` (by default, that of the latest run among them) each
/// image's latest outcome, the newest winning across ledgers.
pub fn read(ledgers: &[&Path], command: Option<&str>) -> Result<Report> {
    let mut opened = Vec::new();
    for path in ledgers {
        let ctx = Ctx::new(path.display().to_string(), Layer::Fleet);
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| ctx.invalid(format!("ledger: {e}")))?;
        opened.push((path.display().to_string(), conn, ctx));
    }
    let command = match command {
        Some(c) => c.to_string(),
        None => latest_command(&opened)?,
    };
    let mut latest: BTreeMap<String, Image> = BTreeMap::new();
    for (name, conn, ctx) in &opened {
        let err = |e: rusqlite::Error| ctx.invalid(format!("ledger: {e}"));
        for image in images(conn, name, &command).map_err(err)? {
            let newer = latest
                .get(&image.path)
                .is_none_or(|old| image.finished_ms >= old.finished_ms);
            if newer {
                latest.insert(image.path.clone(), image);
            }
        }
    }
    let images: Vec<Image> = latest.into_values().collect();
    Ok(Report {
        ledgers: opened.into_iter().map(|(n, _, _)| n).collect(),
        summary: summary(&images),
        command,
        images,
    })
}

/// The command of the newest run in any of the ledgers.
fn latest_command(opened: &[(String, Connection, Ctx)]) -> Result<String> {
    let mut best: Option<(i64, String)> = None;
    for (_, conn, ctx) in opened {
        let row: Option<(i64, String)> = conn
            .query_row(
                "SELECT started_ms, command FROM runs ORDER BY started_ms DESC, id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(ctx.invalid(format!("ledger: {e}"))),
            })?;
        if let Some(r) = row {
            if best.as_ref().is_none_or(|b| r.0 > b.0) {
                best = Some(r);
            }
        }
    }
    best.map(|(_, c)| c).ok_or_else(|| {
        Ctx::new(String::new(), Layer::Fleet).invalid("the ledgers record no run".to_string())
    })
}

/// Each image's latest outcome of `command` in one ledger.
fn images(conn: &Connection, ledger: &str, command: &str) -> rusqlite::Result<Vec<Image>> {
    let mut stmt = conn.prepare(
        "SELECT o.id, coalesce(o.path, o.image), o.status, o.committed, o.bytes_read,
                o.bytes_written, o.elapsed_ms, o.errors, o.report, o.finished_ms
         FROM outcomes o
         WHERE o.command = ?1 AND o.id = (
             SELECT o2.id FROM outcomes o2
             WHERE o2.command = ?1 AND coalesce(o2.path, o2.image) = coalesce(o.path, o.image)
             ORDER BY o2.finished_ms DESC, o2.id DESC LIMIT 1)
         ORDER BY coalesce(o.path, o.image)",
    )?;
    let rows = stmt.query_map([command], |r| {
        let errors: String = r.get(7)?;
        let report: String = r.get(8)?;
        Ok((
            r.get::<_, i64>(0)?,
            Image {
                path: r.get(1)?,
                ledger: ledger.to_string(),
                status: r.get(2)?,
                products: products(&report),
                verdicts: Vec::new(),
                findings: Vec::new(),
                changes: 0,
                committed: r.get::<_, i64>(3)? != 0,
                bytes_read: r.get::<_, Option<i64>>(4)?.map(|b| b.max(0) as u64),
                bytes_written: r.get::<_, Option<i64>>(5)?.map(|b| b.max(0) as u64),
                elapsed_ms: r.get(6)?,
                errors: serde_json::from_str(&errors).unwrap_or_else(|_| vec![errors]),
                finished_ms: r.get(9)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, mut image) = row?;
        image.verdicts = conn
            .prepare_cached(
                "SELECT install, target, verdict, stop, before FROM verdicts WHERE outcome = ?1
                 ORDER BY rowid",
            )?
            .query_map([id], |r| {
                Ok(Verdict {
                    install: r.get(0)?,
                    target: r.get(1)?,
                    verdict: r.get(2)?,
                    stop: r.get(3)?,
                    before: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        image.findings = conn
            .prepare_cached(
                "SELECT install, target, rule, \"case\", severity, fixable, message FROM findings
                 WHERE outcome = ?1 ORDER BY rowid",
            )?
            .query_map([id], |r| {
                Ok(Finding {
                    install: r.get(0)?,
                    target: r.get(1)?,
                    rule: r.get(2)?,
                    case: r.get(3)?,
                    severity: r.get(4)?,
                    fixable: r.get::<_, i64>(5)? != 0,
                    message: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        image.changes = conn
            .prepare_cached("SELECT count(*) FROM changes WHERE outcome = ?1")?
            .query_row([id], |r| r.get::<_, i64>(0))? as usize;
        out.push(image);
    }
    Ok(out)
}

/// The products of the installs an image's JSON line names (one per install: the line
/// repeats an install for each target).
fn products(report: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(report) else {
        return Vec::new();
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut products = Vec::new();
    for i in v["installs"].as_array().into_iter().flatten() {
        let key = (i["volume"].to_string(), i["system_root"].to_string());
        if !seen.contains(&key) {
            seen.push(key);
            let product = i["product"].as_str().unwrap_or("(unknown product)");
            products.push(product.to_string());
        }
    }
    products
}

/// What the images add up to.
pub fn summary(images: &[Image]) -> Summary {
    let mut s = Summary::default();
    for i in images {
        *s.status.entry(i.status.clone()).or_default() += 1;
        for p in &i.products {
            *s.products.entry(p.clone()).or_default() += 1;
        }
        for v in &i.verdicts {
            *s.verdicts
                .entry(v.target.clone())
                .or_default()
                .entry(v.verdict.clone())
                .or_default() += 1;
            if let Some(stop) = &v.stop {
                *s.stops.entry(stop.clone()).or_default() += 1;
            }
            if let Some(before) = &v.before {
                *s.transitions
                    .entry(format!("{before} → {}", v.verdict))
                    .or_default() += 1;
            }
        }
        let mut rules_here: Vec<&str> = Vec::new();
        for f in &i.findings {
            let r = s.rules.entry(f.rule.clone()).or_default();
            r.findings += 1;
            r.errors += usize::from(f.severity == "error");
            r.fixable += usize::from(f.fixable);
            if !rules_here.contains(&f.rule.as_str()) {
                rules_here.push(&f.rule);
                r.images += 1;
            }
        }
        s.committed += usize::from(i.committed);
    }
    s.elapsed_ms = spread(images.iter().filter_map(|i| i.elapsed_ms).collect());
    s.bytes_read = spread(
        images
            .iter()
            .filter_map(|i| i.bytes_read.map(|b| b as f64))
            .collect(),
    );
    s
}

/// The spread of `values`.
fn spread(mut values: Vec<f64>) -> Spread {
    if values.is_empty() {
        return Spread::default();
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    let p90 = ((n * 9).div_ceil(10)).clamp(1, n) - 1;
    Spread {
        count: n,
        min: values[0],
        median: values[(n - 1) / 2],
        p90: values[p90],
        max: values[n - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_of_values() {
        let s = spread((1..=10).map(f64::from).collect());
        assert_eq!(
            (s.count, s.min, s.median, s.p90, s.max),
            (10, 1.0, 5.0, 9.0, 10.0)
        );
        let s = spread(vec![3.0]);
        assert_eq!((s.median, s.p90), (3.0, 3.0));
        assert_eq!(spread(Vec::new()).count, 0);
    }
}
