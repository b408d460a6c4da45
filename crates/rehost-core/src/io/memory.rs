//! A device held in memory: for tests, fixtures built on the fly, and small staged images.

use super::ReadAt;
use crate::error::{Ctx, Layer, Result};

/// Bytes in memory, read as a device.
pub struct Memory {
    bytes: Vec<u8>,
    ctx: Ctx,
}

impl Memory {
    /// A device holding `bytes`; `name` names it in errors.
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        Memory {
            bytes,
            ctx: Ctx::new(name, Layer::Raw),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl ReadAt for Memory {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !super::in_bounds(offset, buf.len(), self.bytes.len() as u64) {
            return Err(self
                .ctx
                .out_of_bounds(offset, buf.len() as u64, self.bytes.len() as u64));
        }
        let s = offset as usize;
        buf.copy_from_slice(&self.bytes[s..s + buf.len()]);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}
