//! Growing a VHDX (MS-VHDX 2.6.2.3, 2.5): the metadata region's virtual disk size item
//! takes the new size and the BAT the new blocks' entries, both through the log with the
//! commit's other metadata pages; the BAT region must already hold the entries (its length
//! is fixed in the region table). A fixed VHDX (LeaveBlockAllocated) gets its new blocks
//! allocated, as Hyper-V grows one; a dynamic one leaves them not present.

use super::metadata::MAX_VIRTUAL_SIZE;
use super::source::PAGE;
use super::Vhdx;
use rehost_core::error::Result;
use std::collections::BTreeMap;

impl Vhdx {
    /// BAT entries of a disk of `size` bytes (MS-VHDX 2.5: payload entries with a sector
    /// bitmap entry after each chunk's; a differencing disk's whole chunks).
    pub(super) fn bat_entries(&self, size: u64) -> u64 {
        let payload = size.div_ceil(self.bat.block_size);
        let cr = self.bat.chunk_ratio;
        if self.parent.is_some() {
            payload.div_ceil(cr) * (cr + 1)
        } else {
            payload + payload.saturating_sub(1) / cr
        }
    }

    /// Why this VHDX cannot grow to `new_size` bytes, if it cannot.
    pub(crate) fn growth_refusal(&self, new_size: u64) -> Option<String> {
        let ss = self.logical_sector_size;
        if new_size % ss != 0 {
            return Some(format!(
                "{new_size} bytes is not a whole number of {ss}-byte sectors"
            ));
        }
        if new_size > MAX_VIRTUAL_SIZE {
            return Some(format!(
                "a VHDX holds at most 64 TiB; {new_size} bytes is more"
            ));
        }
        if self.parent.is_some() {
            return Some(
                "a differencing VHDX grows with its parent: grow the parent (and merge) first"
                    .into(),
            );
        }
        if self.src.replayed() {
            return Some(
                "its log holds updates never written into the file: replay it first \
                 (qemu-img check -r all, or attach the disk once in Hyper-V)"
                    .into(),
            );
        }
        let need = self.bat_entries(new_size);
        let room = self.regions.bat.length / 8;
        (need > room).then(|| {
            format!(
                "its BAT region holds {room} entries and {need} are needed (the region's \
                 length is fixed in the region table): grow it with Hyper-V's Resize-VHD or \
                 `qemu-img resize` first"
            )
        })
    }

    /// The metadata pages a disk grown from its size to `new_size` changes, before the
    /// BAT entries of new blocks are set in them: the virtual disk size item's page, and
    /// the BAT pages of the new entries, those entries cleared (not present).
    pub(super) fn grown_pages(&self, new_size: u64) -> Result<BTreeMap<u64, Vec<u8>>> {
        let mut pages = BTreeMap::new();
        let size_page = self.virtual_size_at - self.virtual_size_at % PAGE;
        let mut p = vec![0u8; PAGE as usize];
        self.src.read(size_page, &mut p)?;
        let o = (self.virtual_size_at - size_page) as usize;
        p[o..o + 8].copy_from_slice(&new_size.to_le_bytes());
        pages.insert(size_page, p);
        let from = self.bat.offset() + self.bat.len() * 8;
        let to = self.bat.offset() + self.bat_entries(new_size) * 8;
        let mut page = from - from % PAGE;
        while page < to {
            let mut p = vec![0u8; PAGE as usize];
            self.src.read(page, &mut p)?;
            let lo = from.max(page) - page;
            let hi = to.min(page + PAGE) - page;
            p[lo as usize..hi as usize].fill(0);
            pages.insert(page, p);
            page += PAGE;
        }
        Ok(pages)
    }
}
