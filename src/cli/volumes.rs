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
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<&'a Verify>,
}

/// What `--verify` found: the media's hashes, and each stored hash held to its own.
#[derive(Serialize)]
struct Verify {
    #[serde(skip_serializing_if = "Option::is_none")]
    computed: Option<rehost::disk::ewf::MediaDigests>,
    /// Each stored hash: algorithm, stored, computed, whether they match.
    checks: Vec<HashCheck>,
    /// Every stored hash matched (false when none is stored or the media could not be read).
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct HashCheck {
    algorithm: String,
    stored: String,
    computed: String,
    matches: bool,
}

/// Hashes the whole media of `path` (read without a block cache: every byte once) and
/// compares the digests with the ones the container stores.
fn verify(path: &Path, info: &rehost::disk::DiskInfo) -> Verify {
    let opts = rehost::disk::OpenOptions {
        cache_blocks: 0,
        ..Default::default()
    };
    let digests =
        rehost::disk::open(path, &opts).and_then(|d| rehost::disk::ewf::digest_media(&d, |_| {}));
    let computed = match digests {
        Ok(d) => d,
        Err(e) => {
            return Verify {
                computed: None,
                checks: Vec::new(),
                verified: false,
                error: Some(format!("{e:#}")),
            }
        }
    };
    let checks: Vec<HashCheck> = info
        .stored_hashes
        .iter()
        .map(|h| {
            let mine = if h.algorithm == "MD5" {
                &computed.md5
            } else {
                &computed.sha1
            };
            HashCheck {
                algorithm: h.algorithm.clone(),
                stored: h.hex.clone(),
                computed: mine.clone(),
                matches: h.hex.eq_ignore_ascii_case(mine),
            }
        })
        .collect();
    Verify {
        verified: !checks.is_empty() && checks.iter().all(|c| c.matches),
        computed: Some(computed),
        checks,
        error: None,
    }
}

fn print_verify(v: &Verify) {
    if let Some(e) = &v.error {
        println!("verify: FAILED: the media could not be read whole: {e}");
        return;
    }
    for c in &v.checks {
        if c.matches {
            println!("verify: {} {} match", c.algorithm, c.computed);
        } else {
            println!(
                "verify: {} MISMATCH: stored {}, computed {}",
                c.algorithm, c.stored, c.computed
            );
        }
    }
    if let (true, Some(d)) = (v.checks.is_empty(), &v.computed) {
        println!(
            "verify: the image stores no hash to compare with; computed MD5 {}, SHA-1 {}",
            d.md5, d.sha1
        );
    }
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

pub fn run(path: &Path, json: bool, verify_media: bool, stats: bool) -> Result<i32> {
    let img = Image::open(path)?;
    let info = img.info();
    let checked = verify_media.then(|| verify(path, info));
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
            verify: checked.as_ref(),
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
        for h in &info.stored_hashes {
            println!("  stored {}: {}", h.algorithm, h.hex);
        }
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
        if let Some(v) = &checked {
            print_verify(v);
        }
    }
    report_stats(&img, stats);
    // A table entry that could not be used or a file system that could not be read is an
    // error the user has to see in the exit code too, though the rest was listed.
    let unreadable = filesystems.iter().any(|f| f.error.is_some());
    // With --verify, a mismatch or a media that cannot be read whole is an error too.
    let failed = checked
        .as_ref()
        .is_some_and(|v| v.error.is_some() || v.checks.iter().any(|c| !c.matches));
    Ok(i32::from(
        unreadable || failed || !img.layout().errors.is_empty(),
    ))
}

/// "vhdx dynamic", "vmdk dynamic (streamOptimized)", "qcow2 differencing (v3, zstd)".
fn container_kind(info: &rehost::disk::DiskInfo) -> String {
    let mut kind = format!("{} {:?}", info.format, info.subformat).to_lowercase();
    if let Some(v) = &info.variant {
        kind.push_str(&format!(" ({v})"));
    }
    kind
}
