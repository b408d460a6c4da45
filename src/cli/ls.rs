//! `rehost ls`: list a directory, or a whole tree.

use super::image::report_stats;
use anyhow::Result;
use rehost::fs::DirEntry;
use rehost::fs::Image;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Serialize)]
struct Row<'a> {
    path: &'a str,
    #[serde(flatten)]
    entry: &'a DirEntry,
}

pub fn run(
    image: &Path,
    path: &str,
    volume: Option<u32>,
    recursive: bool,
    json: bool,
    stats: bool,
) -> Result<i32> {
    let img = Image::open(image)?;
    let (_, fs) = img.choose(volume)?;
    let mut rows: Vec<(String, DirEntry)> = Vec::new();
    let mut failed = false;
    if recursive {
        fs.walk(
            path,
            &mut |p, e| rows.push((p.to_string(), e.clone())),
            &mut |p, e| {
                eprintln!("rehost: {p}: {e}");
                failed = true;
            },
        );
    } else {
        rows = fs
            .read_dir(path)?
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
    }
    // Sizes from each file's own record: the copies in directory indexes lag behind.
    for (p, e) in &mut rows {
        match fs.size(e) {
            Ok(size) => e.size = size,
            Err(err) => {
                eprintln!("rehost: {p}: its size from its record: {err}");
                failed = true;
            }
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        let v: Vec<Row> = rows
            .iter()
            .map(|(p, e)| Row { path: p, entry: e })
            .collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        for (p, e) in &rows {
            let kind = if e.is_dir { 'd' } else { '-' };
            writeln!(out, "{kind} {:>10} {:>12}  {p}", e.inode, e.size)?;
        }
    }
    out.flush()?;
    drop(out);
    report_stats(&img, stats);
    Ok(if failed { 1 } else { 0 })
}
