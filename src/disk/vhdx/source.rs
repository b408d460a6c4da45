//! The file as the VHDX reader sees it: the host file, with the log's updates laid over it
//! in memory when a log was replayed. Nothing is ever written back.

use crate::disk::{HostFile, ReadAt};
use crate::error::{Ctx, Result};
use std::collections::BTreeMap;

/// Size of a log update.
pub const PAGE: u64 = 4096;

/// The host file seen through replayed log updates.
pub struct Source {
    file: HostFile,
    ctx: Ctx,
    pages: BTreeMap<u64, Vec<u8>>,
    zeros: Vec<(u64, u64)>,
    size: u64,
}

impl Source {
    /// The file as it is.
    pub fn new(file: HostFile, ctx: Ctx) -> Self {
        let size = file.size();
        Source {
            file,
            ctx,
            pages: BTreeMap::new(),
            zeros: Vec::new(),
            size,
        }
    }

    /// The host file.
    pub fn file(&self) -> &HostFile {
        &self.file
    }

    /// Size of the file after replay (a replayed log can extend it).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Lays a 4 KiB update over the file at `offset` (a multiple of 4 KiB).
    pub fn put_page(&mut self, offset: u64, data: Vec<u8>) {
        self.size = self.size.max(offset + PAGE);
        self.pages.insert(offset, data);
    }

    /// Lays zeros over `len` bytes at `offset`, hiding earlier updates there.
    pub fn put_zeros(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let inside: Vec<u64> = self.pages.range(offset..end).map(|(k, _)| *k).collect();
        for k in inside {
            self.pages.remove(&k);
        }
        self.zeros.push((offset, end));
        self.size = self.size.max(end);
    }

    /// Grows the seen size to at least `size` (the log's last file offset).
    pub fn grow_to(&mut self, size: u64) {
        self.size = self.size.max(size);
    }

    /// Whether any update was laid over the file.
    pub fn replayed(&self) -> bool {
        !self.pages.is_empty() || !self.zeros.is_empty()
    }

    /// Reads `buf` at `offset`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !crate::disk::in_bounds(offset, buf.len(), self.size) {
            return Err(self.ctx.out_of_bounds(offset, buf.len() as u64, self.size));
        }
        if !self.replayed() {
            return self.file_part(offset, buf);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let page = pos - pos % PAGE;
            let within = (pos - page) as usize;
            let n = (PAGE as usize - within).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            if let Some(p) = self.pages.get(&page) {
                out.copy_from_slice(&p[within..within + n]);
            } else if self.zeros.iter().rev().any(|(s, e)| *s <= pos && pos < *e) {
                out.fill(0);
            } else {
                self.file_part(pos, out)?;
            }
            done += n;
        }
        Ok(())
    }

    /// Reads from the host file; bytes past its end (a file extended by the log) are zeros.
    fn file_part(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let n = self.file.read_some_at(offset, buf)?;
        buf[n..].fill(0);
        Ok(())
    }
}
