//! `rehost volumes`: the partition layout of an image.

use super::image::{content_name, human, Image};
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Report<'a> {
    image: String,
    disk: &'a rehost::disk::DiskInfo,
    layout: &'a rehost::volume::Layout,
}

pub fn run(path: &Path, json: bool, stats: bool) -> Result<i32> {
    let img = Image::open(path)?;
    let info = img.disk.info();
    if json {
        let r = Report {
            image: path.display().to_string(),
            disk: info,
            layout: &img.layout,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let mut kind = format!("{} {:?}", info.format, info.subformat).to_lowercase();
        if let Some(b) = info.block_size {
            kind.push_str(&format!(", {} blocks", human(b as u64)));
        }
        println!(
            "{}: {kind}, {} ({} bytes), {}-byte sectors",
            path.display(),
            human(info.virtual_size),
            info.virtual_size,
            info.logical_sector_size
        );
        let l = &img.layout;
        let id = match (&l.mbr_signature, &l.disk_guid) {
            (_, Some(g)) => format!(", disk GUID {g}"),
            (Some(s), None) => format!(", disk signature {s}"),
            _ => String::new(),
        };
        let scheme = match l.partitioning {
            rehost::volume::Partitioning::Mbr => "mbr",
            rehost::volume::Partitioning::Gpt => "gpt",
            rehost::volume::Partitioning::None => "none",
        };
        println!("partitioning: {scheme}{id}");
        println!(
            "{:>3}  {:>14}  {:>10}  {:<38}  {:<9}  flags",
            "#", "offset", "size", "type", "content"
        );
        for v in &l.volumes {
            let mut flags = Vec::new();
            if v.bootable {
                flags.push("boot".to_string());
            }
            if v.logical {
                flags.push("logical".to_string());
            }
            if let Some(g) = &v.partition_guid {
                flags.push(format!("guid {g}"));
            }
            println!(
                "{:>3}  {:>14}  {:>10}  {:<38}  {:<9}  {}",
                v.index,
                v.offset,
                human(v.size),
                format!("{} {}", v.part_type, v.type_name),
                content_name(v.content),
                flags.join(" ")
            );
        }
        for n in info.notes.iter().chain(&l.notes) {
            println!("note: {n}");
        }
    }
    img.report_stats(stats);
    Ok(0)
}
