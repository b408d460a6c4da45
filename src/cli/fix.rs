//! `rehost fix`: repair what stops each image's installs from booting on a target, through
//! the rules that found it; many images in parallel, one report (or JSON line) each.

use super::fleet::{self, Output};
use super::scale::FleetArgs;
use anyhow::Result;
use rehost::fs::staged::Mode;
use rehost::rules::fix::run::FixReport;
use rehost_fleet::input::Item;
use std::io::Write;

/// Everything `rehost fix` was asked.
pub struct Args<'a> {
    pub items: &'a [Item],
    pub fleet: &'a FleetArgs,
    pub work: rehost_fleet::work::Fix,
    pub output: Output,
    pub jobs: Option<usize>,
    /// Print the bytes read from each image (on stderr).
    pub stats: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let started = std::time::Instant::now();
    let sink = |d: &rehost_fleet::Done<FixReport>| match (a.output, &d.result) {
        (Output::Jsonl, _) => fleet::line(d),
        (Output::Text, Ok(rep)) => {
            let mut out = std::io::stdout().lock();
            let _ = text(&mut out, rep);
        }
        (Output::Text, Err(e)) => println!("{}: not fixed: {e:#}", d.image.display()),
        (Output::Json, _) => {}
    };
    let ran = a.fleet.run(&a.work, a.items, a.jobs, &sink)?;
    let results = ran.done;
    if a.output == Output::Json {
        fleet::json(&results)?;
    }
    let ok: Vec<&FixReport> = results
        .iter()
        .filter_map(|d| d.result.as_ref().ok())
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
    let target = match &a.work.target {
        Some(t) => t.name.clone(),
        None => "each row's target".into(),
    };
    if a.items.len() > 1 || a.output != Output::Text {
        eprintln!(
            "rehost fix: {} image{} for {target}: {booting} boot, {} do not, {failed} failed (read or refused); {committed} written; {:.2} s, {:.1} images/s",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
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
    // What could not be read, which may be why no install was found.
    for e in &r.errors {
        writeln!(out, "{}: error: {e}", r.image)?;
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
        // A set of changes made for one reason says it once, with the first of them: the
        // change on its line, then each finding it repairs on a line of its own.
        let mut last_reason: Option<(&String, &str)> = None;
        for c in &i.changes {
            let (what, reason) = match c.why.find(". Repairs ") {
                Some(at) => (&c.why[..at], &c.why[at + 2..]),
                None => (c.why.as_str(), ""),
            };
            let repeated = !reason.is_empty() && last_reason == Some((&c.rule, reason));
            last_reason = Some((&c.rule, reason));
            writeln!(out, "  {}: {what}", c.rule)?;
            if !repeated {
                for r in reason.split(". Also repairs ").filter(|r| !r.is_empty()) {
                    let r = r.strip_prefix("Repairs ").unwrap_or(r);
                    writeln!(out, "    repairs {r}")?;
                }
            }
            match c.kind {
                "registry" | "boot.ini" => {
                    for l in c.diff.as_deref().unwrap_or("").lines() {
                        writeln!(out, "    {l}")?;
                    }
                }
                _ => writeln!(
                    out,
                    "    {} {}{}",
                    c.kind,
                    c.file.as_deref().unwrap_or(""),
                    c.sha256
                        .as_deref()
                        .map(|h| format!(" ({} bytes, sha256 {h})", c.bytes.unwrap_or(0)))
                        .unwrap_or_default()
                )?,
            }
        }
        for n in &i.not_fixed {
            let what = if n.partial { "not done" } else { "not fixed" };
            writeln!(out, "  {}: {what}: {}", n.rule, n.why)?;
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
            if let Some(why) = &f.cannot_fix {
                writeln!(out, "    not fixed: {why}")?;
            }
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
        (None, Some(why)) if r.staged_bytes == 0 => writeln!(out, "{}: {why}", r.image),
        (None, Some(why)) => writeln!(
            out,
            "{}: {why}; the fix would write {} bytes",
            r.image, r.staged_bytes
        ),
        (None, None) => writeln!(out, "{}: nothing to change", r.image),
    }?;
    let mode = match r.mode {
        "dry-run" => Mode::DryRun,
        "in-place" => Mode::InPlace,
        _ => Mode::Output(
            r.written
                .as_ref()
                .map(|w| w.path.clone().into())
                .unwrap_or_default(),
        ),
    };
    for l in super::write::shadow_copy_notes(&mode, r.committed, &r.shadow_copies) {
        writeln!(out, "{}: {l}", r.image)?;
    }
    if let Some(why) = &r.in_place_refusal {
        writeln!(
            out,
            "{}: {}",
            r.image,
            super::write::in_place_refusal_note(why)
        )?;
    }
    for what in &r.in_place_repairs {
        writeln!(
            out,
            "{}: {}",
            r.image,
            super::write::in_place_repair_note(what)
        )?;
    }
    Ok(())
}
