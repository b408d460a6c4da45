//! `rehost convert`: a virtual disk copied into a new image of another container format,
//! holes kept as holes, read back and compared before it is given its name.

use super::image::human;
use anyhow::Result;
use rehost::disk::{self, NewFormat};
use std::path::Path;

/// The format of a new image: `--output-format`, else the output's extension.
pub fn new_format(output: &Path, asked: Option<&str>) -> Result<NewFormat> {
    match asked {
        Some(name) => NewFormat::from_name(name).ok_or_else(|| {
            anyhow::Error::new(super::Usage(format!(
                "no output format {name:?}; rehost writes {}",
                NewFormat::NAMES
            )))
        }),
        None => NewFormat::from_path(output).ok_or_else(|| {
            anyhow::Error::new(super::Usage(format!(
                "{}: the extension does not say which format to write; name it .raw, .img, \
                 .vhd, .vhdx, .qcow2 or .vmdk, or give --output-format ({})",
                output.display(),
                NewFormat::NAMES
            )))
        }),
    }
}

pub fn run(
    input: &Path,
    output: &Path,
    format: Option<&str>,
    adapter: Option<&str>,
    stats: bool,
) -> Result<i32> {
    let format = new_format(output, format)?;
    let asked = super::write::vmdk_adapter(adapter)?;
    let src = disk::open(input, &disk::OpenOptions::default())?;
    let (adapter, note) = if format.format() == disk::Format::Vmdk {
        disk::vmdk_adapter_for(input, asked)?
    } else {
        (asked.unwrap_or_default(), None)
    };
    let mut r = disk::create(
        &src,
        output,
        format,
        &disk::CreateOptions {
            vmdk_adapter: Some(adapter),
            ..disk::CreateOptions::default()
        },
    )?;
    r.notes.extend(note);
    println!(
        "{}: {} {} disk ({}) written as a {format}: {} of {} blocks hold data, {} written, \
         the file is {}; read back and compared",
        output.display(),
        src.info().format,
        human(r.virtual_size),
        input.display(),
        r.blocks_written,
        r.blocks,
        human(r.bytes_written),
        human(r.file_len)
    );
    for note in &r.notes {
        println!("{}: {note}", output.display());
    }
    if stats {
        let s = src.stats();
        eprintln!(
            "stats: read {} bytes in {} reads from {}",
            s.bytes(),
            s.reads(),
            input.display()
        );
    }
    Ok(0)
}
