//! Names removed and moved: deleting a file (one of its links, or the file with its
//! clusters and records when it was the last) and renaming or moving a file or directory.
//! A Win32 name and its 8.3 alias count as one link and go together.

use super::names::{self, fnoff, namespace};
use super::record::{resident, AttrAt};
use super::verify;
use super::{guard, Writer};
use crate::file::File;
use crate::le::{u16_at, u64_at};
use crate::record::{Body, AT_FILE_NAME};
use crate::RECORD_ROOT;
use rehost_core::error::Result;

/// A link of a file as found through a path: its directory and the `$FILE_NAME`s that
/// make it up (the name, and its alias or the name it is the alias of).
pub(crate) struct Link {
    /// The directory.
    pub dir: File,
    /// The file.
    pub file: File,
    /// The names of the link, UTF-16.
    pub names: Vec<Vec<u16>>,
}

fn value_name(v: &[u8]) -> Vec<u16> {
    (0..v[fnoff::NAME_LEN] as usize)
        .map(|i| u16_at(v, fnoff::NAME + 2 * i))
        .collect()
}

fn value_parent(v: &[u8]) -> u64 {
    u64_at(v, 0) & 0x0000_FFFF_FFFF_FFFF
}

impl Writer {
    /// The link `path` names.
    pub(crate) fn resolve(&self, path: &str) -> Result<Link> {
        let s = self.split(path)?;
        let dir = self.lookup_dir(&s.dir)?;
        let index = self.ntfs.dir_index(&dir, path)?;
        let e = index
            .find(&s.name, self.ntfs.upcase())?
            .ok_or_else(|| self.vol.ctx.not_found(path))?;
        let key = e.key.ok_or_else(|| self.vol.ctx.not_found(path))?;
        let file = self.ntfs.file(e.record)?;
        if e.sequence != 0 && e.sequence != file.sequence {
            return Err(self
                .vol
                .ctx
                .corrupt_at_path(path, "the directory entry names a reused record"));
        }
        use crate::names::Namespace;
        let partner = match key.namespace {
            Namespace::Win32 => Some(Namespace::Dos),
            Namespace::Dos => Some(Namespace::Win32),
            _ => None,
        };
        let mut names = vec![key.name.clone()];
        for n in file.names() {
            if n.parent == dir.record && Some(n.namespace) == partner {
                names.push(n.name);
            }
        }
        Ok(Link { dir, file, names })
    }

    /// The `$FILE_NAME`s of `link` in its record.
    fn link_values(&mut self, link: &Link) -> Result<Vec<(AttrAt, Vec<u8>)>> {
        let up = self.ntfs.upcase().clone();
        Ok(self
            .file_names(link.file.record)?
            .into_iter()
            .filter(|(_, v)| {
                value_parent(v) == link.dir.record
                    && link.names.iter().any(|n| up.cmp(n, &value_name(v)).is_eq())
            })
            .collect())
    }

    /// Deletes the file `path`: its link, and when that was its last, the file itself (its
    /// clusters, its records).
    pub fn delete(&mut self, path: &str) -> Result<()> {
        let link = self.resolve(path)?;
        if link.file.is_dir() {
            return Err(self
                .vol
                .ctx
                .invalid(format!("{path} is a directory; rehost deletes files only")));
        }
        guard::check_not_metafile(&link.file, path, &self.vol.ctx)?;
        let record = link.file.record;
        self.run(|w, op| {
            let time = w.now();
            let all = w.file_names(record)?.len();
            let base_names = link.file.names().len();
            let keep_file = base_names > link.names.len();
            if keep_file && (link.file.attribute_list().is_some() || all != base_names) {
                return Err(w.vol.ctx.unsupported(
                    0,
                    format!("{path}: the file's names span several MFT records"),
                ));
            }
            for n in &link.names {
                w.tree(op, link.dir.record)?.remove(
                    &w.vol,
                    w.ntfs.upcase(),
                    &mut w.clusters,
                    n,
                    record,
                )?;
            }
            if keep_file {
                let gone = w.link_values(&link)?;
                let r = w.mft.get(&w.vol, record)?;
                for (at, _) in gone.iter().rev() {
                    r.remove(at);
                }
                let links = r.link_count().saturating_sub(gone.len() as u16);
                r.set_link_count(links);
                w.touch(record, time)?;
            } else {
                for a in &link.file.attributes {
                    if let Body::NonResident(nr) = &a.body {
                        guard::check_owned(&nr.runs, &w.clusters, &w.meta, path, &w.vol.ctx)?;
                        w.free_runs(&nr.runs);
                    }
                }
                let mut records: Vec<u64> = link.file.attributes.iter().map(|a| a.record).collect();
                records.push(record);
                records.sort_unstable();
                records.dedup();
                for r in records {
                    w.mft.free(&w.vol, r)?;
                }
            }
            w.touch(link.dir.record, time)
        })?;
        if self.opts.verify {
            verify::absent(&self.ntfs, path, record)?;
        }
        Ok(())
    }

