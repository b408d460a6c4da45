//! `rehost report`: fleet ledgers read back as a summary table, CSV (a row per install and
//! target), JSON, or a self-contained HTML page (`html.rs`).

mod html;

use anyhow::{Context, Result};
use rehost_ledger::report::{Report, Spread};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How the report is printed on standard output.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// The summary and a line per image.
    Table,
    /// A row per install and target of each image (an image without one: a row of its own).
    Csv,
    /// The whole report: the images and their summary.
    Json,
}

/// Reads `ledgers` and prints the report, or writes it as HTML into `html`.
pub fn run(
    ledgers: &[PathBuf],
    command: Option<&str>,
    format: Format,
    html: Option<&Path>,
) -> Result<i32> {
    let paths: Vec<&Path> = ledgers.iter().map(PathBuf::as_path).collect();
    let report = rehost_ledger::report::read(&paths, command)?;
    if let Some(file) = html {
        std::fs::write(file, html::page(&report))
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!(
            "rehost report: {} images ({}) written to {}",
            report.images.len(),
            report.command,
            file.display()
        );
        return Ok(0);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        Format::Csv => csv(&report, &mut out)?,
        Format::Table => table(&report, &mut out)?,
    }
    out.flush()?;
    Ok(0)
}

/// Milliseconds, or bytes in MiB, of a spread.
fn spread_line(s: &Spread, unit: &str, scale: f64) -> String {
    if s.count == 0 {
        return "none recorded".into();
    }
    format!(
        "min {:.2}{unit}, median {:.2}{unit}, p90 {:.2}{unit}, max {:.2}{unit} ({} images)",
        s.min / scale,
        s.median / scale,
        s.p90 / scale,
        s.max / scale,
        s.count
    )
}

/// The verdicts in the order they are shown.
pub const VERDICTS: [&str; 4] = ["boots", "boots-with-warnings", "no-boot", "unknown"];

fn table(r: &Report, out: &mut impl Write) -> Result<()> {
    let s = &r.summary;
    writeln!(
        out,
        "rehost report: {}, {} images, from {}",
        r.command,
        r.images.len(),
        r.ledgers.join(", ")
    )?;
    let status: Vec<String> = s.status.iter().map(|(k, n)| format!("{n} {k}")).collect();
    writeln!(out, "status: {}", status.join(", "))?;
    if !s.verdicts.is_empty() {
        writeln!(out, "verdicts by target (installs):")?;
        writeln!(
            out,
            "  {:<18} {:>7} {:>9} {:>8} {:>8}",
            "target", "boots", "warnings", "no-boot", "unknown"
        )?;
        for (target, v) in &s.verdicts {
            let n = |k: &str| v.get(k).copied().unwrap_or(0);
            writeln!(
                out,
                "  {target:<18} {:>7} {:>9} {:>8} {:>8}",
                n(VERDICTS[0]),
                n(VERDICTS[1]),
                n(VERDICTS[2]),
                n(VERDICTS[3])
            )?;
        }
    }
    if !s.products.is_empty() {
        writeln!(out, "installs by product:")?;
        for (p, n) in &s.products {
            writeln!(out, "  {n:>6}  {p}")?;
        }
    }
    if !s.rules.is_empty() {
        writeln!(out, "findings by rule:")?;
        writeln!(
            out,
            "  {:<20} {:>7} {:>9} {:>7} {:>8}",
            "rule", "images", "findings", "errors", "fixable"
        )?;
        for (rule, c) in &s.rules {
            writeln!(
                out,
                "  {rule:<20} {:>7} {:>9} {:>7} {:>8}",
                c.images, c.findings, c.errors, c.fixable
            )?;
        }
    }
    if !s.stops.is_empty() {
        let stops: Vec<String> = s.stops.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(out, "predicted failures: {}", stops.join(", "))?;
    }
    if !s.transitions.is_empty() {
        writeln!(
            out,
            "fix: {} images written; verdicts before → after:",
            s.committed
        )?;
        for (t, n) in &s.transitions {
            writeln!(out, "  {n:>6}  {t}")?;
        }
    }
    writeln!(
        out,
        "time per image: {}",
        spread_line(&s.elapsed_ms, " ms", 1.0)
    )?;
    writeln!(
        out,
        "bytes read per image: {}",
        spread_line(&s.bytes_read, " MiB", 1048576.0)
    )?;
    writeln!(out, "images:")?;
    for i in &r.images {
        let verdicts: Vec<String> = i
            .verdicts
            .iter()
            .map(|v| format!("{}={}", v.target, v.verdict))
            .collect();
        writeln!(
            out,
            "  {:<7} {}  {}{}",
            i.status,
            i.path,
            verdicts.join(" "),
            if i.errors.is_empty() {
                String::new()
            } else {
                format!("  error: {}", i.errors.join("; "))
            }
        )?;
    }
    Ok(())
}

fn csv(r: &Report, out: &mut impl Write) -> Result<()> {
    let mut w = csv_writer(out);
    w.write_record([
        "path",
        "status",
        "install",
        "target",
        "verdict",
        "stop",
        "before",
        "findings",
        "changes",
        "committed",
        "bytes_read",
        "elapsed_ms",
        "errors",
    ])?;
    for i in &r.images {
        let common = |install: &str, target: &str, verdict: &str, stop: &str, before: &str| {
            let findings = i
                .findings
                .iter()
                .filter(|f| f.install == install && f.target == target)
                .count();
            vec![
                i.path.clone(),
                i.status.clone(),
                install.to_string(),
                target.to_string(),
                verdict.to_string(),
                stop.to_string(),
                before.to_string(),
                findings.to_string(),
                i.changes.to_string(),
                u8::from(i.committed).to_string(),
                i.bytes_read.map(|b| b.to_string()).unwrap_or_default(),
                i.elapsed_ms.map(|t| format!("{t:.3}")).unwrap_or_default(),
                i.errors.join("; "),
            ]
        };
        if i.verdicts.is_empty() {
            w.write_record(common("", "", "", "", ""))?;
        }
        for v in &i.verdicts {
            w.write_record(common(
                &v.install,
                &v.target,
                &v.verdict,
                v.stop.as_deref().unwrap_or(""),
                v.before.as_deref().unwrap_or(""),
            ))?;
        }
    }
    w.flush()?;
    Ok(())
}

fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new().from_writer(out)
}
