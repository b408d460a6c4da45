//! FAT12/16/32 volumes (the EFI system partition), read through the `fatfs` crate (stub).

use super::DirEntry;
use crate::disk::ReadAt;
use crate::error::{Ctx, Result};
use std::sync::Arc;

/// An opened FAT volume.
pub struct Fat {
    ctx: Ctx,
}

impl Fat {
    /// Opens a FAT volume.
    pub fn open(_dev: Arc<dyn ReadAt>, ctx: Ctx) -> Result<Fat> {
        Err(ctx.unsupported(0, "FAT reading not yet implemented"))
    }
    /// The error context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }
    /// Stats a path.
    pub fn stat(&self, path: &str) -> Result<DirEntry> {
        Err(self.ctx.not_found(path))
    }
    /// Lists a directory.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        Err(self.ctx.not_found(path))
    }
    /// Copies a file out.
    pub fn read_file(&self, path: &str, _out: &mut dyn std::io::Write) -> Result<u64> {
        Err(self.ctx.not_found(path))
    }
}
