//! A FILE record being edited: its header fields, its attributes as byte ranges that can be
//! removed, replaced and inserted in order, and the update sequence array applied again
//! (with the update sequence number bumped) when it is written.
//!
//! Header (NTFS 3.1): `FILE`, update sequence array offset and count, `$LogFile` sequence
//! number (0x08), sequence number (0x10), link count (0x12), first attribute offset (0x14),
//! flags (0x16), bytes in use (0x18), bytes allocated (0x1C), base record (0x20), next
//! attribute instance (0x28), record number (0x2C), then the array at 0x30. Attributes
//! follow, sorted by type, and end with the type 0xFFFFFFFF.

use crate::fixup::STRIDE;
use crate::le::{u16_at, u32_at};
use crate::record::{AT_END, MFT_RECORD_IN_USE};
use rehost_core::error::{Ctx, Result};

/// Offset of the update sequence array in records this writer formats.
const USA_OFFSET: usize = 0x30;

/// An attribute's place in a record.
#[derive(Debug, Clone)]
pub struct AttrAt {
    /// Offset of the attribute header in the record.
    pub off: usize,
    /// Attribute type.
    pub ty: u32,
    /// Length of the attribute, header included.
    pub len: usize,
    /// The attribute name, UTF-16.
    pub name: Vec<u16>,
    /// Non-resident.
    pub non_resident: bool,
    /// Instance number.
    pub instance: u16,
}

/// A FILE record, fixups removed, ready to be changed.
#[derive(Debug, Clone)]
pub struct RecordBuf {
    /// Record number.
    pub number: u64,
    /// The record bytes without fixups.
    pub data: Vec<u8>,
}

