//! `rehost fix`: repair what stops each image's installs from booting on a target, through
//! the rules that found it; many images in parallel, one report (or JSON line) each.

use super::check::Output;
use anyhow::{bail, Result};
use rayon::prelude::*;
use rehost::fs::staged::Mode;
use rehost::rules::fix::run::{self, FixReport};
use rehost::rules::fix::FixOptions;
use rehost::rules::Target;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// A failed image, in the JSON output.
#[derive(Serialize)]
struct Failure<'a> {
    image: String,
    errors: [&'a str; 1],
}

/// Everything `rehost fix` was asked.
pub struct Args<'a> {
    pub images: &'a [PathBuf],
    pub target: &'a Target,
    pub mode: Mode,
    pub options: FixOptions,
    pub force: bool,
    pub output: Output,
    pub jobs: Option<usize>,
    /// Print the bytes read from each image (on stderr).
    pub stats: bool,
}

pub fn run(a: Args) -> Result<i32> {
    if matches!(a.mode, Mode::Output(_)) && a.images.len() > 1 {
        bail!("--output writes one new image: give one image, or use --in-place or --dry-run");
    }
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(j) = a.jobs {
        builder = builder.num_threads(j.max(1));
    }
    let pool = builder.build()?;
    let stdout = Mutex::new(std::io::stdout());
    let started = std::time::Instant::now();
    let results: Vec<(usize, Result<FixReport, String>)> = pool.install(|| {
        a.images
            .par_iter()
            .enumerate()
            .map(|(n, path)| {
                let r = run::fix(path, a.target, a.mode.clone(), &a.options, a.force)
                    .map_err(|e| format!("{e:#}"));
                let mut out = stdout.lock().unwrap_or_else(|p| p.into_inner());
                match (a.output, &r) {
                    (Output::Jsonl, Ok(rep)) => {
                        let _ = writeln!(out, "{}", serde_json::to_string(rep).unwrap_or_default());
                    }
                    (Output::Jsonl, Err(e)) => {
                        let f = Failure {
                            image: path.display().to_string(),
                            errors: [e],
                        };
                        let _ = writeln!(out, "{}", serde_json::to_string(&f).unwrap_or_default());
                    }
                    (Output::Text, Ok(rep)) => {
                        let _ = text(&mut *out, rep);
                    }
                    (Output::Text, Err(e)) => {
                        let _ = writeln!(out, "{}: not fixed: {e}", path.display());
                    }
                    (Output::Json, _) => {}
                }
                (n, r)
            })
            .collect()
    });
    if a.output == Output::Json {
        let docs: Vec<serde_json::Value> = results
            .iter()
            .map(|(n, r)| match r {
                Ok(rep) => serde_json::to_value(rep).unwrap_or_default(),
                Err(e) => serde_json::to_value(Failure {
                    image: a.images[*n].display().to_string(),
                    errors: [e],
                })
                .unwrap_or_default(),
            })
            .collect();
        let mut out = std::io::stdout().lock();
        if docs.len() == 1 {
            serde_json::to_writer_pretty(&mut out, &docs[0])?;
        } else {
            serde_json::to_writer_pretty(&mut out, &docs)?;
        }
        writeln!(out)?;
    }
    let ok: Vec<&FixReport> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let failed = results.len() - ok.len();
    let booting = ok
        .iter()
        .filter(|r| !r.installs.is_empty() && r.installs.iter().all(|i| i.after.boots()))
        .count();
    let committed = ok.iter().filter(|r| r.committed).count();
    let secs = started.elapsed().as_secs_f64();
    if a.stats {
        for r in &ok {
            eprintln!(
                "stats: read {} bytes from {} in {:.1} ms",
                r.bytes_read, r.image, r.elapsed_ms
            );
        }
    }
    if a.images.len() > 1 || a.output != Output::Text {
        eprintln!(
            "rehost fix: {} images for {}: {booting} boot, {} do not, {failed} failed (read or refused); {committed} written; {:.2} s, {:.1} images/s",
            results.len(),
            a.target.name,
            ok.len() - booting,
            secs,
            results.len() as f64 / secs.max(1e-9)
        );
    }
    Ok(if failed > 0 {
        1
    } else if booting == ok.len() {
        0
    } else {
        3
    })
}

fn text(out: &mut dyn Write, r: &FixReport) -> std::io::Result<()> {
    if let Some(rec) = &r.recovered {
        writeln!(out, "{}: {rec}", r.image)?;
    }
    if r.installs.is_empty() {
        writeln!(out, "{}: no Windows install found", r.image)?;
    }
    for i in &r.installs {
        let v = |verdict: rehost::rules::Verdict, stop: &Option<String>| match stop {
            Some(s) => format!("{} {s}", verdict.name()),
            None => verdict.name().to_string(),
        };
        writeln!(
            out,
            "{}: volume {} {} ({}) on {}: {} -> {}",
            r.image,
            i.volume
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            i.system_root.as_deref().unwrap_or("?"),
            i.product.as_deref().unwrap_or("Windows"),
            r.target,
            v(i.before, &i.before_stop),
            v(i.after, &i.after_stop)
        )?;
        // A set of changes made for one reason says it once, with the first of them.
        let mut last_reason: Option<(&String, &str)> = None;
        for c in &i.changes {
            let (what, reason) = match c.why.find(" (repairs ") {
                Some(at) => c.why.split_at(at),
                None => (c.why.as_str(), ""),
            };
            let why = if !reason.is_empty() && last_reason == Some((&c.rule, reason)) {
                what
            } else {
                c.why.as_str()
            };
            last_reason = Some((&c.rule, reason));
            match c.kind {
                "registry" | "boot.ini" => {
                    writeln!(out, "  {}: {why}", c.rule)?;
                    for l in c.diff.as_deref().unwrap_or("").lines() {
                        writeln!(out, "    {l}")?;
                    }
                }
                _ => {
                    writeln!(out, "  {}: {why}", c.rule)?;
                    writeln!(
                        out,
                        "    {} {}{}",
                        c.kind,
                        c.file.as_deref().unwrap_or(""),
                        c.sha256
                            .as_deref()
                            .map(|h| format!(" ({} bytes, sha256 {h})", c.bytes.unwrap_or(0)))
                            .unwrap_or_default()
                    )?
                }
            }
        }
        for n in &i.not_fixed {
            writeln!(out, "  {}: not fixed: {}", n.rule, n.why)?;
        }
        for f in i
            .remaining
            .iter()
            .filter(|f| f.severity != rehost::rules::Severity::Info)
        {
            writeln!(
                out,
                "  still: {} [{}] {}",
                f.rule,
                f.severity.name(),
                f.message
            )?;
        }
    }
    match (&r.written, &r.not_committed) {
        (Some(w), _) => writeln!(
            out,
            "{}: written to {}: {} host writes, {} bytes{}",
            r.image,
            w.path,
            w.host_writes,
            w.bytes_written,
            w.journal
                .as_ref()
                .map(|j| format!("; undo journal {j} (`rehost undo {}` restores it)", r.image))
                .unwrap_or_default()
        ),
        (None, Some(why)) => writeln!(out, "{}: {why} ({} bytes staged)", r.image, r.staged_bytes),
        (None, None) => writeln!(out, "{}: nothing to change", r.image),
    }
}
