//! `rehost targets`: the target profiles, one line each.

use anyhow::Result;
use rehost::rules::Target;
use std::io::Write;

pub fn run(targets: &[Target]) -> Result<i32> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for t in targets {
        let drivers: Vec<String> = t
            .controller
            .driver
            .iter()
            .map(|d| {
                let range = match (d.from, d.until) {
                    (Some(f), Some(u)) if f == u => format!("{f}"),
                    (Some(f), Some(u)) => format!("{f}-{u}"),
                    (Some(f), None) => format!("{f}+"),
                    (None, Some(u)) => format!("-{u}"),
                    (None, None) => "all".into(),
                };
                format!(
                    "{} {range}{}",
                    d.services.join("+"),
                    if d.inbox { "" } else { " (not inbox)" }
                )
            })
            .collect();
        writeln!(
            out,
            "{:<16} {:<10} {}; {}{}",
            t.name,
            t.firmware.join("+"),
            t.description,
            drivers.join(", "),
            if t.unverified.is_empty() && t.controller.driver.iter().all(|d| !d.unverified) {
                ""
            } else {
                " [partly unverified]"
            }
        )?;
    }
    out.flush()?;
    Ok(0)
}
