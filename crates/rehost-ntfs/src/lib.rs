//! NTFS volumes, read by rehost's own parser.
//!
//! The reader follows the on-disk structures one file per structure: [`boot`] (the BIOS
//! parameter block), [`fixup`] (update sequence arrays), [`record`] (FILE records and
//! attributes), [`runlist`] (data runs), [`stream`] (values with holes, the initialized
//! size and LZNT1 compression units), [`index`] (the `$I30` B+ tree), [`names`]
//! (`$FILE_NAME`, `$STANDARD_INFORMATION`), [`facts`] (`$Volume`, `$LogFile`, hibernation).
//!
//! It is written here rather than taken from the `ntfs` crate because the crate cannot be
//! bounded on damaged input (one call can follow an index loop forever), reads compressed
//! files as raw bytes, ignores the initialized size, cannot read an `$MFT` split by an
//! attribute list, and keeps the record bytes the writer needs private. The `ntfs` crate
//! serves instead as the independent reader that tests compare against.
//!
//! ```no_run
//! use rehost_core::io::ReadAt;
//! use rehost_core::{Ctx, Layer};
//! use rehost_disk as disk;
//! use rehost_ntfs::Ntfs;
//! let disk = disk::open("volume.raw".as_ref(), &Default::default())?;
//! let ntfs = Ntfs::open(disk.reader(), Ctx::new("volume.raw", Layer::Ntfs))?;
//! let file = ntfs.lookup("/Windows/System32/config/SYSTEM")?;
//! let data = ntfs.data(&file, "")?;
//! let mut head = [0u8; 4];
//! data.read_at(0, &mut head)?;
//! # Ok::<(), rehost_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod boot;
pub mod facts;
pub mod file;
pub mod fixup;
pub mod index;
pub(crate) mod le;
pub mod lznt1;
pub mod names;
pub mod record;
pub mod runlist;
pub mod stream;
pub mod upcase;
pub mod vss;
pub mod write;

use boot::BootSector;
use file::File;
use index::DirIndex;
use names::Namespace;
use record::{Record, AT_ATTRIBUTE_LIST, AT_DATA, AT_INDEX_ALLOCATION, AT_INDEX_ROOT};
use rehost_core::entry::DirEntry;
use rehost_core::error::{Ctx, Location, Result};
use rehost_core::io::ReadAt;
use std::sync::Arc;
use stream::{Stream, StreamDesc};
use upcase::UpCase;

/// Record number of `$MFT`.
pub const RECORD_MFT: u64 = 0;
/// Record number of `$LogFile`.
pub const RECORD_LOGFILE: u64 = 2;
/// Record number of `$Volume`.
pub const RECORD_VOLUME: u64 = 3;
/// Record number of the root directory.
pub const RECORD_ROOT: u64 = 5;
/// Record number of `$UpCase`.
pub const RECORD_UPCASE: u64 = 10;

/// An opened NTFS volume.
pub struct Ntfs {
    dev: Arc<dyn ReadAt>,
    ctx: Ctx,
    boot: BootSector,
    mft: Stream,
    records: u64,
    upcase: UpCase,
    notes: Vec<String>,
}

impl Ntfs {
    /// Opens the NTFS volume on `dev`; `ctx` names the image in errors.
    pub fn open(dev: Arc<dyn ReadAt>, ctx: Ctx) -> Result<Ntfs> {
        let ctx = ctx.with_layer(rehost_core::Layer::Ntfs);
        let mut sector = [0u8; 512];
        dev.read_at(0, &mut sector)?;
        let boot = BootSector::parse(&sector, dev.size(), &ctx)?;
        let mft_desc = bootstrap_mft(&dev, &boot, &ctx)?;
        let records = mft_desc.data_size / boot.record_size as u64;
        let mft = Stream::new(
            dev.clone(),
            mft_desc,
            boot.cluster_size,
            ctx.clone(),
            "$MFT".into(),
        )?;
        let mut ntfs = Ntfs {
            dev,
            ctx,
            boot,
            mft,
            records,
            upcase: UpCase::empty(),
            notes: Vec::new(),
        };
        match ntfs.read_upcase() {
            Ok(u) => ntfs.upcase = u,
            Err(e) => {
                ntfs.upcase = UpCase::fallback();
                ntfs.notes.push(format!(
                    "$UpCase unreadable ({e}); using Unicode's simple case mapping"
                ));
            }
        }
        Ok(ntfs)
    }

