//! FILE records of the master file table and the attributes they hold.

use super::fixup;
use super::le::{u16_at, u32_at, u64_at, utf16_at};
use super::runlist::{self, Run};
use rehost_core::error::{Ctx, Result};

/// `$STANDARD_INFORMATION`
pub const AT_STANDARD_INFORMATION: u32 = 0x10;
/// `$ATTRIBUTE_LIST`
pub const AT_ATTRIBUTE_LIST: u32 = 0x20;
/// `$FILE_NAME`
pub const AT_FILE_NAME: u32 = 0x30;
/// `$VOLUME_NAME`
pub const AT_VOLUME_NAME: u32 = 0x60;
/// `$VOLUME_INFORMATION`
pub const AT_VOLUME_INFORMATION: u32 = 0x70;
/// `$DATA`
pub const AT_DATA: u32 = 0x80;
/// `$INDEX_ROOT`
pub const AT_INDEX_ROOT: u32 = 0x90;
/// `$INDEX_ALLOCATION`
pub const AT_INDEX_ALLOCATION: u32 = 0xA0;
/// `$BITMAP`
pub const AT_BITMAP: u32 = 0xB0;
/// `$REPARSE_POINT`
pub const AT_REPARSE_POINT: u32 = 0xC0;
/// End of the attributes of a record.
pub const AT_END: u32 = 0xFFFF_FFFF;

/// Attribute flag: the value is LZNT1-compressed.
pub const ATTR_COMPRESSED: u16 = 0x0001;
/// Attribute flag: the value is encrypted (EFS).
pub const ATTR_ENCRYPTED: u16 = 0x4000;
/// Attribute flag: the value is sparse.
pub const ATTR_SPARSE: u16 = 0x8000;

/// Record flag: the record is in use.
pub const MFT_RECORD_IN_USE: u16 = 0x0001;
/// Record flag: the record is a directory (has a `$I30` index).
pub const MFT_RECORD_IS_DIRECTORY: u16 = 0x0002;

/// A FILE record read from the MFT, fixups applied.
#[derive(Debug, Clone)]
pub struct Record {
    /// Record number.
    pub number: u64,
    /// Volume offset of the record, for messages.
    pub pos: u64,
    /// The record's bytes, fixups applied.
    pub data: Vec<u8>,
    /// Reuse count of the record.
    pub sequence: u16,
    /// Hard links to the record.
    pub link_count: u16,
    /// In use, directory.
    pub flags: u16,
    /// The base record of an extension record (0 for a base record).
    pub base_record: u64,
    first_attribute: usize,
    used: usize,
}

impl Record {
    /// Undoes the fixups of `data` and checks the header.
    pub fn parse(number: u64, mut data: Vec<u8>, pos: u64, ctx: &Ctx) -> Result<Record> {
        fixup::unprotect(&mut data, b"FILE", ctx, pos)
            .map_err(|e| ctx.corrupt(pos, format!("MFT record {number}: {}", e.kind)))?;
        let first_attribute = u16_at(&data, 0x14) as usize;
        let used = u32_at(&data, 0x18) as usize;
        if used > data.len() || first_attribute < 0x30 || first_attribute + 8 > used {
            return Err(ctx.corrupt(
                pos + 0x14,
                format!(
                    "MFT record {number}: attributes at {first_attribute} and used size {used} do not fit its {} bytes",
                    data.len()
                ),
            ));
        }
        Ok(Record {
            number,
            pos,
            sequence: u16_at(&data, 0x10),
            link_count: u16_at(&data, 0x12),
            flags: u16_at(&data, 0x16),
            base_record: u64_at(&data, 0x20) & 0x0000_FFFF_FFFF_FFFF,
            first_attribute,
            used,
            data,
        })
    }

    /// Whether the record is in use.
    pub fn in_use(&self) -> bool {
        self.flags & MFT_RECORD_IN_USE != 0
    }

    /// Parses every attribute of the record, in order.
    pub fn attributes(&self, total_clusters: u64, ctx: &Ctx) -> Result<Vec<Attribute>> {
        let mut out = Vec::new();
        let mut off = self.first_attribute;
        loop {
            let at = self.pos + off as u64;
            if off + 4 > self.used {
                return Err(ctx.corrupt(
                    at,
                    format!(
                        "MFT record {}: attributes run past its used size",
                        self.number
                    ),
                ));
            }
            let ty = u32_at(&self.data, off);
            if ty == AT_END {
                return Ok(out);
            }
            let len = u32_at(&self.data, off + 4) as usize;
            if len < 0x18 || len % 8 != 0 || off + len > self.used {
                return Err(ctx.corrupt(
                    at,
                    format!(
                        "MFT record {}: attribute {ty:#x} has length {len}",
                        self.number
                    ),
                ));
            }
            let bytes = &self.data[off..off + len];
            out.push(Attribute::parse(
                bytes,
                self.number,
                at,
                total_clusters,
                ctx,
            )?);
            off += len;
        }
    }
}