    /// Renames or moves `from` to `to` (a file or a directory; the directory of `to` must
    /// exist, `to` must not, unless it differs from `from` only in case).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let link = self.resolve(from)?;
        guard::check_not_metafile(&link.file, from, &self.vol.ctx)?;
        if link.file.attribute_list().is_some() {
            return Err(self.vol.ctx.unsupported(0, format!("{from}: the file's attributes span several MFT records; rehost does not rename such files")));
        }
        let s = self.split(to)?;
        let to_dir = self.lookup_dir(&s.dir)?;
        if link.file.is_dir() {
            self.check_not_inside(&to_dir, link.file.record, to)?;
        }
        let record = link.file.record;
        self.run(|w, op| {
            let time = w.now();
            let old = w.link_values(&link)?;
            // The long name (not the alias) gives times, sizes and attributes.
            let (_, model) = old
                .iter()
                .find(|(_, v)| v[fnoff::NAMESPACE] != namespace::DOS)
                .or(old.first())
                .cloned()
                .ok_or_else(|| {
                    w.vol
                        .ctx
                        .corrupt_at_path(from, "the link has no $FILE_NAME")
                })?;
            for n in &link.names {
                w.tree(op, link.dir.record)?.remove(
                    &w.vol,
                    w.ntfs.upcase(),
                    &mut w.clusters,
                    n,
                    record,
                )?;
            }
            {
                let r = w.mft.get(&w.vol, record)?;
                for (at, _) in old.iter().rev() {
                    r.remove(at);
                }
            }
            let t = w.template(op, &to_dir)?;
            let new = w.new_names(op, &to_dir, &s.name, t.short_names)?;
            let parent = names::file_ref(to_dir.record, to_dir.sequence);
            let created = u64_at(&model, fnoff::TIMES);
            let ctx = w.vol.ctx.clone();
            let seq = link.file.sequence;
            for (ns, nm) in &new {
                let mut v = names::file_name(
                    parent,
                    time,
                    u64_at(&model, fnoff::ALLOCATED),
                    u64_at(&model, fnoff::DATA),
                    crate::le::u32_at(&model, fnoff::ATTRIBUTES),
                    *ns,
                    nm,
                );
                v[fnoff::TIMES..fnoff::TIMES + 8].copy_from_slice(&created.to_le_bytes());
                let attr = resident(AT_FILE_NAME, &[], &v, 1);
                if w.mft
                    .get(&w.vol, record)?
                    .insert(attr.clone(), &ctx)?
                    .is_none()
                {
                    // A resident value may be taking the room: move it to clusters.
                    if link.file.is_dir()
                        || !w.data_evict(record, from)?
                        || w.mft.get(&w.vol, record)?.insert(attr, &ctx)?.is_none()
                    {
                        return Err(ctx.unsupported(
                            0,
                            format!("{to}: the file's record has no room for the new name"),
                        ));
                    }
                }
                w.tree(op, to_dir.record)?.insert(
                    &w.vol,
                    w.ntfs.upcase(),
                    &mut w.clusters,
                    names::file_ref(record, seq),
                    v,
                )?;
            }
            let r = w.mft.get(&w.vol, record)?;
            let links = r.link_count().saturating_sub(old.len() as u16) + new.len() as u16;
            r.set_link_count(links);
            w.touch(record, time)?;
            w.touch(link.dir.record, time)?;
            if to_dir.record != link.dir.record {
                w.touch(to_dir.record, time)?;
            }
            Ok(())
        })?;
        if self.opts.verify {
            verify::names(&self.ntfs, to, record)?;
            let up = self.ntfs.upcase();
            let same = |a: &str, b: &str| {
                let (a, b): (Vec<u16>, Vec<u16>) =
                    (a.encode_utf16().collect(), b.encode_utf16().collect());
                up.cmp(&a, &b).is_eq()
            };
            let from_norm = rehost_core::entry::components(from).join("/");
            let to_norm = rehost_core::entry::components(to).join("/");
            if !same(&from_norm, &to_norm) {
                verify::absent(&self.ntfs, from, record)?;
            }
        }
        Ok(())
    }

    /// Refuses to move directory `moving` into `target` or below it.
    fn check_not_inside(&self, target: &File, moving: u64, to: &str) -> Result<()> {
        let mut cur = target.clone();
        for _ in 0..4096 {
            if cur.record == moving {
                return Err(self
                    .vol
                    .ctx
                    .invalid(format!("{to} lies inside the directory being moved")));
            }
            if cur.record == RECORD_ROOT {
                return Ok(());
            }
            let parent = cur.names().first().map(|n| n.parent).ok_or_else(|| {
                self.vol
                    .ctx
                    .corrupt_at_path(to, "a directory without a name")
            })?;
            cur = self.ntfs.file(parent)?;
        }
        Err(self
            .vol
            .ctx
            .corrupt_at_path(to, "the directory chain does not reach the root"))
    }
}
