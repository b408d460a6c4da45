//! The descriptor (Virtual Disk Format 1.1, "The Descriptor File"): the text that names the
//! disk's extents, its createType, its content id (CID) and its parent's.

use rehost_core::error::{Ctx, Result};

/// Extents a descriptor may name (a 2 TB disk in 2 GB extents has about 1000).
pub const MAX_EXTENTS: usize = 2048;
/// Largest descriptor read.
pub const MAX_DESCRIPTOR: u64 = 1 << 20;
/// `parentCID` of a disk without a parent.
pub const NO_PARENT: u32 = 0xffff_ffff;

/// How an extent stores its sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentType {
    /// Sectors in place in a file, from an offset (FLAT, and VMFS on ESXi).
    Flat,
    /// A hosted sparse extent (SPARSE).
    Sparse,
    /// No file: reads as zeros (ZERO).
    Zero,
}

/// One line of the extent description.
#[derive(Debug, Clone)]
pub struct Extent {
    /// How it stores its sectors.
    pub kind: ExtentType,
    /// Its size in sectors.
    pub sectors: u64,
    /// The file, as written (none for ZERO).
    pub file: Option<String>,
    /// For FLAT extents: the sector in the file where the extent starts.
    pub offset: u64,
}

/// The fields of a descriptor that reading needs.
#[derive(Debug, Clone, Default)]
pub struct Descriptor {
    /// Content id.
    pub cid: Option<u32>,
    /// The parent's content id (`ffffffff`: none).
    pub parent_cid: Option<u32>,
    /// `createType`.
    pub create_type: String,
    /// `parentFileNameHint`.
    pub parent_hint: Option<String>,
    /// The extents in order.
    pub extents: Vec<Extent>,
    /// The virtual controller the disk sits on (`ddb.adapterType`: `ide`, `buslogic`,
    /// `lsilogic`, `legacyESX`), as written.
    pub adapter_type: Option<String>,
}

impl Descriptor {
    /// Parses descriptor text (`at`: where it is in the file, for errors).
    pub fn parse(text: &[u8], ctx: &Ctx, at: u64) -> Result<Descriptor> {
        let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
        let text = String::from_utf8_lossy(&text[..end]);
        let mut d = Descriptor::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |why: &str| ctx.corrupt(at, format!("descriptor line {}: {why}: {line}", n + 1));
            if let Some((key, value)) = line.split_once('=').filter(|(k, _)| !k.contains('"')) {
                let value = value.trim().trim_matches('"');
                let hex =
                    || u32::from_str_radix(value, 16).map_err(|_| bad("not a hexadecimal id"));
                match key.trim() {
                    "CID" => d.cid = Some(hex()?),
                    "parentCID" => d.parent_cid = Some(hex()?),
                    "createType" => d.create_type = value.to_string(),
                    "parentFileNameHint" => d.parent_hint = Some(value.to_string()),
                    "ddb.adapterType" => d.adapter_type = Some(value.to_string()),
                    _ => {}
                }
                continue;
            }
            if d.extents.len() >= MAX_EXTENTS {
                return Err(bad(&format!("more than {MAX_EXTENTS} extents")));
            }
            let extent = parse_extent(line).map_err(|why| match why {
                BadExtent::Unsupported(why) => {
                    ctx.unsupported(at, format!("descriptor line {}: {why}", n + 1))
                }
                BadExtent::Malformed(why) => bad(&why),
            })?;
            d.extents.push(extent);
        }
        if d.extents.is_empty() {
            return Err(ctx.corrupt(at, "the descriptor names no extent"));
        }
        Ok(d)
    }
}

/// Why an extent line is not read.
enum BadExtent {
    /// A well-formed line of an extent type rehost does not read.
    Unsupported(String),
    /// A line that is not an extent line.
    Malformed(String),
}

impl From<&str> for BadExtent {
    fn from(s: &str) -> BadExtent {
        BadExtent::Malformed(s.to_string())
    }
}

impl From<String> for BadExtent {
    fn from(s: String) -> BadExtent {
        BadExtent::Malformed(s)
    }
}

/// `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
fn parse_extent(line: &str) -> std::result::Result<Extent, BadExtent> {
    let (head, quoted) = match line.split_once('"') {
        Some((h, rest)) => (h, Some(rest)),
        None => (line, None),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let [access, sectors, kind] = words[..] else {
        return Err("not an extent line (access, size, type, file)".into());
    };
    if !["RW", "RDONLY", "NOACCESS"].contains(&access) {
        return Err(format!("unknown access {access}").into());
    }
    let sectors: u64 = sectors
        .parse()
        .map_err(|_| format!("size {sectors} is not a number"))?;
    let (file, tail) = match quoted {
        Some(rest) => {
            let (name, tail) = rest
                .split_once('"')
                .ok_or("file name without its closing quote")?;
            (Some(name.to_string()), tail.trim())
        }
        None => (None, ""),
    };
    let offset = if tail.is_empty() {
        0
    } else {
        tail.parse()
            .map_err(|_| format!("offset {tail} is not a number"))?
    };
    let kind = match kind {
        "FLAT" | "VMFS" => ExtentType::Flat,
        "SPARSE" => ExtentType::Sparse,
        "ZERO" => ExtentType::Zero,
        other => {
            return Err(BadExtent::Unsupported(format!(
                "extent type {other} is not read (FLAT, VMFS, SPARSE and ZERO are)"
            )))
        }
    };
    if kind != ExtentType::Zero && file.as_deref().is_none_or(str::is_empty) {
        return Err("the extent names no file".into());
    }
    Ok(Extent {
        kind,
        sectors,
        file,
        offset,
    })
}