/// Little-endian stores shared by the writer's builders (the slice must hold the field).
pub mod put {
    /// Stores a `u16` at `o`.
    pub fn u16(b: &mut [u8], o: usize, v: u16) {
        b[o..o + 2].copy_from_slice(&v.to_le_bytes());
    }
    /// Stores a `u32` at `o`.
    pub fn u32(b: &mut [u8], o: usize, v: u32) {
        b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    /// Stores a `u64` at `o`.
    pub fn u64(b: &mut [u8], o: usize, v: u64) {
        b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
}
use put::{u16 as put16, u32 as put32, u64 as put64};

/// Rounds up to a multiple of 8.
pub fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl RecordBuf {
    /// A record read from the MFT (fixups already removed by the reader).
    pub fn from_plain(number: u64, data: Vec<u8>) -> Self {
        RecordBuf { number, data }
    }

    /// An empty, unused record of `size` bytes: header, update sequence array and the end
    /// marker; `sequence` and `usn` carry on from what the slot held before.
    pub fn format(number: u64, size: usize, sequence: u16, usn: u16) -> Self {
        let mut d = vec![0u8; size];
        d[..4].copy_from_slice(b"FILE");
        let strides = size / STRIDE;
        put16(&mut d, 4, USA_OFFSET as u16);
        put16(&mut d, 6, (strides + 1) as u16);
        put16(&mut d, 0x10, sequence.max(1));
        let first = align8(USA_OFFSET + 2 * (strides + 1));
        put16(&mut d, 0x14, first as u16);
        put32(&mut d, 0x1C, size as u32);
        put32(&mut d, 0x2C, number as u32);
        put16(&mut d, USA_OFFSET, usn);
        put32(&mut d, first, AT_END);
        put32(&mut d, 0x18, (first + 8) as u32);
        RecordBuf { number, data: d }
    }

    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        u16_at(&self.data, 0x10)
    }
    /// Sets the sequence number.
    pub fn set_sequence(&mut self, v: u16) {
        put16(&mut self.data, 0x10, v)
    }
    /// Hard link count.
    pub fn link_count(&self) -> u16 {
        u16_at(&self.data, 0x12)
    }
    /// Sets the hard link count.
    pub fn set_link_count(&mut self, v: u16) {
        put16(&mut self.data, 0x12, v)
    }
    /// Record flags (in use, directory).
    pub fn flags(&self) -> u16 {
        u16_at(&self.data, 0x16)
    }
    /// Sets the record flags.
    pub fn set_flags(&mut self, v: u16) {
        put16(&mut self.data, 0x16, v)
    }
    /// Whether the record is in use.
    pub fn in_use(&self) -> bool {
        self.flags() & MFT_RECORD_IN_USE != 0
    }
    /// Base record reference (0 for a base record).
    pub fn base_record(&self) -> u64 {
        u64::from_le_bytes(self.data[0x20..0x28].try_into().unwrap_or([0; 8]))
    }
    /// Sets the base record reference.
    pub fn set_base_record(&mut self, v: u64) {
        put64(&mut self.data, 0x20, v)
    }
    fn first_attribute(&self) -> usize {
        u16_at(&self.data, 0x14) as usize
    }
    /// Bytes in use, end marker included.
    pub fn used(&self) -> usize {
        u32_at(&self.data, 0x18) as usize
    }
    /// Bytes the record may hold.
    pub fn allocated(&self) -> usize {
        (u32_at(&self.data, 0x1C) as usize).min(self.data.len())
    }
    /// Bytes still free.
    pub fn free(&self) -> usize {
        self.allocated().saturating_sub(self.used())
    }
    /// Offset of the end marker.
    fn end_offset(&self) -> usize {
        self.used() - 8
    }

    /// The attributes in record order. `ctx` names the record in errors.
    pub fn attrs(&self, ctx: &Ctx) -> Result<Vec<AttrAt>> {
        let mut out = Vec::new();
        let mut off = self.first_attribute();
        let used = self.used();
        if used > self.data.len() || used < off + 8 {
            return Err(self.bad(ctx, off, "used size is outside the record"));
        }
        loop {
            if off + 4 > used {
                return Err(self.bad(ctx, off, "attributes run past the used size"));
            }
            let ty = u32_at(&self.data, off);
            if ty == AT_END {
                if off + 8 != used {
                    return Err(self.bad(
                        ctx,
                        off,
                        "end marker is not at the end of the used bytes",
                    ));
                }
                return Ok(out);
            }
            let len = u32_at(&self.data, off + 4) as usize;
            if len < 0x18 || len % 8 != 0 || off + len > used - 8 {
                return Err(self.bad(ctx, off, &format!("attribute {ty:#x} has length {len}")));
            }
            let name_len = self.data[off + 9] as usize;
            let name_off = u16_at(&self.data, off + 10) as usize;
            if name_off + 2 * name_len > len {
                return Err(self.bad(ctx, off, "attribute name outside the attribute"));
            }
            let name = (0..name_len)
                .map(|i| u16_at(&self.data, off + name_off + 2 * i))
                .collect();
            out.push(AttrAt {
                off,
                ty,
                len,
                name,
                non_resident: self.data[off + 8] != 0,
                instance: u16_at(&self.data, off + 14),
            });
            off += len;
        }
    }

    fn bad(&self, ctx: &Ctx, off: usize, what: &str) -> rehost_core::Error {
        ctx.corrupt_at_path(
            &format!("MFT record {}", self.number),
            format!("at record offset {off:#x}: {what}"),
        )
    }

    /// The first attribute of type `ty` named `name`.
    pub fn find(&self, ty: u32, name: &[u16], ctx: &Ctx) -> Result<Option<AttrAt>> {
        Ok(self
            .attrs(ctx)?
            .into_iter()
            .find(|a| a.ty == ty && a.name == name))
    }

    /// The bytes of an attribute.
    pub fn bytes(&self, a: &AttrAt) -> &[u8] {
        &self.data[a.off..a.off + a.len]
    }

    /// The value of a resident attribute.
    pub fn value(&self, a: &AttrAt) -> Option<&[u8]> {
        if a.non_resident {
            return None;
        }
        let b = self.bytes(a);
        let vlen = u32_at(b, 16) as usize;
        let voff = u16_at(b, 20) as usize;
        b.get(voff..voff.checked_add(vlen)?)
    }

    /// Rewrites the value of a resident attribute in place; false, changing nothing, when
    /// `value` does not have the old value's length.
    pub fn set_value(&mut self, a: &AttrAt, value: &[u8]) -> bool {
        if a.non_resident {
            return false;
        }
        let b = &self.data[a.off..a.off + a.len];
        let vlen = u32_at(b, 16) as usize;
        let voff = u16_at(b, 20) as usize;
        if vlen != value.len() || voff.checked_add(vlen).is_none_or(|e| e > a.len) {
            return false;
        }
        let at = a.off + voff;
        self.data[at..at + vlen].copy_from_slice(value);
        true
    }

    /// Whether replacing `old_len` bytes by `new_len` bytes keeps the record within its size.
    pub fn fits(&self, old_len: usize, new_len: usize) -> bool {
        self.used() - old_len + new_len <= self.allocated()
    }

    /// Replaces the bytes `off..off + old_len` with `new`, moving what follows.
    fn splice(&mut self, off: usize, old_len: usize, new: &[u8]) -> bool {
        let used = self.used();
        let new_used = used - old_len + new.len();
        if new_used > self.allocated() {
            return false;
        }
        let tail: Vec<u8> = self.data[off + old_len..used].to_vec();
        self.data[off..off + new.len()].copy_from_slice(new);
        self.data[off + new.len()..new_used].copy_from_slice(&tail);
        if new_used < used {
            self.data[new_used..used].fill(0);
        }
        put32(&mut self.data, 0x18, new_used as u32);
        true
    }

    /// Replaces an attribute by `new` (a whole attribute, instance included). Returns false,
    /// changing nothing, when the record would overflow.
    pub fn replace(&mut self, a: &AttrAt, new: &[u8]) -> bool {
        self.splice(a.off, a.len, new)
    }

    /// Removes an attribute.
    pub fn remove(&mut self, a: &AttrAt) {
        self.splice(a.off, a.len, &[]);
    }

    /// Inserts the attributes of a new record, `what` naming it when they do not fit.
    pub fn insert_all(&mut self, attrs: Vec<Vec<u8>>, ctx: &Ctx, what: &str) -> Result<()> {
        for a in attrs {
            if self.insert(a, ctx)?.is_none() {
                return Err(
                    ctx.unsupported(0, format!("{what}: a new record cannot hold its names"))
                );
            }
        }
        Ok(())
    }

    /// Inserts a whole attribute after the attributes of lower or equal type (so after an
    /// existing one of the same type), giving it the record's next instance number.
    /// Returns the instance, or `None`, changing nothing, when the record would overflow.
    pub fn insert(&mut self, mut attr: Vec<u8>, ctx: &Ctx) -> Result<Option<u16>> {
        let ty = u32_at(&attr, 0);
        let name_len = attr[9] as usize;
        let name_off = u16_at(&attr, 10) as usize;
        let name: Vec<u16> = (0..name_len)
            .map(|i| u16_at(&attr, name_off + 2 * i))
            .collect();
        let at = self
            .attrs(ctx)?
            .iter()
            .find(|a| a.ty > ty || (a.ty == ty && !a.name.is_empty() && a.name > name))
            .map(|a| a.off)
            .unwrap_or_else(|| self.end_offset());
        let instance = u16_at(&self.data, 0x28);
        put16(&mut attr, 14, instance);
        if !self.splice(at, 0, &attr) {
            return Ok(None);
        }
        put16(&mut self.data, 0x28, instance.wrapping_add(1));
        Ok(Some(instance))
    }

    /// The record with its update sequence array applied, the update sequence number bumped
    /// (skipping 0 and 0xFFFF, as Windows does). The bumped number is kept in `self`.
    pub fn protect(&mut self) -> Vec<u8> {
        let usa_ofs = u16_at(&self.data, 4) as usize;
        let count = u16_at(&self.data, 6) as usize;
        let mut usn = u16_at(&self.data, usa_ofs).wrapping_add(1);
        if usn == 0 || usn == 0xFFFF {
            usn = 1;
        }
        put16(&mut self.data, usa_ofs, usn);
        apply_fixups(&mut self.data, usa_ofs, count, usn)
    }
}

/// The bytes of a multi-sector record with its update sequence array applied: the last two
/// bytes of every 512-byte stride saved into the array and replaced by `usn`.
pub fn apply_fixups(plain: &mut [u8], usa_ofs: usize, count: usize, usn: u16) -> Vec<u8> {
    let mut out = plain.to_vec();
    for i in 1..count {
        let end = i * STRIDE - 2;
        if end + 2 > out.len() {
            break;
        }
        let saved = usa_ofs + 2 * i;
        out[saved..saved + 2].copy_from_slice(&plain[end..end + 2]);
        plain.copy_within(end..end + 2, saved);
        out[end..end + 2].copy_from_slice(&usn.to_le_bytes());
    }
    out
}

/// A resident attribute: header, name, value (at an 8-aligned offset), padded to 8 bytes.
/// The instance is filled in when the attribute is inserted.
pub fn resident(ty: u32, name: &[u16], value: &[u8], resident_flags: u8) -> Vec<u8> {
    let name_off = 0x18;
    let value_off = align8(name_off + 2 * name.len());
    let len = align8(value_off + value.len());
    let mut b = vec![0u8; len];
    put32(&mut b, 0, ty);
    put32(&mut b, 4, len as u32);
    b[9] = name.len() as u8;
    put16(&mut b, 10, name_off as u16);
    for (i, u) in name.iter().enumerate() {
        put16(&mut b, name_off + 2 * i, *u);
    }
    put32(&mut b, 16, value.len() as u32);
    put16(&mut b, 20, value_off as u16);
    b[22] = resident_flags;
    b[value_off..value_off + value.len()].copy_from_slice(value);
    b
}

/// Sizes of a non-resident attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Bytes allocated (clusters times cluster size).
    pub allocated: u64,
    /// Logical size.
    pub data: u64,
    /// Bytes written; the rest reads as zeros.
    pub initialized: u64,
}

