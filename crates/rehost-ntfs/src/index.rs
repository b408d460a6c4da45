//! Directory indexes (`$I30`): a B+ tree of `$FILE_NAME` keys in `$INDEX_ROOT` and INDX
//! blocks of `$INDEX_ALLOCATION`, collated through `$UpCase`.
//!
//! Traversal is bounded: every INDX block is visited at most once and the tree may not be
//! deeper than [`MAX_DEPTH`], so a damaged index whose nodes point back at each other gives an
//! error instead of a hang.

use super::fixup;
use super::le::{u16_at, u32_at, u64_at};
use super::names::FileName;
use super::stream::Stream;
use super::upcase::UpCase;
use rehost_core::error::{Ctx, Result};
use rehost_core::io::ReadAt;
use std::cmp::Ordering;
use std::collections::HashSet;

/// Deepest index tree accepted (a real one is 3 or 4 levels deep).
pub const MAX_DEPTH: usize = 32;

const ENTRY_HAS_SUBNODE: u16 = 0x01;
const ENTRY_IS_LAST: u16 = 0x02;

/// One entry of an index node.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// Record number the entry points at.
    pub record: u64,
    /// Sequence number the entry expects the record to have.
    pub sequence: u16,
    /// The key (absent in the last entry of a node).
    pub key: Option<FileName>,
    /// VCN of the child node holding the keys before this one.
    pub subnode: Option<u64>,
}

/// A directory's index, ready for lookups and listing.
pub struct DirIndex {
    root: Vec<IndexEntry>,
    allocation: Option<Stream>,
    block_size: u32,
    vcn_shift: u32,
    ctx: Ctx,
    path: String,
}

impl DirIndex {
    /// Builds the index from the `$INDEX_ROOT` value and the `$INDEX_ALLOCATION` stream (if
    /// any). `cluster` is the volume's cluster size; `path` names the directory in errors.
    pub fn new(
        root_value: &[u8],
        allocation: Option<Stream>,
        cluster: u32,
        ctx: Ctx,
        path: String,
    ) -> Result<Self> {
        if root_value.len() < 0x20 {
            return Err(ctx.corrupt_at_path(&path, "$INDEX_ROOT is shorter than its header"));
        }
        if u32_at(root_value, 0) != super::record::AT_FILE_NAME {
            return Err(ctx.corrupt_at_path(&path, "$I30 index does not index file names"));
        }
        let block_size = u32_at(root_value, 8);
        if !(512..=65536).contains(&block_size) || !block_size.is_power_of_two() {
            return Err(
                ctx.corrupt_at_path(&path, format!("index block size {block_size} is invalid"))
            );
        }
        // VCNs in an index count clusters when blocks are at least a cluster, else 512-byte units.
        let vcn_shift = if block_size >= cluster {
            cluster.trailing_zeros()
        } else {
            9
        };
        let root = parse_node(root_value, 0x10, &ctx, &path, 0)?;
        Ok(DirIndex {
            root,
            allocation,
            block_size,
            vcn_shift,
            ctx,
            path,
        })
    }

    fn block(&self, vcn: u64) -> Result<Vec<IndexEntry>> {
        let alloc = self.allocation.as_ref().ok_or_else(|| {
            self.ctx.corrupt_at_path(
                &self.path,
                "index entry points at a block but there is no $INDEX_ALLOCATION",
            )
        })?;
        let offset = vcn
            .checked_mul(1u64 << self.vcn_shift)
            .filter(|o| {
                o.checked_add(self.block_size as u64)
                    .is_some_and(|e| e <= alloc.size())
            })
            .ok_or_else(|| {
                self.ctx.corrupt_at_path(
                    &self.path,
                    format!("index block VCN {vcn} is outside $INDEX_ALLOCATION"),
                )
            })?;
        let mut buf = vec![0u8; self.block_size as usize];
        alloc.read_at(offset, &mut buf)?;
        let pos = alloc
            .extents()
            .iter()
            .find(|e| e.offset <= offset && offset < e.offset + e.len)
            .and_then(|e| e.volume_offset.map(|v| v + offset - e.offset))
            .unwrap_or(0);
        fixup::unprotect(&mut buf, b"INDX", &self.ctx, pos)?;
        if u64_at(&buf, 0x10) != vcn {
            return Err(self.ctx.corrupt(
                pos + 0x10,
                format!(
                    "{}: index block says VCN {}, expected {vcn}",
                    self.path,
                    u64_at(&buf, 0x10)
                ),
            ));
        }
        parse_node(&buf, 0x18, &self.ctx, &self.path, pos)
    }

