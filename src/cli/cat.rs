//! `rehost cat`: a file's bytes to standard output.

use super::image::report_stats;
use anyhow::Result;
use rehost::fs::Image;
use std::io::Write;
use std::path::Path;

pub fn run(
    image: &Path,
    path: &str,
    volume: Option<u32>,
    stream: &str,
    stats: bool,
) -> Result<i32> {
    let img = Image::open(image)?;
    let (_, fs) = img.choose(volume)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    fs.copy_to(path, stream, &mut out)?;
    out.flush()?;
    report_stats(&img, stats);
    Ok(0)
}
