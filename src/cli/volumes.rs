//! `rehost volumes`: the partition layout of an image.

use super::image::{human, report_stats, shadow_copy_lines};
use anyhow::Result;
use rehost::fs::Facts;
use rehost::fs::Image;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Report<'a> {
    image: String,
    disk: &'a rehost::disk::DiskInfo,
    layout: &'a rehost::volume::Layout,
    filesystems: &'a [FsReport],
}

/// The facts of one volume's file system, or why they could not be read.
#[derive(Serialize)]
struct FsReport {
    volume: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    facts: Option<Facts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn describe(f: &Facts) -> String {
    match f {
        Facts::Ntfs(n) => {
            let mut s = format!(
                "NTFS {}, label {:?}, serial {}, {}-byte clusters",
                n.version.as_deref().unwrap_or("?"),
                n.label.as_deref().unwrap_or(""),
                n.serial,
                n.cluster_size
            );
            s.push_str(if n.dirty { ", dirty" } else { ", clean" });
            s.push_str(if n.logfile.clean {
                ", $LogFile clean"
            } else {
                ", $LogFile needs replay"
            });
            match &n.hibernation {
                Some(h) if h.active => s.push_str(&format!(", hibernated ({})", h.signature)),
                Some(_) => s.push_str(", hiberfil.sys inactive"),
                None => {}
            }
            s
        }
        Facts::Fat {
            fat_type,
            label,
            serial,
        } => format!("{fat_type}, label {label:?}, serial {serial}"),
    }
}

pub fn run(path: &Path, json: bool, stats: bool) -> Result<i32> {
    let img = Image::open(path)?;
    let info = img.info();
    let filesystems: Vec<FsReport> = img
        .layout()
        .volumes
        .iter()
        .filter(|v| v.content.is_readable())
        .map(|v| match img.fs(v.index).and_then(|fs| fs.facts()) {
            Ok(f) => FsReport {
                volume: v.index,
                facts: Some(f),
                error: None,
            },
            Err(e) => FsReport {
                volume: v.index,
                facts: None,
                error: Some(format!("{e:#}")),
            },
        })
        .collect();
    if json {
        let r = Report {
            image: path.display().to_string(),
            disk: info,
            layout: img.layout(),
            filesystems: &filesystems,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let mut kind = container_kind(info);
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
        // The chain below it, child to base.
        let mut parent = info.parent.as_deref();
        while let Some(p) = parent {
            println!("  parent: {} ({})", p.path, container_kind(p));
            parent = p.parent.as_deref();
        }
        let l = img.layout();
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
            "{:>3}  {:>14}  {:>10}  {:<24}  {:<9}  flags",
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
                "{:>3}  {:>14}  {:>10}  {:<24}  {:<9}  {}",
                v.index,
                v.offset,
                human(v.size),
                if v.part_type.starts_with("0x") {
                    format!("{} {}", v.part_type, v.type_name)
                } else {
                    v.type_name.clone()
                },
                v.content.name(),
                flags.join(" ")
            );
        }
        for f in &filesystems {
            match (&f.facts, &f.error) {
                (Some(facts), _) => {
                    println!("{:>3}  {}", f.volume, describe(facts));
                    if let Facts::Ntfs(n) = facts {
                        for l in n.shadow_copies.iter().flat_map(shadow_copy_lines) {
                            println!("{:>3}    {l}", f.volume);
                        }
                    }
                }
                (None, Some(e)) => println!("{:>3}  unreadable: {e}", f.volume),
                _ => {}
            }
        }
        for n in info.notes.iter().chain(&l.notes) {
            println!("note: {n}");
        }
        for e in &l.errors {
            println!("error: {e}");
        }
    }
    report_stats(&img, stats);
    // A table entry that could not be used or a file system that could not be read is an
    // error the user has to see in the exit code too, though the rest was listed.
    let unreadable = filesystems.iter().any(|f| f.error.is_some());
    Ok(i32::from(unreadable || !img.layout().errors.is_empty()))
}

/// "vhdx dynamic", "vmdk dynamic (streamOptimized)", "qcow2 differencing (v3, zstd)".
fn container_kind(info: &rehost::disk::DiskInfo) -> String {
    let mut kind = format!("{} {:?}", info.format, info.subformat).to_lowercase();
    if let Some(v) = &info.variant {
        kind.push_str(&format!(" ({v})"));
    }
    kind
}
