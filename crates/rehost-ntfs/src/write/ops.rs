//! The operations on files' data: create, replace, put, write in place, set the length;
//! and what they share with renames and deletes ([`super::links`]): paths resolved to a
//! directory and a name, the trees an operation changes, a directory's template for new
//! files, and keeping `$FILE_NAME`s and their index entries in step with the data.

use super::data::{Data, Fill};
use super::guard;
use super::index::Tree;
use super::listed::Change;
use super::names::{self, fnoff, namespace, FILE_ATTRIBUTE_ARCHIVE};
use super::record::{resident, AttrAt};
use super::verify::{self, Expect};
use super::{Op, ShortNames, Template, Writer};
use crate::file::File;
use crate::le::{u16_at, u64_at};
use crate::record::{AT_DATA, AT_FILE_NAME, AT_STANDARD_INFORMATION, MFT_RECORD_IN_USE};
use rehost_core::error::Result;
use rehost_core::io::ReadAt;

/// Siblings looked at for a template before falling back to the directory itself.
const TEMPLATE_TRIES: usize = 32;

/// A path split into its directory and its last name.
pub(crate) struct Split {
    /// The directory, `/`-separated ("" for the root).
    pub dir: String,
    /// The last component, UTF-16.
    pub name: Vec<u16>,
}

impl Writer {
    /// Splits `path` into directory and name.
    pub(crate) fn split(&self, path: &str) -> Result<Split> {
        let comps = rehost_core::entry::components(path);
        let Some((last, dir)) = comps.split_last() else {
            return Err(self.vol.ctx.invalid(format!("{path:?} names no file")));
        };
        Ok(Split {
            dir: dir.join("/"),
            name: last.encode_utf16().collect(),
        })
    }

    /// The directory at `path`.
    pub(crate) fn lookup_dir(&self, path: &str) -> Result<File> {
        let d = self.ntfs.lookup(path)?;
        if !d.is_dir() {
            return Err(self.vol.ctx.invalid(format!("{path} is not a directory")));
        }
        Ok(d)
    }

