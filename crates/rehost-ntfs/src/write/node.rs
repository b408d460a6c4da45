//! Index nodes as the writer holds them: the entries of `$INDEX_ROOT` or of one INDX block,
//! parsed from and serialized to their on-disk form.
//!
//! An index entry: file reference (0x00), entry length (0x08), key length (0x0A), flags
//! (0x0C: 1 = has a child node, 2 = last entry), the key (a `$FILE_NAME` value) at 0x10,
//! padded to 8 bytes, then the child's VCN in the last 8 bytes when it has one. Every node
//! ends with a last entry without key; its child holds the keys above all the node's keys.
//!
//! An INDX block: `INDX`, update sequence array at 0x28, `$LogFile` sequence number (0x08),
//! its own VCN (0x10), the index header at 0x18 (entries offset and used length relative to
//! the header, allocated length, flags: 1 = not a leaf).

use super::record::{align8, apply_fixups, put};
use crate::fixup::{self, STRIDE};
use crate::le::{u16_at, u32_at, u64_at};
use rehost_core::error::{Ctx, Result};

const ENTRY_NODE: u16 = 1;
const ENTRY_END: u16 = 2;
/// Index header flag: the node has children (`LARGE_INDEX` in the root).
pub const NODE_HAS_CHILDREN: u8 = 1;

/// One entry with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File reference (record and sequence) the entry names.
    pub fref: u64,
    /// The key: a `$FILE_NAME` value.
    pub key: Vec<u8>,
    /// VCN of the child node holding the keys below this one.
    pub sub: Option<u64>,
}

impl Entry {
    /// Bytes the entry takes in a node.
    pub fn size(&self) -> usize {
        align8(16 + self.key.len()) + if self.sub.is_some() { 8 } else { 0 }
    }

    /// The name in the key, UTF-16.
    pub fn name(&self) -> Vec<u16> {
        let len = self.key.get(0x40).copied().unwrap_or(0) as usize;
        (0..len).map(|i| u16_at(&self.key, 0x42 + 2 * i)).collect()
    }

    /// The name space of the key.
    pub fn namespace(&self) -> u8 {
        self.key.get(0x41).copied().unwrap_or(0)
    }

    /// The record number the entry names.
    pub fn record(&self) -> u64 {
        self.fref & 0x0000_FFFF_FFFF_FFFF
    }
}

/// The entries of one node.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Entries with keys, in collation order.
    pub entries: Vec<Entry>,
    /// Child of the last entry.
    pub end_sub: Option<u64>,
    /// `$LogFile` sequence number of the block (kept as found).
    pub lsn: u64,
    /// Update sequence number the block was last written with.
    pub usn: u16,
}

impl Node {
    /// Bytes the entries take, the last entry included.
    pub fn size(&self) -> usize {
        self.entries.iter().map(Entry::size).sum::<usize>()
            + 16
            + if self.end_sub.is_some() { 8 } else { 0 }
    }

    /// The child at position `i` (`entries.len()` for the last entry's).
    pub fn sub_at(&self, i: usize) -> Option<u64> {
        self.entries.get(i).map_or(self.end_sub, |e| e.sub)
    }

    /// Whether the node has children.
    pub fn has_children(&self) -> bool {
        self.end_sub.is_some()
    }

    /// Parses the entries of a node whose index header is at `header` in `buf`.
    pub fn parse(buf: &[u8], header: usize, ctx: &Ctx, what: &str) -> Result<Node> {
        let first = header + u32_at(buf, header) as usize;
        let end = header + u32_at(buf, header + 4) as usize;
        if first < header + 0x10 || end > buf.len() || first > end {
            return Err(ctx.corrupt_at_path(what, "index node header does not fit its node"));
        }
        let mut node = Node::default();
        let mut off = first;
        loop {
            if off + 16 > end {
                return Err(ctx.corrupt_at_path(what, "index node has no last entry"));
            }
            let len = u16_at(buf, off + 8) as usize;
            let key_len = u16_at(buf, off + 10) as usize;
            let flags = u16_at(buf, off + 12);
            let vcn_len = if flags & ENTRY_NODE != 0 { 8 } else { 0 };
            if len < 16 + vcn_len || len % 8 != 0 || off + len > end || 16 + key_len + vcn_len > len
            {
                return Err(ctx.corrupt_at_path(
                    what,
                    format!("index entry at node offset {off:#x} has length {len} (key {key_len})"),
                ));
            }
            let sub = (vcn_len != 0).then(|| u64_at(buf, off + len - 8));
            if flags & ENTRY_END != 0 {
                node.end_sub = sub;
                break;
            }
            if key_len < 0x42 || 0x42 + 2 * buf[off + 16 + 0x40] as usize > key_len {
                return Err(ctx.corrupt_at_path(
                    what,
                    format!("index entry at node offset {off:#x} has no valid $FILE_NAME key"),
                ));
            }
            node.entries.push(Entry {
                fref: u64_at(buf, off),
                key: buf[off + 16..off + 16 + key_len].to_vec(),
                sub,
            });
            off += len;
        }
        // A node's entries all have children or none do.
        if node
            .entries
            .iter()
            .any(|e| e.sub.is_some() != node.end_sub.is_some())
        {
            return Err(ctx.corrupt_at_path(what, "index node mixes leaf and node entries"));
        }
        Ok(node)
    }

