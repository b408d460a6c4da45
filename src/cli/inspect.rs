//! `rehost inspect`: every Windows install on each image, many images in parallel.

use super::image::human;
use anyhow::Result;
use rayon::prelude::*;
use rehost::windows::{self, report::ImageReport};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// Output mode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Jsonl,
}

/// A failed image, in the JSON output.
#[derive(Serialize)]
struct Failure<'a> {
    image: String,
    errors: [&'a str; 1],
}

pub fn run(images: &[PathBuf], output: Output, jobs: Option<usize>, stats: bool) -> Result<i32> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(j) = jobs {
        builder = builder.num_threads(j.max(1));
    }
    let pool = builder.build()?;
    let stdout = Mutex::new(std::io::stdout());
    let results: Vec<(usize, Result<ImageReport, String>)> = pool.install(|| {
        images
            .par_iter()
            .enumerate()
            .map(|(n, path)| {
                let r = windows::inspect(path).map_err(|e| format!("{e:#}"));
                if output == Output::Jsonl {
                    let line = match &r {
                        Ok(rep) => serde_json::to_string(rep),
                        Err(e) => serde_json::to_string(&Failure {
                            image: path.display().to_string(),
                            errors: [e],
                        }),
                    };
                    if let Ok(line) = line {
                        let mut out = stdout.lock().unwrap_or_else(|p| p.into_inner());
                        let _ = writeln!(out, "{line}");
                    }
                }
                (n, r)
            })
            .collect()
    });
    let failed = results.iter().any(|(_, r)| r.is_err());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        Output::Jsonl => {}
        Output::Json => {
            let docs: Vec<serde_json::Value> = results
                .iter()
                .map(|(n, r)| match r {
                    Ok(rep) => serde_json::to_value(rep).unwrap_or_default(),
                    Err(e) => serde_json::to_value(Failure {
                        image: images[*n].display().to_string(),
                        errors: [e],
                    })
                    .unwrap_or_default(),
                })
                .collect();
            if docs.len() == 1 {
                serde_json::to_writer_pretty(&mut out, &docs[0])?;
            } else {
                serde_json::to_writer_pretty(&mut out, &docs)?;
            }
            writeln!(out)?;
        }
        Output::Text => {
            for (n, r) in &results {
                match r {
                    Ok(rep) => summary(&mut out, rep)?,
                    Err(e) => writeln!(out, "{}: cannot be read: {e}", images[*n].display())?,
                }
            }
        }
    }
    out.flush()?;
    if stats {
        for (_, r) in &results {
            if let Ok(rep) = r {
                eprintln!("stats: read {} bytes from {}", rep.bytes_read, rep.image);
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("?")
}

fn summary(out: &mut dyn Write, r: &ImageReport) -> Result<()> {
    let scheme = serde_json::to_value(r.partitioning)?
        .as_str()
        .unwrap_or("")
        .to_string();
    let id = r
        .disk_signature
        .as_deref()
        .or(r.disk_guid.as_deref())
        .unwrap_or("");
    writeln!(
        out,
        "{}: {} {}, {}, {scheme} {id}, {} volumes",
        r.image,
        serde_json::to_value(r.format)?.as_str().unwrap_or(""),
        serde_json::to_value(r.subformat)?.as_str().unwrap_or(""),
        human(r.virtual_size),
        r.volumes.len()
    )?;
    if r.installs.is_empty() {
        writeln!(out, "  no Windows install found")?;
    }
    for i in &r.installs {
        let sp = i
            .service_pack
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  volume {} {}: {} ({} build {}{sp}), {}, {}, host {}",
            i.volume,
            i.system_root,
            opt(&i.product_name),
            opt(&i.version),
            i.build.map(|b| b.to_string()).unwrap_or_else(|| "?".into()),
            opt(&i.arch),
            opt(&i.installation_type).to_lowercase(),
            opt(&i.hostname)
        )?;
        let agree = match i.hal.agrees {
            Some(true) => "agrees",
            Some(false) => "DISAGREES",
            None => "not compared",
        };
        writeln!(
            out,
            "    HAL {} {} (setup recorded {}: {agree})",
            opt(&i.hal.original_filename),
            opt(&i.hal.file_version),
            opt(&i.hal.hardware_id)
        )?;
        for k in &i.kernels {
            writeln!(
                out,
                "    kernel {} = {} {}{}",
                k.file,
                opt(&k.original_filename),
                opt(&k.file_version),
                if k.matches_hal == Some(false) {
                    " (does not match the HAL)"
                } else {
                    ""
                }
            )?;
        }
        let default = i.boot.default_entry.as_ref().or(i.boot.entries.first());
        match default {
            Some(b) => writeln!(
                out,
                "    boot: {} on volume {}{}",
                b.store,
                b.store_volume,
                if b.default {
                    ", the default entry"
                } else {
                    ", not the default entry"
                }
            )?,
            None => writeln!(out, "    boot: no entry on this image")?,
        }
        match &i.system_letter {
            Some(l) => writeln!(out, "    {l} is this volume (MountedDevices)")?,
            None => writeln!(out, "    no drive letter names this volume")?,
        }
        let cs = i.control_sets.current;
        let storage: Vec<String> = i
            .services
            .iter()
            .filter(|s| Some(s.control_set) == cs && s.role == "controller")
            .map(|s| {
                let start = match s.start {
                    Some(0) => "boot",
                    Some(1) => "system",
                    Some(2) => "auto",
                    Some(3) => "demand",
                    Some(4) => "disabled",
                    _ => "?",
                };
                let over = if s.start_override.iter().any(|(_, v)| *v != 0) {
                    " (StartOverride)"
                } else {
                    ""
                };
                format!("{} {start}{over}", s.name)
            })
            .collect();
        writeln!(out, "    storage: {}", storage.join(", "))?;
        let hives: Vec<String> = i
            .hives
            .iter()
            .map(|h| {
                format!(
                    "{} {}{}",
                    h.name,
                    human(h.size),
                    if h.dirty { " dirty" } else { "" }
                )
            })
            .collect();
        writeln!(out, "    hives: {}", hives.join(", "))?;
        for f in &i.flags {
            writeln!(out, "    ! {f}")?;
        }
    }
    for e in &r.errors {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}
