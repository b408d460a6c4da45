//! The VHD footer: 512 big-endian bytes at the end of the file (and, for dynamic and
//! differencing disks, a copy at offset 0).

use rehost_core::error::{Ctx, Result};

/// Disk type: fixed.
pub const FIXED: u32 = 2;
/// Disk type: dynamic.
pub const DYNAMIC: u32 = 3;
/// Disk type: differencing.
pub const DIFFERENCING: u32 = 4;

/// A checked footer.
#[derive(Debug, Clone)]
pub struct Footer {
    /// Offset of the dynamic disk header (`u64::MAX` for fixed disks).
    pub data_offset: u64,
    /// Size of the virtual disk in bytes (never the CHS geometry).
    pub current_size: u64,
    /// 2 fixed, 3 dynamic, 4 differencing.
    pub disk_type: u32,
    /// The disk's identity, as stored (big-endian GUID bytes).
    pub unique_id: [u8; 16],
    /// Creator application, four characters.
    pub creator: String,
    /// Why the stored checksum is not to be trusted, if it does not match.
    pub checksum_error: Option<String>,
}

/// Big-endian field reads over a slice known to be long enough.
pub(super) fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub(super) fn be64(b: &[u8], o: usize) -> u64 {
    (be32(b, o) as u64) << 32 | be32(b, o + 4) as u64
}

/// The one's complement of the byte sum, skipping the four checksum bytes at `skip`.
pub fn checksum(b: &[u8], skip: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(skip..skip + 4).contains(i))
        .fold(0u32, |s, (_, v)| s.wrapping_add(*v as u32));
    !sum
}

impl Footer {
    /// Parses and checks 512 (or 511) footer bytes read at file offset `at`.
    pub fn parse(b: &[u8], at: u64, ctx: &Ctx) -> Result<Footer> {
        if b.len() < 511 || &b[..8] != b"conectix" {
            return Err(ctx.corrupt(at, "no VHD footer (cookie \"conectix\")"));
        }
        let mut full = [0u8; 512];
        full[..b.len().min(512)].copy_from_slice(&b[..b.len().min(512)]);
        let stored = be32(&full, 64);
        let computed = checksum(&full, 64);
        let checksum_error = (stored != computed).then(|| {
            format!("footer checksum {stored:#010x} at {:#x} does not match its bytes ({computed:#010x})", at + 64)
        });
        let disk_type = be32(&full, 60);
        if !matches!(disk_type, FIXED | DYNAMIC | DIFFERENCING) {
            return Err(ctx.unsupported(at + 60, format!("VHD disk type {disk_type}")));
        }
        let current_size = be64(&full, 48);
        if current_size == 0 || current_size % 512 != 0 {
            return Err(ctx.corrupt(
                at + 48,
                format!("current size {current_size} is not a positive multiple of 512"),
            ));
        }
        let mut unique_id = [0u8; 16];
        unique_id.copy_from_slice(&full[68..84]);
        Ok(Footer {
            data_offset: be64(&full, 16),
            current_size,
            disk_type,
            unique_id,
            creator: String::from_utf8_lossy(&full[28..32])
                .trim_end_matches('\0')
                .to_string(),
            checksum_error,
        })
    }
}

/// A VHD GUID as Windows prints it. VHD stores GUIDs in the order Windows keeps them in
/// memory, so the first three fields are little-endian.
pub fn guid(b: &[u8; 16]) -> String {
    rehost_core::le::guid(b, 0)
}