    /// Finds `name` (compared through `upcase`); prefers an entry whose case matches exactly.
    pub fn find(&self, name: &[u16], upcase: &UpCase) -> Result<Option<IndexEntry>> {
        let mut node = self.root.clone();
        let mut seen = HashSet::new();
        for _ in 0..MAX_DEPTH {
            let mut descend = None;
            let mut hit: Option<IndexEntry> = None;
            for e in &node {
                let Some(key) = &e.key else {
                    descend = e.subnode;
                    break;
                };
                match upcase.cmp(name, &key.name) {
                    Ordering::Equal => {
                        if key.name == name {
                            return Ok(Some(e.clone()));
                        }
                        if hit.is_none() {
                            hit = Some(e.clone());
                        }
                    }
                    Ordering::Less => {
                        descend = e.subnode;
                        break;
                    }
                    Ordering::Greater => {}
                }
            }
            if hit.is_some() {
                return Ok(hit);
            }
            let Some(vcn) = descend else { return Ok(None) };
            if !seen.insert(vcn) {
                return Err(self.loop_error(vcn));
            }
            node = self.block(vcn)?;
        }
        Err(self.too_deep())
    }

    /// Every entry with a key, in collation order.
    pub fn entries(&self) -> Result<Vec<IndexEntry>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.walk(&self.root, 0, &mut seen, &mut out)?;
        Ok(out)
    }

    fn walk(
        &self,
        node: &[IndexEntry],
        depth: usize,
        seen: &mut HashSet<u64>,
        out: &mut Vec<IndexEntry>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(self.too_deep());
        }
        for e in node {
            if let Some(vcn) = e.subnode {
                if !seen.insert(vcn) {
                    return Err(self.loop_error(vcn));
                }
                let child = self.block(vcn)?;
                self.walk(&child, depth + 1, seen, out)?;
            }
            if e.key.is_some() {
                out.push(IndexEntry {
                    subnode: None,
                    ..e.clone()
                });
            }
        }
        Ok(())
    }

    fn loop_error(&self, vcn: u64) -> rehost_core::Error {
        self.ctx.corrupt_at_path(
            &self.path,
            format!("index loop: block VCN {vcn} is reached twice"),
        )
    }

    fn too_deep(&self) -> rehost_core::Error {
        self.ctx.corrupt_at_path(
            &self.path,
            format!("index tree deeper than {MAX_DEPTH} levels"),
        )
    }
}

/// Parses the entries of a node whose header starts at `header` in `buf`.
fn parse_node(
    buf: &[u8],
    header: usize,
    ctx: &Ctx,
    path: &str,
    pos: u64,
) -> Result<Vec<IndexEntry>> {
    let first = header + u32_at(buf, header) as usize;
    let end = header + u32_at(buf, header + 4) as usize;
    if first < header + 0x10 || end > buf.len() || first > end {
        return Err(ctx.corrupt(
            pos + header as u64,
            format!(
                "{path}: index node header (entries {first}..{end}) does not fit its {} bytes",
                buf.len()
            ),
        ));
    }
    let mut out = Vec::new();
    let mut off = first;
    loop {
        let at = pos + off as u64;
        if off + 16 > end {
            return Err(ctx.corrupt(at, format!("{path}: index node has no last entry")));
        }
        let len = u16_at(buf, off + 8) as usize;
        let key_len = u16_at(buf, off + 10) as usize;
        let flags = u16_at(buf, off + 12);
        if len < 16 || len % 8 != 0 || off + len > end || 16 + key_len > len {
            return Err(ctx.corrupt(
                at,
                format!("{path}: index entry of length {len} (key {key_len}) is invalid"),
            ));
        }
        let subnode = if flags & ENTRY_HAS_SUBNODE != 0 {
            if len < 24 || 16 + key_len > len - 8 {
                return Err(ctx.corrupt(
                    at,
                    format!("{path}: index entry too short for its subnode VCN"),
                ));
            }
            Some(u64_at(buf, off + len - 8))
        } else {
            None
        };
        let last = flags & ENTRY_IS_LAST != 0;
        let key = if last || key_len == 0 {
            None
        } else {
            Some(
                FileName::parse(&buf[off + 16..off + 16 + key_len]).ok_or_else(|| {
                    ctx.corrupt(at, format!("{path}: index key is not a valid $FILE_NAME"))
                })?,
            )
        };
        let file_ref = u64_at(buf, off);
        out.push(IndexEntry {
            record: file_ref & 0x0000_FFFF_FFFF_FFFF,
            sequence: (file_ref >> 48) as u16,
            key,
            subnode,
        });
        if last {
            return Ok(out);
        }
        off += len;
    }
}