/// Where an attribute's value is.
#[derive(Debug, Clone)]
pub enum Body {
    /// The value is inside the record.
    Resident(Vec<u8>),
    /// The value is in clusters described by data runs.
    NonResident(NonResident),
}

/// The header of a non-resident attribute (one extent of it, when an attribute list splits
/// the value over several records).
#[derive(Debug, Clone)]
pub struct NonResident {
    /// First VCN this extent maps.
    pub start_vcn: u64,
    /// Last VCN this extent maps.
    pub last_vcn: u64,
    /// Compression unit as a power of two of clusters (0: not compressed).
    pub compression_unit: u8,
    /// Bytes allocated (first extent only).
    pub allocated_size: u64,
    /// Logical size of the value (first extent only).
    pub data_size: u64,
    /// Bytes written; beyond this the value reads as zeros (first extent only).
    pub initialized_size: u64,
    /// The runs of this extent.
    pub runs: Vec<Run>,
}

/// One attribute of a record.
#[derive(Debug, Clone)]
pub struct Attribute {
    /// Attribute type code.
    pub ty: u32,
    /// Attribute name (stream name for `$DATA`, `$I30` for directory indexes).
    pub name: String,
    /// Compressed, encrypted, sparse.
    pub flags: u16,
    /// Instance number, unique within the record.
    pub instance: u16,
    /// The record holding this attribute.
    pub record: u64,
    /// Volume offset of the attribute header, for messages.
    pub pos: u64,
    /// The value or its runs.
    pub body: Body,
}

impl Attribute {
    fn parse(b: &[u8], record: u64, pos: u64, total_clusters: u64, ctx: &Ctx) -> Result<Self> {
        let ty = u32_at(b, 0);
        let non_resident = b[8] != 0;
        let name_len = b[9] as usize;
        let name_off = u16_at(b, 10) as usize;
        let name = if name_len == 0 {
            String::new()
        } else {
            let units = utf16_at(b, name_off, name_len).ok_or_else(|| {
                ctx.corrupt(
                    pos,
                    format!("attribute {ty:#x} of record {record}: name outside the attribute"),
                )
            })?;
            String::from_utf16_lossy(&units)
        };
        let flags = u16_at(b, 12);
        let instance = u16_at(b, 14);
        let body = if !non_resident {
            let vlen = u32_at(b, 16) as usize;
            let voff = u16_at(b, 20) as usize;
            let value = voff
                .checked_add(vlen)
                .and_then(|end| b.get(voff..end))
                .ok_or_else(|| {
                    ctx.corrupt(
                        pos,
                        format!(
                            "attribute {ty:#x} of record {record}: value outside the attribute"
                        ),
                    )
                })?;
            Body::Resident(value.to_vec())
        } else {
            if b.len() < 0x40 {
                return Err(ctx.corrupt(
                    pos,
                    format!("attribute {ty:#x} of record {record}: header too short"),
                ));
            }
            let start_vcn = u64_at(b, 0x10);
            let last_vcn = u64_at(b, 0x18);
            let runs_off = u16_at(b, 0x20) as usize;
            let nr = NonResident {
                start_vcn,
                last_vcn,
                compression_unit: b[0x22],
                allocated_size: u64_at(b, 0x28),
                data_size: u64_at(b, 0x30),
                initialized_size: u64_at(b, 0x38),
                runs: match b.get(runs_off..) {
                    Some(rb) if runs_off >= 0x40 => {
                        runlist::decode(rb, start_vcn, total_clusters, ctx, pos + runs_off as u64)?
                    }
                    _ => {
                        return Err(ctx.corrupt(
                            pos + 0x20,
                            format!(
                            "attribute {ty:#x} of record {record}: data runs outside the attribute"
                        ),
                        ))
                    }
                },
            };
            let mapped: u64 = nr.runs.iter().map(|r| r.len).sum();
            let expect = last_vcn.wrapping_sub(start_vcn).wrapping_add(1);
            // An empty value has last VCN = start VCN - 1 and no runs.
            if mapped != expect && !(mapped == 0 && last_vcn.wrapping_add(1) == start_vcn) {
                return Err(ctx.corrupt(
                    pos + 0x10,
                    format!(
                        "attribute {ty:#x} of record {record}: VCNs {start_vcn}..={last_vcn} but runs map {mapped} clusters"
                    ),
                ));
            }
            Body::NonResident(nr)
        };
        Ok(Attribute {
            ty,
            name,
            flags,
            instance,
            record,
            pos,
            body,
        })
    }

    /// The value of a resident attribute.
    pub fn resident(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Resident(v) => Some(v),
            Body::NonResident(_) => None,
        }
    }
}