    /// The entries serialized, the last one included.
    pub fn entry_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.size());
        for e in &self.entries {
            let start = b.len();
            b.resize(start + e.size(), 0);
            let s = &mut b[start..];
            put::u64(s, 0, e.fref);
            put::u16(s, 8, e.size() as u16);
            put::u16(s, 10, e.key.len() as u16);
            put::u16(s, 12, if e.sub.is_some() { ENTRY_NODE } else { 0 });
            s[16..16 + e.key.len()].copy_from_slice(&e.key);
            if let Some(v) = e.sub {
                let n = s.len();
                put::u64(s, n - 8, v);
            }
        }
        let start = b.len();
        let len = 16 + if self.end_sub.is_some() { 8 } else { 0 };
        b.resize(start + len, 0);
        let s = &mut b[start..];
        put::u16(s, 8, len as u16);
        let node_flag = if self.end_sub.is_some() {
            ENTRY_NODE
        } else {
            0
        };
        put::u16(s, 12, ENTRY_END | node_flag);
        if let Some(v) = self.end_sub {
            put::u64(s, 16, v);
        }
        b
    }
}

/// Update sequence array entries of a block of `size` bytes.
fn usa_count(size: usize) -> usize {
    size / STRIDE + 1
}

/// Offset of the first entry in an INDX block this writer writes.
fn first_entry(size: usize) -> usize {
    align8(0x28 + 2 * usa_count(size))
}

/// Bytes of entries an INDX block of `size` bytes holds.
pub fn block_capacity(size: usize) -> usize {
    size - first_entry(size)
}

/// Parses the INDX block at `vcn` from its stored bytes; `pos` names it in errors.
pub fn parse_block(mut buf: Vec<u8>, vcn: u64, ctx: &Ctx, pos: u64, what: &str) -> Result<Node> {
    fixup::unprotect(&mut buf, b"INDX", ctx, pos)?;
    if u64_at(&buf, 0x10) != vcn {
        return Err(ctx.corrupt(
            pos + 0x10,
            format!(
                "{what}: index block says VCN {}, expected {vcn}",
                u64_at(&buf, 0x10)
            ),
        ));
    }
    let mut node = Node::parse(&buf, 0x18, ctx, what)?;
    node.lsn = u64_at(&buf, 0x08);
    node.usn = u16_at(&buf, u16_at(&buf, 4) as usize);
    Ok(node)
}

/// The stored bytes of an INDX block holding `node` (fixups applied, its update sequence
/// number bumped). The caller checks that the entries fit [`block_capacity`].
pub fn serialize_block(node: &Node, vcn: u64, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    b[..4].copy_from_slice(b"INDX");
    let count = usa_count(size);
    put::u16(&mut b, 4, 0x28);
    put::u16(&mut b, 6, count as u16);
    put::u64(&mut b, 0x08, node.lsn);
    put::u64(&mut b, 0x10, vcn);
    let first = first_entry(size);
    let entries = node.entry_bytes();
    put::u32(&mut b, 0x18, (first - 0x18) as u32);
    put::u32(&mut b, 0x1C, (first - 0x18 + entries.len()) as u32);
    put::u32(&mut b, 0x20, (size - 0x18) as u32);
    b[0x24] = if node.has_children() {
        NODE_HAS_CHILDREN
    } else {
        0
    };
    b[first..first + entries.len()].copy_from_slice(&entries);
    let mut usn = node.usn.wrapping_add(1);
    if usn == 0 || usn == 0xFFFF {
        usn = 1;
    }
    put::u16(&mut b, 0x28, usn);
    apply_fixups(&mut b, 0x28, count, usn)
}

/// The `$INDEX_ROOT` value holding `node`; `head` is the first 16 bytes of the old value
/// (indexed type, collation rule, block size, clusters per block).
pub fn serialize_root(node: &Node, head: &[u8; 16]) -> Vec<u8> {
    let entries = node.entry_bytes();
    let mut b = vec![0u8; 0x20 + entries.len()];
    b[..16].copy_from_slice(head);
    put::u32(&mut b, 0x10, 0x10);
    put::u32(&mut b, 0x14, (0x10 + entries.len()) as u32);
    put::u32(&mut b, 0x18, (0x10 + entries.len()) as u32);
    b[0x1C] = if node.has_children() {
        NODE_HAS_CHILDREN
    } else {
        0
    };
    b[0x20..].copy_from_slice(&entries);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::error::Layer;

    fn key(name: &str) -> Vec<u8> {
        let units: Vec<u16> = name.encode_utf16().collect();
        super::super::names::file_name(5, 1, 0, 0, 0x20, 1, &units)
    }

    #[test]
    fn blocks_and_roots_round_trip() {
        let ctx = Ctx::new("t", Layer::Ntfs);
        let node = Node {
            entries: vec![
                Entry {
                    fref: 70 | (2 << 48),
                    key: key("a.txt"),
                    sub: Some(4),
                },
                Entry {
                    fref: 71,
                    key: key("b"),
                    sub: Some(8),
                },
            ],
            end_sub: Some(12),
            lsn: 77,
            usn: 3,
        };
        let bytes = serialize_block(&node, 16, 4096);
        let back = parse_block(bytes, 16, &ctx, 0, "t").unwrap();
        assert_eq!(back.entries, node.entries);
        assert_eq!(back.end_sub, Some(12));
        assert_eq!((back.lsn, back.usn), (77, 4));
        assert!(parse_block(serialize_block(&node, 16, 4096), 8, &ctx, 0, "t").is_err());
        let leaf = Node {
            entries: vec![Entry {
                fref: 9,
                key: key("z"),
                sub: None,
            }],
            ..Node::default()
        };
        let root = serialize_root(
            &leaf,
            &[0x30, 0, 0, 0, 1, 0, 0, 0, 0, 0x10, 0, 0, 1, 0, 0, 0],
        );
        let back = Node::parse(&root, 0x10, &ctx, "t").unwrap();
        assert_eq!(back.entries, leaf.entries);
        assert_eq!(
            back.entries[0].name(),
            "z".encode_utf16().collect::<Vec<_>>()
        );
        assert_eq!(block_capacity(4096), 4096 - 0x40);
    }
}