/// A non-resident, uncompressed attribute mapping VCNs `0..clusters` with `mapping_pairs`.
pub fn non_resident(
    ty: u32,
    name: &[u16],
    flags: u16,
    clusters: u64,
    mapping_pairs: &[u8],
    sizes: Sizes,
) -> Vec<u8> {
    non_resident_with(ty, name, flags, clusters, mapping_pairs, sizes, None)
}

/// A non-resident attribute; a sparse one (`stored` = bytes of its stored clusters) has the
/// longer header that also records those bytes at 0x40.
pub fn non_resident_with(
    ty: u32,
    name: &[u16],
    flags: u16,
    clusters: u64,
    mapping_pairs: &[u8],
    sizes: Sizes,
    stored: Option<u64>,
) -> Vec<u8> {
    let name_off = if stored.is_some() { 0x48 } else { 0x40 };
    let runs_off = align8(name_off + 2 * name.len());
    let len = align8(runs_off + mapping_pairs.len());
    let mut b = vec![0u8; len];
    put32(&mut b, 0, ty);
    put32(&mut b, 4, len as u32);
    b[8] = 1;
    b[9] = name.len() as u8;
    put16(&mut b, 10, name_off as u16);
    put16(&mut b, 12, flags);
    for (i, u) in name.iter().enumerate() {
        put16(&mut b, name_off + 2 * i, *u);
    }
    put64(&mut b, 0x10, 0);
    put64(&mut b, 0x18, clusters.wrapping_sub(1));
    put16(&mut b, 0x20, runs_off as u16);
    put64(&mut b, 0x28, sizes.allocated);
    put64(&mut b, 0x30, sizes.data);
    put64(&mut b, 0x38, sizes.initialized);
    if let Some(s) = stored {
        put64(&mut b, 0x40, s);
    }
    b[runs_off..runs_off + mapping_pairs.len()].copy_from_slice(mapping_pairs);
    b
}

