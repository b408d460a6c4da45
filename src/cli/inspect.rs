//! `rehost inspect`: every Windows install on each image, many images in parallel.

use super::fleet::{self, Output};
use super::image::{human, shadow_copy_lines};
use super::scale::FleetArgs;
use anyhow::Result;
use rehost::windows::report::ImageReport;
use rehost_fleet::input::Item;
use std::io::Write;

pub fn run(
    items: &[Item],
    f: &FleetArgs,
    output: Output,
    jobs: Option<usize>,
    stats: bool,
) -> Result<i32> {
    let work = rehost_fleet::work::Inspect;
    let done = f.run(&work, items, jobs, &fleet::stream(output))?.done;
    fleet::finish(output, &done, |out, rep| summary(out, rep))?;
    if stats {
        for rep in done.iter().filter_map(|d| d.result.as_ref().ok()) {
            eprintln!("stats: read {} bytes from {}", rep.bytes_read, rep.image);
        }
    }
    // An image read with errors (a partition past the end of the disk, an unreadable
    // volume or hive) is not an image read: the exit code says so beside the report.
    let failed = done
        .iter()
        .any(|d| d.result.as_ref().map_or(true, |r| !r.errors.is_empty()));
    Ok(i32::from(failed))
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("?")
}

/// The name a file was built under, only where it differs from its own: ` (built as X)`.
fn built(file: &str, original: &Option<String>) -> String {
    match original {
        Some(o) if o.eq_ignore_ascii_case(file) => String::new(),
        o => format!(" (built as {})", opt(o)),
    }
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
        "{}: {} {}, {}, {scheme} {id}, {} volume{}",
        r.image,
        serde_json::to_value(r.format)?.as_str().unwrap_or(""),
        serde_json::to_value(r.subformat)?.as_str().unwrap_or(""),
        human(r.virtual_size),
        r.volumes.len(),
        if r.volumes.len() == 1 { "" } else { "s" }
    )?;
    for v in &r.volumes {
        let Some(s) = v.shadow_copies.as_ref().filter(|s| s.any()) else {
            continue;
        };
        for l in shadow_copy_lines(s) {
            writeln!(out, "  volume {}: {l}", v.index)?;
        }
    }
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
            "  volume {} {}: {} ({} build {}{sp}), {}, {}, computer name {}",
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
        match &i.hal.loaded_by {
            None => writeln!(
                out,
                "    HAL {} {} (setup recorded {}: {agree})",
                opt(&i.hal.original_filename),
                opt(&i.hal.file_version),
                opt(&i.hal.hardware_id)
            )?,
            // Setup's record is of hal.dll, which this entry does not load.
            Some(by) => writeln!(
                out,
                "    HAL {}{} {}, loaded by {by} (setup recorded {} for hal.dll)",
                opt(&i.hal.original_filename),
                built(&i.hal.file, &i.hal.original_filename),
                opt(&i.hal.file_version),
                opt(&i.hal.hardware_id)
            )?,
        }
        for k in &i.kernels {
            let how = match (&k.loaded_by, k.loaded) {
                (Some(by), _) => format!(", loaded by {by}"),
                (None, false) => ", not loaded by the default boot entry".to_string(),
                (None, true) => String::new(),
            };
            writeln!(
                out,
                "    kernel {}{} {}{how}{}",
                k.file,
                built(&k.file, &k.original_filename),
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