    /// The same volume after writes into its device: the boot sector and `$UpCase` (which
    /// no file write changes) are kept, the `$MFT`'s own record is read again, so that
    /// records the writes added are found. Cheaper than [`Ntfs::open`] by the 128 KiB
    /// upcase table and the boot sector's checks.
    pub fn refreshed(&self) -> Result<Ntfs> {
        let mft_desc = bootstrap_mft(&self.dev, &self.boot, &self.ctx)?;
        let records = mft_desc.data_size / self.boot.record_size as u64;
        let mft = Stream::new(
            self.dev.clone(),
            mft_desc,
            self.boot.cluster_size,
            self.ctx.clone(),
            "$MFT".into(),
        )?;
        Ok(Ntfs {
            dev: self.dev.clone(),
            ctx: self.ctx.clone(),
            boot: self.boot.clone(),
            mft,
            records,
            upcase: self.upcase.clone(),
            notes: self.notes.clone(),
        })
    }

    fn read_upcase(&self) -> Result<UpCase> {
        let f = self.file(RECORD_UPCASE)?;
        let s = self.data(&f, "")?;
        if s.size() != 131072 {
            return Err(self
                .ctx
                .corrupt_at_path("$UpCase", format!("size {} is not 131072", s.size())));
        }
        let mut b = vec![0u8; 131072];
        s.read_at(0, &mut b)?;
        UpCase::from_vec(b).ok_or_else(|| self.ctx.corrupt_at_path("$UpCase", "bad table"))
    }

    /// The boot sector's geometry.
    pub fn boot(&self) -> &BootSector {
        &self.boot
    }

    /// The error context (image, ntfs layer).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The device the volume is read from.
    pub fn device(&self) -> &Arc<dyn ReadAt> {
        &self.dev
    }

    /// Things noticed while opening (an unreadable `$UpCase`, ...).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The volume's upper-case table.
    pub fn upcase(&self) -> &UpCase {
        &self.upcase
    }

    /// Number of records the MFT holds.
    pub fn record_count(&self) -> u64 {
        self.records
    }

    /// Reads MFT record `n`, fixups applied.
    pub fn record(&self, n: u64) -> Result<Record> {
        if n >= self.records {
            return Err(self.ctx.error(
                Location::None,
                rehost_core::ErrorKind::Corrupt(format!(
                    "MFT record {n} is past the end of the MFT ({} records)",
                    self.records
                )),
            ));
        }
        let rs = self.boot.record_size as u64;
        let mut data = vec![0u8; rs as usize];
        self.mft.read_at(n * rs, &mut data)?;
        let pos = volume_offset(&self.mft, n * rs);
        Record::parse(n, data, pos, &self.ctx)
    }

    /// Reads file `n`: its base record and, through `$ATTRIBUTE_LIST`, its extension records.
    pub fn file(&self, n: u64) -> Result<File> {
        let rec = self.record(n)?;
        if !rec.in_use() {
            return Err(self
                .ctx
                .corrupt(rec.pos, format!("MFT record {n} is not in use")));
        }
        if rec.base_record != 0 {
            return Err(self.ctx.corrupt(
                rec.pos,
                format!(
                    "MFT record {n} is an extension of record {}",
                    rec.base_record
                ),
            ));
        }
        let attrs = rec.attributes(self.boot.total_clusters(), &self.ctx)?;
        let mut file = File::from_base(&rec, attrs);
        if let Some(list) = file.attribute_list().cloned() {
            let what = format!("MFT record {n} $ATTRIBUTE_LIST");
            let desc = StreamDesc::from_extents(vec![&list], &what, &self.ctx)?;
            if desc.data_size > 1 << 20 {
                return Err(self
                    .ctx
                    .corrupt(list.pos, format!("{what} is {} bytes", desc.data_size)));
            }
            let s = Stream::new(
                self.dev.clone(),
                desc,
                self.boot.cluster_size,
                self.ctx.clone(),
                what.clone(),
            )?;
            let mut value = vec![0u8; s.size() as usize];
            s.read_at(0, &mut value)?;
            let mut others: Vec<u64> = file::parse_attribute_list(&value, &self.ctx, &what)?
                .into_iter()
                .map(|e| e.record)
                .filter(|r| *r != n)
                .collect();
            others.sort_unstable();
            others.dedup();
            if others.len() > file::MAX_EXTENSIONS {
                return Err(self
                    .ctx
                    .corrupt(list.pos, format!("{what} names {} records", others.len())));
            }
            for r in others {
                let ext = self.record(r)?;
                if ext.base_record != n {
                    return Err(self.ctx.corrupt(
                        ext.pos,
                        format!(
                            "MFT record {r} is listed by record {n} but belongs to {}",
                            ext.base_record
                        ),
                    ));
                }
                let more = ext.attributes(self.boot.total_clusters(), &self.ctx)?;
                file.attributes
                    .extend(more.into_iter().filter(|a| a.ty != AT_ATTRIBUTE_LIST));
            }
        }
        Ok(file)
    }

