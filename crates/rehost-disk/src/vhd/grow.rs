//! Growing a VHD: a fixed disk's footer moves to the new end; a dynamic disk's footers (the
//! copy at offset 0 too) and dynamic header take the new size, and its BAT takes the new
//! blocks' entries where the space after the table holds them.
//!
//! The footers keep every field but the current size, the CHS geometry (computed as the
//! specification's appendix does; a disk past its largest geometry keeps 65535/16/255, and
//! readers take the current size) and the checksum.

use super::footer::{be32, checksum, DYNAMIC, FIXED};
use super::{Vhd, SECTOR};
use crate::plan::HostWrite;
use crate::ReadAt;
use rehost_core::error::Result;

/// Largest VHD: 2040 GiB, the specification's bound for both fixed and dynamic disks.
pub const MAX_SIZE: u64 = 2040 << 30;

/// The CHS geometry of the specification for a disk of `size` bytes: cylinders, heads,
/// sectors per track.
pub fn geometry(size: u64) -> (u16, u8, u8) {
    let total = (size / SECTOR).min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        (spt, heads) = (255u64, 16u64);
        cth = total / spt;
    } else {
        let mut s = 17u64;
        let mut c = total / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        (spt, heads, cth) = (s, h, c);
    }
    ((cth / heads) as u16, heads as u8, spt as u8)
}

/// `footer` (512 bytes) for a disk of `size` bytes.
pub(super) fn resized_footer(footer: &[u8], size: u64) -> Vec<u8> {
    let mut f = footer[..512].to_vec();
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = geometry(size);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    let sum = checksum(&f, 64);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    f
}

impl Vhd {
    /// Why this VHD cannot grow to `new_size` bytes, if it cannot.
    pub(crate) fn growth_refusal(&self, new_size: u64) -> Option<String> {
        if new_size % SECTOR != 0 {
            return Some(format!("{new_size} bytes is not a whole number of sectors"));
        }
        if new_size > MAX_SIZE {
            return Some(format!(
                "a VHD holds at most 2040 GiB; {new_size} bytes is more"
            ));
        }
        match self.footer.disk_type {
            FIXED if self.file.size() > new_size + SECTOR => Some(format!(
                "the file holds {} bytes, more than the disk of {new_size} bytes and its footer",
                self.file.size()
            )),
            FIXED => None,
            DYNAMIC => {
                let d = self.dynamic.as_ref()?;
                let need = new_size.div_ceil(u64::from(d.header.block_size));
                let room = self.bat_room();
                (need > room).then(|| {
                    format!(
                        "its block allocation table has room for {room} entries (the space \
                         between the table and what follows it) and {need} are needed: \
                         convert it to a fixed VHD or a VHDX, or grow it with Hyper-V's \
                         Resize-VHD, first"
                    )
                })
            }
            _ => Some(
                "a differencing VHD grows with its parent: grow the parent (and merge) first"
                    .into(),
            ),
        }
    }

    /// BAT entries the file has room for: up to the first block, the dynamic header, a
    /// parent locator's data or the footer that follows the table.
    pub(super) fn bat_room(&self) -> u64 {
        let Some(d) = &self.dynamic else { return 0 };
        let start = d.header.table_offset;
        let mut after = self.file.size().saturating_sub(511);
        let mut consider = |at: u64| {
            if at >= start {
                after = after.min(at);
            }
        };
        consider(self.footer.data_offset);
        for l in &d.header.locators {
            consider(l.offset);
        }
        for e in d.bat.iter().filter(|e| **e != u32::MAX) {
            consider(u64::from(*e) * SECTOR);
        }
        after.saturating_sub(start) / 4
    }

    /// The writes of a fixed VHD grown from its current size to `new_size`: the footer at
    /// the new end. The old footer's bytes become disk bytes (written by the caller).
    pub(super) fn grown_fixed_footer(&self, footer: &[u8], new_size: u64) -> HostWrite {
        HostWrite::new(new_size, resized_footer(footer, new_size), "footer")
    }

    /// The dynamic header with `entries` BAT entries, its checksum again.
    pub(super) fn grown_header(&self, entries: u32) -> Result<HostWrite> {
        let at = self.footer.data_offset;
        let mut h = vec![0u8; 1024];
        self.file.read_at(at, &mut h)?;
        h[28..32].copy_from_slice(&entries.to_be_bytes());
        let sum = checksum(&h, 36);
        h[36..40].copy_from_slice(&sum.to_be_bytes());
        debug_assert_eq!(be32(&h, 28), entries);
        Ok(HostWrite::new(at, h, "dynamic header (BAT entries)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_as_the_specification_computes_it() {
        // Where the size is whole cylinders, qemu-img's `vpc` creation gives the same
        // geometry (the sample's 4,212,736 bytes: 121 x 4 x 17); where it is not, one
        // cylinder more (it grows such a disk to fit), the specification one less.
        assert_eq!(geometry(4_212_736), (121, 4, 17));
        assert_eq!(geometry(127 << 20), (1019, 15, 17));
        assert_eq!(geometry(40 << 30), (20560, 16, 255));
        assert_eq!(geometry(300 << 20), (609, 16, 63));
        assert_eq!(geometry(10 << 20), (301, 4, 17));
        assert_eq!(geometry(127 << 30), (65278, 16, 255));
        assert_eq!(geometry(2000 << 30), (65535, 16, 255));
    }
}