/// Copies the instance number of `old` (an attribute's bytes) into `new`.
pub fn keep_instance(old: &[u8], new: &mut [u8]) {
    new[14..16].copy_from_slice(&old[14..16]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use rehost_core::error::Layer;

    #[test]
    fn formatted_records_take_attributes_in_order_and_parse_back() {
        let ctx = Ctx::new("t", Layer::Ntfs);
        let mut r = RecordBuf::format(70, 1024, 3, 9);
        let data = resident(0x80, &[], b"hello", 0);
        let si = resident(0x10, &[], &[0u8; 0x48], 0);
        assert_eq!(r.insert(data, &ctx).unwrap(), Some(0));
        assert_eq!(r.insert(si, &ctx).unwrap(), Some(1));
        let attrs = r.attrs(&ctx).unwrap();
        assert_eq!(attrs.iter().map(|a| a.ty).collect::<Vec<_>>(), [0x10, 0x80]);
        let v = r.value(&attrs[1]).unwrap().to_vec();
        assert_eq!(v, b"hello");
        let bytes = r.protect();
        assert_eq!(u16_at(&bytes, 510), 10, "usn in the stride");
        let rec = Record::parse(70, bytes, 0, &ctx).unwrap();
        assert_eq!(rec.sequence, 3);
        let parsed = rec.attributes(1000, &ctx).unwrap();
        assert_eq!(parsed[1].resident().unwrap(), b"hello");
        // Too big to fit: nothing changes.
        let used = r.used();
        assert_eq!(
            r.insert(resident(0x80, &[0x61], &[0u8; 2000], 0), &ctx)
                .unwrap(),
            None
        );
        assert_eq!(r.used(), used);
        let a = r.find(0x80, &[], &ctx).unwrap().unwrap();
        r.remove(&a);
        assert_eq!(r.attrs(&ctx).unwrap().len(), 1);
    }
}
