//! `rehost check`: will each install of each image boot on each target, and if not, why.

use super::fleet::{self, Output};
use super::scale::FleetArgs;
use anyhow::{bail, Result};
use rehost::rules::{self, CheckReport, InstallCheck, Target};
use rehost_fleet::input::Item;
use std::io::Write;
use std::path::Path;

/// The profiles `names` asks for ("all": every one), from the built-in ones and `dir`.
pub fn targets(names: &[String], dir: Option<&Path>) -> Result<Vec<Target>> {
    let all = rules::target::load(dir)?;
    let mut out: Vec<Target> = Vec::new();
    for n in names.iter().flat_map(|n| n.split(',')) {
        let n = n.trim();
        if n.eq_ignore_ascii_case("all") {
            for t in &all {
                if !out.iter().any(|o| o.name == t.name) {
                    out.push(t.clone());
                }
            }
            continue;
        }
        match all.iter().find(|t| t.name.eq_ignore_ascii_case(n)) {
            Some(t) if !out.iter().any(|o| o.name == t.name) => out.push(t.clone()),
            Some(_) => {}
            None => {
                bail!(
                "no target profile {n:?}; the targets are: {} (or \"all\"; see `rehost targets`)",
                all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
            )
            }
        }
    }
    Ok(out)
}

pub fn run(
    items: &[Item],
    f: &FleetArgs,
    work: &rehost_fleet::work::Check,
    output: Output,
    jobs: Option<usize>,
    stats: bool,
) -> Result<i32> {
    let done = f.run(work, items, jobs, &fleet::stream(output))?.done;
    fleet::finish(output, &done, |out, rep| text(out, rep))?;
    if stats {
        for rep in done.iter().filter_map(|d| d.result.as_ref().ok()) {
            eprintln!(
                "stats: read {} bytes from {} in {:.1} ms",
                rep.bytes_read, rep.image, rep.elapsed_ms
            );
        }
    }
    let all_boot = |rep: &CheckReport| rep.installs.iter().all(|i| i.verdict.boots());
    let summary = rehost_fleet::Summary::of(&done, all_boot);
    Ok(if summary.failed > 0 {
        1
    } else if summary.passed == summary.images {
        0
    } else {
        3
    })
}

fn text(out: &mut dyn Write, r: &CheckReport) -> Result<()> {
    writeln!(out, "{}", r.image)?;
    let mut last: Option<(Option<u32>, Option<&str>)> = None;
    for i in &r.installs {
        let this = (i.volume, i.system_root.as_deref());
        if last != Some(this) {
            let place = match (i.volume, &i.system_root) {
                (Some(v), Some(root)) => format!("volume {v} {root}"),
                (Some(v), None) => format!("volume {v}"),
                _ => "no install".into(),
            };
            match &i.product {
                Some(p) => writeln!(out, "  {place}: {p}")?,
                None => writeln!(out, "  {place}")?,
            }
            last = Some(this);
        }
        install(out, i)?;
    }
    for e in &r.errors {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}

fn install(out: &mut dyn Write, i: &InstallCheck) -> Result<()> {
    let stop = i
        .stop
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    writeln!(out, "    {:<16} {}{stop}", i.target, i.verdict.name())?;
    for w in &i.why {
        writeln!(out, "      ? {w}")?;
    }
    // The same finding in several control sets is one line, naming the sets.
    let mut lines: Vec<(String, &rules::Finding, Vec<u32>)> = Vec::new();
    for f in &i.findings {
        let key = format!(
            "{} {} {:?} {}",
            f.rule,
            f.case,
            f.service,
            same_in_every_set(&f.message)
        );
        match lines.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, sets)) => sets.extend(f.control_set),
            None => lines.push((key, f, f.control_set.into_iter().collect())),
        }
    }
    for (_, f, sets) in lines {
        let sets = if sets.len() > 1 {
            let names: Vec<String> = sets.iter().map(|s| format!("ControlSet{s:03}")).collect();
            format!(" (in {})", names.join(", "))
        } else {
            String::new()
        };
        writeln!(
            out,
            "      {:<7} {:<17} {}{sets}{}",
            f.severity.name(),
            f.rule,
            f.message,
            if f.fixable { " [fixable]" } else { "" }
        )?;
        if let Some(why) = &f.cannot_fix {
            writeln!(out, "{:27}not fixed by rehost fix here: {why}", "")?;
        }
    }
    Ok(())
}

/// A message with what names its control set taken out.
fn same_in_every_set(message: &str) -> String {
    let m = message.split(" (only in ").next().unwrap_or(message);
    let mut out = String::new();
    let mut rest = m;
    while let Some(i) = rest.find("ControlSet") {
        out.push_str(&rest[..i + "ControlSet".len()]);
        rest = rest[i + "ControlSet".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}
