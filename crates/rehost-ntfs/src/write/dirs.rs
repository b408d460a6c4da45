//! Directories created: a FILE record flagged as a directory, holding
//! `$STANDARD_INFORMATION`, its `$FILE_NAME`s (the "index present" attribute bit set) and an
//! empty `$INDEX_ROOT` named `$I30`, entered into its parent's index like a file. The new
//! index takes its header (indexed attribute type, collation rule, index block size) from
//! the parent's, so that it grows into index blocks the way the parent's did; its security
//! is the parent directory's own, as a new folder inherits it.

use super::index_store::I30;
use super::names::{self, FILE_ATTRIBUTE_ARCHIVE};
use super::node::{serialize_root, Node};
use super::record::resident;
use super::verify;
use super::Writer;
use crate::file::File;
use crate::le::u32_at;
use crate::names::FILE_NAME_INDEX_PRESENT;
use crate::record::{
    AT_FILE_NAME, AT_INDEX_ROOT, AT_STANDARD_INFORMATION, MFT_RECORD_IN_USE,
    MFT_RECORD_IS_DIRECTORY,
};
use rehost_core::error::Result;

/// `$SECURITY_DESCRIPTOR`
const AT_SECURITY_DESCRIPTOR: u32 = 0x50;
/// Bytes of an `$INDEX_ROOT` value's own header (type, collation, block size, clusters).
const ROOT_HEADER: usize = 0x10;

/// An empty `$INDEX_ROOT` value with `header` (the first 16 bytes of another directory's).
pub fn empty_index_root(header: &[u8; ROOT_HEADER]) -> Vec<u8> {
    serialize_root(&Node::default(), header)
}

impl Writer {
    /// Creates the directory `path` in an existing directory; returns its record.
    pub fn mkdir(&mut self, path: &str) -> Result<u64> {
        let s = self.split(path)?;
        let n = self.run(|w, op| {
            let dir = w.lookup_dir(&s.dir)?;
            let header = root_header(&dir).ok_or_else(|| {
                w.vol.ctx.unsupported(
                    0,
                    format!("{path}: the parent directory has no usable $I30 index root"),
                )
            })?;
            let short_names = w.template(op, &dir)?.short_names;
            let time = w.now();
            let names = w.new_names(op, &dir, &s.name, short_names)?;
            let n = w.mft.allocate(&w.vol, &mut w.clusters)?;
            let ctx = w.vol.ctx.clone();
            let parent = names::file_ref(dir.record, dir.sequence);
            let (si, sd) = inherited(&dir, time);
            let r = w.mft.get(&w.vol, n)?;
            r.set_flags(MFT_RECORD_IN_USE | MFT_RECORD_IS_DIRECTORY);
            r.set_link_count(names.len() as u16);
            r.set_base_record(0);
            let seq = r.sequence();
            let attributes = FILE_ATTRIBUTE_ARCHIVE | FILE_NAME_INDEX_PRESENT;
            let mut keys = Vec::new();
            let mut attrs = vec![resident(AT_STANDARD_INFORMATION, &[], &si, 0)];
            for (ns, nm) in &names {
                let key = names::file_name(parent, time, 0, 0, attributes, *ns, nm);
                attrs.push(resident(AT_FILE_NAME, &[], &key, 1));
                keys.push(key);
            }
            attrs.extend(sd);
            attrs.push(resident(AT_INDEX_ROOT, &I30, &empty_index_root(&header), 0));
            r.insert_all(attrs, &ctx, path)?;
            for key in keys {
                let tree = w.tree(op, dir.record)?;
                tree.insert(
                    &w.vol,
                    w.ntfs.upcase(),
                    &mut w.clusters,
                    names::file_ref(n, seq),
                    key,
                )?;
            }
            w.touch(dir.record, time)?;
            Ok(n)
        })?;
        if self.opts.verify {
            verify::directory(&self.ntfs, path, n)?;
        }
        Ok(n)
    }

    /// Creates every directory of `path` that is missing (`path` itself included); returns
    /// how many were created. Each is an operation of its own: when one fails, those
    /// before it stay staged (nothing reaches an image before the disk layer commits).
    pub fn mkdir_all(&mut self, path: &str) -> Result<usize> {
        let comps = rehost_core::entry::components(path);
        let mut made = 0;
        for i in 1..=comps.len() {
            let p = comps[..i].join("/");
            match self.ntfs.lookup(&p) {
                Ok(f) if f.is_dir() => continue,
                Ok(_) => {
                    return Err(self
                        .vol
                        .ctx
                        .invalid(format!("{p} is a file, not a directory")))
                }
                Err(e) if matches!(e.kind, rehost_core::ErrorKind::NotFound(_)) => {
                    self.mkdir(&p)?;
                    made += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(made)
    }
}

/// The first 16 bytes of directory `dir`'s `$I30` index root.
fn root_header(dir: &File) -> Option<[u8; ROOT_HEADER]> {
    dir.attributes
        .iter()
        .find(|a| a.ty == AT_INDEX_ROOT && a.name == "$I30")
        .and_then(|a| a.resident())
        .filter(|v| u32_at(v, 0) == AT_FILE_NAME)
        .and_then(|v| v.get(..ROOT_HEADER)?.try_into().ok())
}

/// The `$STANDARD_INFORMATION` of a new directory in `dir` (its owner and security id
/// taken from `dir`'s) and `dir`'s own `$SECURITY_DESCRIPTOR` attribute where it has one
/// (NTFS 1.2 keeps security in each record).
fn inherited(dir: &File, time: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    let si = dir
        .attributes
        .iter()
        .find(|a| a.ty == AT_STANDARD_INFORMATION)
        .and_then(|a| a.resident())
        .unwrap_or(&[]);
    let (len, owner, security) = if si.len() >= 0x48 {
        (0x48, u32_at(si, 0x30), u32_at(si, 0x34))
    } else {
        (0x30, 0, 0)
    };
    let sd = dir
        .attributes
        .iter()
        .find(|a| a.ty == AT_SECURITY_DESCRIPTOR && a.name.is_empty())
        .and_then(|a| a.resident())
        .map(|v| resident(AT_SECURITY_DESCRIPTOR, &[], v, 0));
    (
        names::standard_information(len, time, FILE_ATTRIBUTE_ARCHIVE, owner, security),
        sd,
    )
}
