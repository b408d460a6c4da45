//! The security a new file takes, and where its record keeps it.
//!
//! NTFS 3.x keeps security descriptors once, in `$Secure` (the `$SDS` stream, indexed by
//! `$SII` and `$SDH`), and a file's 72-byte `$STANDARD_INFORMATION` names one by its
//! security ID (offset 0x34); that is what Windows gives the files it creates. Older
//! volumes, and the metafiles and root directory that format writes, keep a
//! `$SECURITY_DESCRIPTOR` attribute (0x50) in the record instead, with a 48-byte
//! `$STANDARD_INFORMATION`.
//!
//! A new file takes a security ID where a sibling file or its directory has one, and then
//! no descriptor of its own. Otherwise it takes a copy of the sibling's or the directory's
//! descriptor, as before: rehost does not add descriptors to `$Secure` (that needs inserts
//! into the `$SII` and `$SDH` view indexes, which its B+ tree code, written for `$I30`,
//! does not do). A descriptor is resident when the record still has room for a
//! non-resident `$DATA` beside it, and else is stored in clusters of its own, which NTFS
//! allows for attribute 0x50 (mkntfs writes the root's so): a 255-character name and a
//! 228-byte descriptor no longer leave the data's runs without room.

use super::record::{non_resident, resident, Sizes};
use super::runs;
use super::Writer;
use crate::file::File;
use crate::le::u32_at;
use crate::record::{Body, AT_STANDARD_INFORMATION};
use rehost_core::error::Result;

/// `$SECURITY_DESCRIPTOR`
pub const AT_SECURITY_DESCRIPTOR: u32 = 0x50;
/// Room kept free in a new record for its `$DATA` when it goes non-resident: the header
/// (0x40) and a few runs.
const DATA_ROOM: usize = 0x40 + 0x20;
/// Largest descriptor copied (a self-relative descriptor is far smaller in practice).
const MAX_DESCRIPTOR: usize = 64 << 10;

/// The security a file's `$STANDARD_INFORMATION` and records give it.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Length of `$STANDARD_INFORMATION` (0x30 or 0x48).
    pub si_len: usize,
    /// Owner ID (0x30 of a 72-byte `$STANDARD_INFORMATION`).
    pub owner_id: u32,
    /// Security ID into `$Secure` (0x34), 0 for none.
    pub security_id: u32,
    /// The value of a `$SECURITY_DESCRIPTOR` to copy, when there is no security ID.
    pub descriptor: Option<Vec<u8>>,
}

/// The `$STANDARD_INFORMATION` value of a file (empty when it has none resident).
fn si(f: &File) -> &[u8] {
    f.attributes
        .iter()
        .find(|a| a.ty == AT_STANDARD_INFORMATION)
        .and_then(|a| a.resident())
        .unwrap_or(&[])
}

/// The security ID in a `$STANDARD_INFORMATION` value, if it has one.
fn security_id(si: &[u8]) -> Option<u32> {
    (si.len() >= 0x48)
        .then(|| u32_at(si, 0x34))
        .filter(|id| *id != 0)
}

impl Writer {
    /// The security a new file in `dir` takes: the security ID of `sibling` (a file of
    /// `dir`) or else of `dir`, or else a copy of the descriptor of `sibling` or `dir`.
    pub(crate) fn new_file_security(&self, sibling: Option<&File>, dir: &File) -> Result<Security> {
        let with_id = [sibling, Some(dir)]
            .into_iter()
            .flatten()
            .find(|f| security_id(si(f)).is_some());
        if let Some(f) = with_id {
            let si = si(f);
            return Ok(Security {
                si_len: 0x48,
                owner_id: u32_at(si, 0x30),
                security_id: u32_at(si, 0x34),
                descriptor: None,
            });
        }
        let src = sibling.unwrap_or(dir);
        let si = si(src);
        let wide = si.len() >= 0x48;
        Ok(Security {
            si_len: if wide { 0x48 } else { 0x30 },
            owner_id: if wide { u32_at(si, 0x30) } else { 0 },
            security_id: 0,
            descriptor: self.descriptor(src)?,
        })
    }

    /// The value of `f`'s own resident `$SECURITY_DESCRIPTOR`. A non-resident one (mkntfs
    /// gives the root a 4 KiB descriptor so) is not copied, as before: new files there
    /// have no descriptor of their own.
    fn descriptor(&self, f: &File) -> Result<Option<Vec<u8>>> {
        Ok(f.attributes
            .iter()
            .find(|a| a.ty == AT_SECURITY_DESCRIPTOR && a.name.is_empty())
            .and_then(|a| match &a.body {
                Body::Resident(v) if v.len() <= MAX_DESCRIPTOR => Some(v.clone()),
                _ => None,
            }))
    }

    /// The `$SECURITY_DESCRIPTOR` attribute of a new record holding `value`, whose other
    /// attributes take `used` of its `free` bytes: resident when a non-resident `$DATA`
    /// still fits beside it, else in clusters of its own.
    pub(crate) fn descriptor_attr(
        &mut self,
        value: &[u8],
        used: usize,
        free: usize,
        path: &str,
    ) -> Result<Vec<u8>> {
        let inline = resident(AT_SECURITY_DESCRIPTOR, &[], value, 0);
        if used + inline.len() + DATA_ROOM <= free {
            return Ok(inline);
        }
        let count = (value.len() as u64).div_ceil(self.vol.cluster).max(1);
        let pieces = self.take_clusters(count, None)?;
        let mut map = Vec::new();
        runs::append(&mut map, &pieces);
        self.vol.write_runs(&map, 0, value, path)?;
        let len = value.len() as u64;
        Ok(non_resident(
            AT_SECURITY_DESCRIPTOR,
            &[],
            0,
            count,
            &runs::encode(&map),
            Sizes {
                allocated: count * self.vol.cluster,
                data: len,
                initialized: len,
            },
        ))
    }
}