    /// The tree of directory record `dir`, loaded once per operation.
    pub(crate) fn tree<'o>(&self, op: &'o mut Op, dir: u64) -> Result<&'o mut Tree> {
        use std::collections::btree_map::Entry;
        match op.trees.entry(dir) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let f = self.ntfs.file(dir)?;
                if !f.is_dir() {
                    return Err(self.vol.ctx.corrupt_at_path(
                        &format!("record {dir}"),
                        "a name's parent is not a directory",
                    ));
                }
                let what = match f.best_name() {
                    Some(n) if dir != crate::RECORD_ROOT => {
                        format!("directory {} (record {dir})", n.name_string())
                    }
                    _ => "\\".to_string(),
                };
                // Whatever the reader refuses in the index, the writer refuses too.
                self.ntfs.dir_index(&f, &what)?;
                Ok(e.insert(Tree::load(&self.vol, &self.mft, &f, &what)?))
            }
        }
    }

    /// What a new file in directory `dir` takes from its siblings: security, and whether
    /// names get 8.3 aliases.
    pub(crate) fn template(&mut self, op: &mut Op, dir: &File) -> Result<Template> {
        if let Some(t) = self.templates.get(&dir.record) {
            return Ok(t.clone());
        }
        let entries = self.tree(op, dir.record)?.names(&self.vol)?;
        let short_names = match self.opts.short_names {
            ShortNames::Always => true,
            ShortNames::Never => false,
            // The metafiles' names are 8.3 names whatever the volume does: they do not count.
            ShortNames::Auto => entries.iter().any(|(_, ns, r)| {
                *r > 23 && (*ns == namespace::DOS || *ns == namespace::WIN32_AND_DOS)
            }),
        };
        let sibling = entries
            .iter()
            .filter(|(_, _, r)| *r > 23 && *r != dir.record)
            .take(TEMPLATE_TRIES)
            .find_map(|(_, _, r)| self.ntfs.file(*r).ok().filter(|f| !f.is_dir()));
        let t = Template {
            security: self.new_file_security(sibling.as_ref(), dir)?,
            short_names,
        };
        self.templates.insert(dir.record, t.clone());
        Ok(t)
    }

    /// The names a new link `name` gets in `dir`: the name (Win32, or Win32 and DOS when
    /// it is an 8.3 name), and an 8.3 alias when the directory keeps them. Refuses a name
    /// that exists (ignoring case).
    pub(crate) fn new_names(
        &mut self,
        op: &mut Op,
        dir: &File,
        name: &[u16],
        short: bool,
    ) -> Result<Vec<(u8, Vec<u16>)>> {
        names::check_win32_name(name).map_err(|why| {
            self.vol
                .ctx
                .invalid(format!("{:?}: {why}", String::from_utf16_lossy(name)))
        })?;
        let up = self.ntfs.upcase();
        let vol = &self.vol;
        let tree = self.tree(op, dir.record)?;
        if tree.find_any_case(vol, up, name)?.is_some() {
            return Err(vol.ctx.invalid(format!(
                "{} already exists in that directory",
                String::from_utf16_lossy(name)
            )));
        }
        if !short {
            return Ok(vec![(namespace::WIN32, name.to_vec())]);
        }
        if names::is_short_name(name, up) {
            return Ok(vec![(namespace::WIN32_AND_DOS, name.to_vec())]);
        }
        let mut err = None;
        let alias = names::short_name(name, up, &mut |c| match tree.find_any_case(vol, up, c) {
            Ok(found) => found.is_some(),
            Err(e) => {
                err = Some(e);
                true
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let alias = alias.ok_or_else(|| vol.ctx.unsupported(0, "no free 8.3 alias"))?;
        Ok(vec![
            (namespace::WIN32, name.to_vec()),
            (namespace::DOS, alias),
        ])
    }

    /// The `$FILE_NAME` attributes of record `n` (in the MFT cache) with their values.
    pub(crate) fn file_names(&mut self, n: u64) -> Result<Vec<(AttrAt, Vec<u8>)>> {
        let ctx = self.vol.ctx.clone();
        let r = self.mft.get(&self.vol, n)?;
        let mut out = Vec::new();
        for a in r.attrs(&ctx)?.into_iter().filter(|a| a.ty == AT_FILE_NAME) {
            let v = r
                .value(&a)
                .filter(|v| {
                    v.len()
                        >= fnoff::NAME + 2 * v.get(fnoff::NAME_LEN).copied().unwrap_or(0) as usize
                })
                .ok_or_else(|| ctx.corrupt_at_path(&format!("MFT record {n}"), "bad $FILE_NAME"))?
                .to_vec();
            out.push((a, v));
        }
        Ok(out)
    }

    /// Writes a resident attribute's value in place (same length).
    pub(crate) fn put_value(&mut self, n: u64, at: &AttrAt, value: &[u8]) -> Result<()> {
        let r = self.mft.get(&self.vol, n)?;
        if !r.set_value(at, value) {
            return Err(self.vol.ctx.corrupt_at_path(
                &format!("MFT record {n}"),
                format!("attribute {:#x} cannot be rewritten in place", at.ty),
            ));
        }
        Ok(())
    }

    /// Sets the modification, MFT change and access times of record `n`'s
    /// `$STANDARD_INFORMATION`.
    pub(crate) fn touch(&mut self, n: u64, time: u64) -> Result<()> {
        let ctx = self.vol.ctx.clone();
        let r = self.mft.get(&self.vol, n)?;
        let Some(at) = r.find(AT_STANDARD_INFORMATION, &[], &ctx)? else {
            return Err(ctx.corrupt_at_path(&format!("MFT record {n}"), "no $STANDARD_INFORMATION"));
        };
        let mut v = r.value(&at).unwrap_or(&[]).to_vec();
        if v.len() < 0x30 {
            return Err(
                ctx.corrupt_at_path(&format!("MFT record {n}"), "short $STANDARD_INFORMATION")
            );
        }
        for i in 1..4 {
            v[8 * i..8 * i + 8].copy_from_slice(&time.to_le_bytes());
        }
        self.put_value(n, &at, &v)
    }

    /// After a data change: every `$FILE_NAME` of record `n` and its index entry get the new
    /// sizes and times.
    pub(crate) fn sync_names(&mut self, op: &mut Op, n: u64, d: &Data, time: u64) -> Result<()> {
        self.sync_names_in(op, n, &[n], d, time)
    }

    /// [`Self::sync_names`] for a file whose `$FILE_NAME`s live in `records` (its base
    /// record `n`, or extension records behind an attribute list).
    pub(crate) fn sync_names_in(
        &mut self,
        op: &mut Op,
        n: u64,
        records: &[u64],
        d: &Data,
        time: u64,
    ) -> Result<()> {
        // Only files' data changes (the record says so): every name gets the sizes.
        for &rec in records {
            for (at, mut v) in self.file_names(rec)? {
                v[fnoff::ALLOCATED..fnoff::ALLOCATED + 8]
                    .copy_from_slice(&d.allocated().to_le_bytes());
                v[fnoff::DATA..fnoff::DATA + 8].copy_from_slice(&d.size().to_le_bytes());
                for i in 1..4 {
                    let o = fnoff::TIMES + 8 * i;
                    v[o..o + 8].copy_from_slice(&time.to_le_bytes());
                }
                self.put_value(rec, &at, &v)?;
                let parent = u64_at(&v, 0) & 0x0000_FFFF_FFFF_FFFF;
                let name: Vec<u16> = (0..v[fnoff::NAME_LEN] as usize)
                    .map(|i| u16_at(&v, fnoff::NAME + 2 * i))
                    .collect();
                let up = self.ntfs.upcase();
                let vol = &self.vol;
                self.tree(op, parent)?.update(vol, up, &name, n, v)?;
            }
        }
        self.touch(n, time)
    }

    /// The file at `path` for a data change, checked.
    fn data_target(&self, path: &str) -> Result<File> {
        let link = self.resolve(path)?;
        let f = link.file;
        // The record must hold the name it was found by, or its names and their entries
        // cannot be kept in step.
        let up = self.ntfs.upcase();
        if !f.names().iter().any(|n| {
            n.parent == link.dir.record && link.names.iter().any(|l| up.cmp(l, &n.name).is_eq())
        }) {
            return Err(self.vol.ctx.corrupt_at_path(
                path,
                format!("MFT record {} has no $FILE_NAME for the name it is found by: run chkdsk /f on the volume", f.record),
            ));
        }
        if f.is_dir() {
            return Err(self.vol.ctx.invalid(format!("{path} is a directory")));
        }
        guard::check_data_writable(&f, path, &self.vol.ctx)?;
        if !f
            .attributes
            .iter()
            .any(|a| a.ty == AT_DATA && a.name.is_empty())
        {
            return Err(self
                .vol
                .ctx
                .invalid(format!("{path} has no unnamed data stream")));
        }
        // The reader's checks of the stream (sizes against runs) come first.
        self.ntfs.data(&f, "")?;
        Ok(f)
    }

    /// Creates the file `path` in an existing directory with `data`; returns its record.
    pub fn create(&mut self, path: &str, data: &[u8]) -> Result<u64> {
        let s = self.split(path)?;
        let n = self.run(|w, op| {
            let dir = w.lookup_dir(&s.dir)?;
            let t = w.template(op, &dir)?;
            let time = w.now();
            let names = w.new_names(op, &dir, &s.name, t.short_names)?;
            let n = w.mft.allocate(&w.vol, &mut w.clusters)?;
            let ctx = w.vol.ctx.clone();
            let parent = names::file_ref(dir.record, dir.sequence);
            let free = w.mft.get(&w.vol, n)?.free();
            let r = w.mft.get(&w.vol, n)?;
            r.set_flags(MFT_RECORD_IN_USE);
            r.set_link_count(names.len() as u16);
            r.set_base_record(0);
            let seq = r.sequence();
            let sec = &t.security;
            let si = names::standard_information(
                sec.si_len,
                time,
                FILE_ATTRIBUTE_ARCHIVE,
                sec.owner_id,
                sec.security_id,
            );
            let mut attrs = vec![resident(AT_STANDARD_INFORMATION, &[], &si, 0)];
            for (ns, nm) in &names {
                let key = names::file_name(parent, time, 0, 0, FILE_ATTRIBUTE_ARCHIVE, *ns, nm);
                attrs.push(resident(AT_FILE_NAME, &[], &key, 1));
            }
            if let Some(sd) = &sec.descriptor {
                let used = attrs.iter().map(|a| a.len()).sum();
                let attr = w.descriptor_attr(sd, used, free, path)?;
                attrs.push(attr);
            }
            attrs.push(resident(AT_DATA, &[], &[], 0));
            w.mft.get(&w.vol, n)?.insert_all(attrs, &ctx, path)?;
            let d = w.data_resize(n, path, data.len() as u64, Fill::Overwrite)?;
            // The names, now that the sizes are known, and their index entries.
            for (at, mut v) in w.file_names(n)? {
                v[fnoff::ALLOCATED..fnoff::ALLOCATED + 8]
                    .copy_from_slice(&d.allocated().to_le_bytes());
                v[fnoff::DATA..fnoff::DATA + 8].copy_from_slice(&d.size().to_le_bytes());
                w.put_value(n, &at, &v)?;
                let tree = w.tree(op, dir.record)?;
                tree.insert(
                    &w.vol,
                    w.ntfs.upcase(),
                    &mut w.clusters,
                    names::file_ref(n, seq),
                    v,
                )?;
            }
            w.touch(dir.record, time)?;
            w.data_write(n, path, 0, data, false)?;
            Ok(n)
        })?;
        if self.opts.verify {
            verify::file(&self.ntfs, path, n, Expect::Content(data))?;
        }
        Ok(n)
    }

    /// Replaces the whole content of `path`, keeping its record (and its clusters, as far
    /// as they go: only the pages that change are written).
    pub fn replace(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let f = self.data_target(path)?;
        if Self::is_listed(&f) {
            let change = Change {
                size: Some(data.len() as u64),
                offset: 0,
                bytes: data,
                changed_only: true,
            };
            self.change_listed(&f, path, change)?;
        } else {
            self.run(|w, op| {
                let time = w.now();
                w.data_resize(f.record, path, data.len() as u64, Fill::Overwrite)?;
                let d = w.data_write(f.record, path, 0, data, true)?;
                w.sync_names(op, f.record, &d, time)
            })?;
        }
        if self.opts.verify {
            verify::file(&self.ntfs, path, f.record, Expect::Content(data))?;
        }
        Ok(())
    }

    /// Creates `path` or replaces its content; returns its record.
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<u64> {
        match self.ntfs.lookup(path) {
            Ok(f) => {
                self.replace(path, data)?;
                Ok(f.record)
            }
            Err(e) if matches!(e.kind, rehost_core::ErrorKind::NotFound(_)) => {
                self.create(path, data)
            }
            Err(e) => Err(e),
        }
    }

    /// Overwrites bytes of `path` at `offset`, extending the file when they reach past its
    /// end (a gap reads as zeros).
    pub fn write(&mut self, path: &str, offset: u64, bytes: &[u8]) -> Result<()> {
        let f = self.data_target(path)?;
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or_else(|| self.vol.ctx.invalid("write past 2^64"))?;
        let before = self.ntfs.data(&f, "")?.size();
        if Self::is_listed(&f) {
            let change = Change {
                size: Some(before.max(end)),
                offset,
                bytes,
                changed_only: false,
            };
            self.change_listed(&f, path, change)?;
        } else {
            self.run(|w, op| {
                let time = w.now();
                if end > before {
                    w.data_resize(f.record, path, end, Fill::Zero)?;
                }
                let d = w.data_write(f.record, path, offset, bytes, false)?;
                w.sync_names(op, f.record, &d, time)
            })?;
        }
        if self.opts.verify {
            verify::file(
                &self.ntfs,
                path,
                f.record,
                Expect::Region {
                    offset,
                    bytes,
                    size: before.max(end),
                },
            )?;
        }
        Ok(())
    }

    /// Truncates or extends `path` to `size` bytes (new bytes read as zeros).
    pub fn set_len(&mut self, path: &str, size: u64) -> Result<()> {
        let f = self.data_target(path)?;
        let before = self.ntfs.data(&f, "")?.size();
        if Self::is_listed(&f) {
            let change = Change {
                size: Some(size),
                offset: 0,
                bytes: &[],
                changed_only: false,
            };
            self.change_listed(&f, path, change)?;
        } else {
            self.run(|w, op| {
                let time = w.now();
                let d = w.data_resize(f.record, path, size, Fill::Zero)?;
                w.sync_names(op, f.record, &d, time)
            })?;
        }
        if self.opts.verify {
            verify::file(
                &self.ntfs,
                path,
                f.record,
                Expect::Zeros {
                    from: before.min(size),
                    size,
                },
            )?;
        }
        Ok(())
    }
}
