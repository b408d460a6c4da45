//! The parent locator of a differencing disk (MS-VHDX 2.6.2.6) and the search for the parent.
//!
//! The item starts with a header (LocatorType, reserved, KeyValueCount), then 12-byte entries
//! (KeyOffset, ValueOffset, KeyLength, ValueLength) pointing at UTF-16LE strings inside the
//! item. The VHDX locator type holds `parent_linkage` (the parent's DataWriteGuid),
//! optionally `parent_linkage2`, and the paths `relative_path`, `volume_path` and
//! `absolute_win32_path`.

use super::fields::{guid, slice};
use crate::{parent_candidates, Container, Format, ParentOpener};
use rehost_core::error::{Ctx, ErrorKind, Location, Result};
use rehost_core::le::{u16_at, u32_at};
use std::path::Path;
use std::sync::Arc;
use uuid::{uuid, Uuid};

/// LocatorType of a VHDX parent.
const VHDX_LOCATOR: Uuid = uuid!("b04aefb7-d19e-4a81-b789-25b8e9445913");
/// The paths tried, in order.
const PATH_KEYS: [&str; 3] = ["relative_path", "absolute_win32_path", "volume_path"];

/// The key/value pairs of a VHDX parent locator.
#[derive(Debug, Clone)]
pub(super) struct Locator {
    pairs: Vec<(String, String)>,
}

impl Locator {
    /// The value of `key` (keys compare without regard to case).
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Parses the locator item `b`, whose table entry is at file offset `at`.
pub(super) fn parse(b: &[u8], at: u64, ctx: &Ctx) -> Result<Locator> {
    let kind = guid(b, 0);
    if kind != VHDX_LOCATOR {
        return Err(ctx.unsupported(at, format!("parent locator type {kind}")));
    }
    let count = usize::from(u16_at(b, 18));
    let mut pairs = Vec::with_capacity(count.min(b.len() / 12));
    for i in 0..count {
        let o = 20 + 12 * i;
        let Some(e) = slice(b, o, 12) else {
            return Err(ctx.corrupt(at, "parent locator entries run past the item"));
        };
        let (ko, vo) = (u32_at(e, 0) as usize, u32_at(e, 4) as usize);
        let (kl, vl) = (usize::from(u16_at(e, 8)), usize::from(u16_at(e, 10)));
        match (slice(b, ko, kl), slice(b, vo, vl)) {
            (Some(k), Some(v)) => pairs.push((utf16(k), utf16(v))),
            _ => {
                return Err(ctx.corrupt(
                    at,
                    format!("parent locator entry {i} points outside the item"),
                ))
            }
        }
    }
    if pairs.iter().all(|(k, _)| k != "parent_linkage") {
        return Err(ctx.corrupt(at, "parent locator has no parent_linkage"));
    }
    Ok(Locator { pairs })
}

/// A linkage value (`{GUID}`) as a GUID, if it is one.
fn linkage(value: &str) -> Option<Uuid> {
    Uuid::parse_str(value.trim().trim_matches(['{', '}'])).ok()
}

/// Finds and opens the parent of the differencing disk at `child` (its paths tried in the
/// order relative, absolute, volume) and checks its identity: the parent's DataWriteGuid
/// must be the child's parent_linkage (or parent_linkage2). A candidate with another
/// identity is passed over for the next; when none matches, the error names both GUIDs.
pub(super) fn open_parent(
    locator: &Locator,
    child: &Path,
    logical_sector_size: u32,
    parents: &ParentOpener,
    ctx: &Ctx,
) -> Result<Arc<dyn Container>> {
    let wanted: Vec<Uuid> = ["parent_linkage", "parent_linkage2"]
        .iter()
        .filter_map(|k| locator.get(k).and_then(linkage))
        .collect();
    if wanted.is_empty() {
        return Err(ctx.corrupt(0, "parent_linkage of the parent locator is not a GUID"));
    }
    let wanted_text = wanted
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    let mut tried = Vec::new();
    let mut mismatch = None;
    for key in PATH_KEYS {
        let Some(written) = locator.get(key) else {
            continue;
        };
        for candidate in parent_candidates(child, written) {
            if tried.contains(&candidate) {
                continue;
            }
            tried.push(candidate.clone());
            if !candidate.is_file() {
                continue;
            }
            let parent = parents.open_parent(ctx, &candidate)?;
            let info = parent.info();
            let have = info
                .data_write_guid
                .as_deref()
                .and_then(|g| Uuid::parse_str(g).ok());
            if info.format != Format::Vhdx || !have.is_some_and(|h| wanted.contains(&h)) {
                let have = have.map_or_else(
                    || format!("no DataWriteGuid ({})", info.format),
                    |h| h.to_string(),
                );
                mismatch.get_or_insert_with(|| {
                    ctx.corrupt(
                        0,
                        format!(
                            "parent {} has DataWriteGuid {have}, but this disk links to \
                             {wanted_text}: it is not this disk's parent",
                            candidate.display()
                        ),
                    )
                });
                continue;
            }
            if info.logical_sector_size != logical_sector_size {
                return Err(ctx.corrupt(
                    0,
                    format!(
                        "parent {} has {}-byte logical sectors, this disk {logical_sector_size}",
                        candidate.display(),
                        info.logical_sector_size
                    ),
                ));
            }
            return Ok(parent);
        }
    }
    if let Some(e) = mismatch {
        return Err(e);
    }
    let looked = tried
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(ctx.error(
        Location::Offset(0),
        ErrorKind::NotFound(format!(
            "the parent of this differencing disk (DataWriteGuid {wanted_text}); looked for: {}",
            if looked.is_empty() {
                "no path in the locator"
            } else {
                &looked
            }
        )),
    ))
}
