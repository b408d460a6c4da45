//! A file: its base record and extension records, attributes gathered through
//! `$ATTRIBUTE_LIST`.

use super::le::{u16_at, u64_at};
use super::names::{FileName, StandardInformation};
use super::record::{
    Attribute, Body, Record, AT_ATTRIBUTE_LIST, AT_DATA, AT_FILE_NAME, AT_STANDARD_INFORMATION,
    MFT_RECORD_IS_DIRECTORY,
};
use super::stream::StreamDesc;
use rehost_core::error::{Ctx, Result};

/// Most extension records one file may have (a hostile attribute list is refused beyond it).
pub const MAX_EXTENSIONS: usize = 4096;

/// A file (or directory): every attribute of its base and extension records.
#[derive(Debug, Clone)]
pub struct File {
    /// Record number of the base record.
    pub record: u64,
    /// Sequence number of the base record.
    pub sequence: u16,
    /// Record flags.
    pub flags: u16,
    /// Hard links.
    pub link_count: u16,
    /// All attributes, base record first.
    pub attributes: Vec<Attribute>,
}

/// One entry of an `$ATTRIBUTE_LIST`.
#[derive(Debug, Clone)]
pub struct ListEntry {
    /// Attribute type.
    pub ty: u32,
    /// First VCN of the extent in that record.
    pub start_vcn: u64,
    /// The record holding the extent.
    pub record: u64,
}

/// Parses an `$ATTRIBUTE_LIST` value.
pub fn parse_attribute_list(b: &[u8], ctx: &Ctx, what: &str) -> Result<Vec<ListEntry>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 0x1A <= b.len() {
        let len = u16_at(b, off + 4) as usize;
        if len < 0x1A || off + len > b.len() {
            return Err(ctx.corrupt_at_path(
                what,
                format!("$ATTRIBUTE_LIST entry at {off} has length {len}"),
            ));
        }
        out.push(ListEntry {
            ty: super::le::u32_at(b, off),
            start_vcn: u64_at(b, off + 8),
            record: u64_at(b, off + 0x10) & 0x0000_FFFF_FFFF_FFFF,
        });
        off += len;
    }
    Ok(out)
}

impl File {
    /// A file from its base record's attributes (extension records added by the caller).
    pub fn from_base(record: &Record, attributes: Vec<Attribute>) -> File {
        File {
            record: record.number,
            sequence: record.sequence,
            flags: record.flags,
            link_count: record.link_count,
            attributes,
        }
    }

    /// Whether the record is a directory.
    pub fn is_dir(&self) -> bool {
        self.flags & MFT_RECORD_IS_DIRECTORY != 0
    }

    /// The `$ATTRIBUTE_LIST` attribute, if the file has one.
    pub fn attribute_list(&self) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.ty == AT_ATTRIBUTE_LIST)
    }

    /// Every `$FILE_NAME` of the file.
    pub fn names(&self) -> Vec<FileName> {
        self.attributes
            .iter()
            .filter(|a| a.ty == AT_FILE_NAME)
            .filter_map(|a| a.resident().and_then(FileName::parse))
            .collect()
    }

    /// The best name for display: Win32 or POSIX before DOS.
    pub fn best_name(&self) -> Option<FileName> {
        let names = self.names();
        names
            .iter()
            .find(|n| n.namespace != super::names::Namespace::Dos)
            .or(names.first())
            .cloned()
    }

    /// `$STANDARD_INFORMATION`, if present and well formed.
    pub fn standard_information(&self) -> Option<StandardInformation> {
        self.attributes
            .iter()
            .find(|a| a.ty == AT_STANDARD_INFORMATION)
            .and_then(|a| a.resident())
            .and_then(StandardInformation::parse)
    }

    /// The attribute `ty` named `name` put together from its extents, if present.
    pub fn stream_desc(
        &self,
        ty: u32,
        name: &str,
        ctx: &Ctx,
        what: &str,
    ) -> Result<Option<StreamDesc>> {
        let extents: Vec<&Attribute> = self
            .attributes
            .iter()
            .filter(|a| a.ty == ty && a.name == name)
            .collect();
        if extents.is_empty() {
            return Ok(None);
        }
        StreamDesc::from_extents(extents, what, ctx).map(Some)
    }

    /// Names of the file's `$DATA` streams ("" is the unnamed one), each once.
    pub fn data_stream_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for a in self.attributes.iter().filter(|a| a.ty == AT_DATA) {
            let first_extent = match &a.body {
                Body::Resident(_) => true,
                Body::NonResident(n) => n.start_vcn == 0,
            };
            if first_extent && !names.contains(&a.name) {
                names.push(a.name.clone());
            }
        }
        names
    }
}