    /// Size of file `n`'s unnamed `$DATA` stream as its own record gives it (0 when it has
    /// none, as directories). Directory indexes hold a copy of this size that Windows
    /// updates lazily (`$LogFile` and open hives show 0 there). Reads the base record alone
    /// when it holds the stream's first extent, and the extension records only when an
    /// attribute list moved that extent out.
    pub fn data_size(&self, n: u64) -> Result<u64> {
        let rec = self.record(n)?;
        if rec.in_use() && rec.base_record == 0 {
            let attrs = rec.attributes(self.boot.total_clusters(), &self.ctx)?;
            let first = attrs.iter().find_map(|a| match &a.body {
                _ if a.ty != AT_DATA || !a.name.is_empty() => None,
                record::Body::Resident(v) => Some(v.len() as u64),
                record::Body::NonResident(x) if x.start_vcn == 0 => Some(x.data_size),
                record::Body::NonResident(_) => None,
            });
            if let Some(size) = first {
                return Ok(size);
            }
            if !attrs.iter().any(|a| a.ty == AT_ATTRIBUTE_LIST) {
                return Ok(0);
            }
        }
        let f = self.file(n)?;
        let what = format!("MFT record {n}");
        Ok(f.stream_desc(AT_DATA, "", &self.ctx, &what)?
            .map_or(0, |d| d.data_size))
    }

    /// The root directory.
    pub fn root(&self) -> Result<File> {
        self.file(RECORD_ROOT)
    }

    /// Finds a file by path (`/` or `\` separators, any case).
    pub fn lookup(&self, path: &str) -> Result<File> {
        let mut cur = self.root()?;
        let mut walked = String::new();
        for comp in rehost_core::entry::components(path) {
            walked.push('\\');
            walked.push_str(comp);
            if !cur.is_dir() {
                return Err(self.ctx.not_found(&walked));
            }
            let index = self.dir_index(&cur, &walked)?;
            let name: Vec<u16> = comp.encode_utf16().collect();
            let entry = index
                .find(&name, &self.upcase)?
                .ok_or_else(|| self.ctx.not_found(&walked))?;
            let next = self.file(entry.record)?;
            if entry.sequence != 0 && entry.sequence != next.sequence {
                return Err(self.ctx.corrupt_at_path(
                    &walked,
                    format!(
                        "index entry expects record {} with sequence {}, the record has {}",
                        entry.record, entry.sequence, next.sequence
                    ),
                ));
            }
            cur = next;
        }
        Ok(cur)
    }

    /// The `$I30` index of a directory. `path` names it in errors.
    pub fn dir_index(&self, dir: &File, path: &str) -> Result<DirIndex> {
        let root = dir
            .stream_desc(AT_INDEX_ROOT, "$I30", &self.ctx, path)?
            .and_then(|d| d.resident)
            .ok_or_else(|| {
                self.ctx
                    .corrupt_at_path(path, "directory has no resident $INDEX_ROOT")
            })?;
        let alloc = match dir.stream_desc(AT_INDEX_ALLOCATION, "$I30", &self.ctx, path)? {
            Some(d) => Some(Stream::new(
                self.dev.clone(),
                d,
                self.boot.cluster_size,
                self.ctx.clone(),
                path.into(),
            )?),
            None => None,
        };
        DirIndex::new(
            &root,
            alloc,
            self.boot.cluster_size,
            self.ctx.clone(),
            path.to_string(),
        )
    }

    /// Lists a directory from its index: one entry per file name that is not a bare DOS
    /// alias; sizes as the index records them.
    pub fn read_dir(&self, dir: &File, path: &str) -> Result<Vec<DirEntry>> {
        let index = self.dir_index(dir, path)?;
        Ok(index
            .entries()?
            .into_iter()
            .filter_map(|e| {
                let key = e.key?;
                (key.namespace != Namespace::Dos).then(|| DirEntry {
                    name: key.name_string(),
                    inode: e.record,
                    size: if key.is_dir() { 0 } else { key.data_size },
                    is_dir: key.is_dir(),
                })
            })
            .collect())
    }

    /// The `$DATA` stream `name` ("" for the unnamed one) of a file, as a device.
    pub fn data(&self, file: &File, name: &str) -> Result<Stream> {
        let what = if name.is_empty() {
            format!("MFT record {}", file.record)
        } else {
            format!("MFT record {}:{name}", file.record)
        };
        let desc = file
            .stream_desc(AT_DATA, name, &self.ctx, &what)?
            .ok_or_else(|| self.ctx.not_found(&what))?;
        Stream::new(
            self.dev.clone(),
            desc,
            self.boot.cluster_size,
            self.ctx.clone(),
            what,
        )
    }
}

/// Volume offset of byte `offset` of a stream (0 when unmapped), for messages.
fn volume_offset(s: &Stream, offset: u64) -> u64 {
    s.extents()
        .iter()
        .find(|e| e.offset <= offset && offset < e.offset + e.len)
        .and_then(|e| e.volume_offset.map(|v| v + offset - e.offset))
        .unwrap_or(0)
}

/// Reads `$MFT`'s own record and puts together its `$DATA`, following an attribute list
/// into extension records that lie in the part of the MFT already mapped.
fn bootstrap_mft(dev: &Arc<dyn ReadAt>, boot: &BootSector, ctx: &Ctx) -> Result<StreamDesc> {
    let rs = boot.record_size as usize;
    let pos = boot.mft_lcn * boot.cluster_size as u64;
    let mut data = vec![0u8; rs];
    dev.read_at(pos, &mut data)?;
    let rec = Record::parse(0, data, pos, ctx)?;
    let clusters = boot.total_clusters();
    let mut attrs = rec.attributes(clusters, ctx)?;
    let what = "$MFT";
    let list = attrs.iter().find(|a| a.ty == AT_ATTRIBUTE_LIST).cloned();
    attrs.retain(|a| a.ty == AT_DATA && a.name.is_empty());
    if let Some(list) = list {
        let Some(value) = list.resident().map(<[u8]>::to_vec) else {
            return Err(ctx.unsupported(list.pos, "$MFT has a non-resident attribute list"));
        };
        let mut pending: Vec<u64> = file::parse_attribute_list(&value, ctx, what)?
            .into_iter()
            .filter(|e| e.ty == AT_DATA && e.record != 0)
            .map(|e| e.record)
            .collect();
        pending.sort_unstable();
        pending.dedup();
        if pending.len() > file::MAX_EXTENSIONS {
            return Err(ctx.corrupt(list.pos, "$MFT attribute list names too many records"));
        }
        // Each round reads the extension records that the runs known so far can reach.
        while !pending.is_empty() {
            let mut partial = contiguous_prefix(&attrs, what, ctx)?;
            let mapped = partial.runs.iter().map(|r| r.len).sum::<u64>() * boot.cluster_size as u64;
            partial.data_size = partial.data_size.min(mapped);
            partial.initialized_size = partial.initialized_size.min(mapped);
            let mft = Stream::new(
                dev.clone(),
                partial,
                boot.cluster_size,
                ctx.clone(),
                what.into(),
            )?;
            let before = pending.len();
            let mut rest = Vec::new();
            for r in pending {
                let off = r * rs as u64;
                if off + rs as u64 > mapped.min(mft.size()) {
                    rest.push(r);
                    continue;
                }
                let mut data = vec![0u8; rs];
                mft.read_at(off, &mut data)?;
                let ext = Record::parse(r, data, volume_offset(&mft, off), ctx)?;
                attrs.extend(
                    ext.attributes(clusters, ctx)?
                        .into_iter()
                        .filter(|a| a.ty == AT_DATA && a.name.is_empty()),
                );
            }
            if rest.len() == before {
                return Err(
                    ctx.unsupported(pos, "$MFT extension records lie outside the mapped MFT")
                );
            }
            pending = rest;
        }
    }
    let desc = StreamDesc::from_extents(attrs.iter().collect(), what, ctx)?;
    if desc.resident.is_some() || desc.data_size < 16 * rs as u64 {
        return Err(ctx.corrupt(pos, "$MFT's $DATA is too small to hold the system files"));
    }
    Ok(desc)
}

/// The extents of `$MFT` known so far, from VCN 0 while they follow on.
fn contiguous_prefix(attrs: &[record::Attribute], what: &str, ctx: &Ctx) -> Result<StreamDesc> {
    let mut sorted: Vec<&record::Attribute> = attrs.iter().collect();
    sorted.sort_by_key(|a| match &a.body {
        record::Body::NonResident(n) => n.start_vcn,
        record::Body::Resident(_) => 0,
    });
    let mut keep = Vec::new();
    let mut next = 0u64;
    for a in sorted {
        if let record::Body::NonResident(n) = &a.body {
            if n.start_vcn != next {
                break;
            }
            next = n.last_vcn.wrapping_add(1);
        }
        keep.push(a);
    }
    StreamDesc::from_extents(keep, what, ctx)
}
