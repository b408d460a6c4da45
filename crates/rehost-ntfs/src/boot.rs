//! The NTFS boot sector (BIOS parameter block) at offset 0 of the volume.

use super::le::{u16_at, u32_at, u64_at};
use rehost_core::error::{Ctx, Result};

/// Geometry read from the boot sector, validated.
#[derive(Debug, Clone)]
pub struct BootSector {
    /// Bytes per sector (512..4096, a power of two).
    pub bytes_per_sector: u32,
    /// Bytes per cluster (a power of two, at most 2 MiB).
    pub cluster_size: u32,
    /// Sectors in the volume (from the boot sector).
    pub total_sectors: u64,
    /// Cluster number of `$MFT`.
    pub mft_lcn: u64,
    /// Cluster number of `$MFTMirr`.
    pub mft_mirror_lcn: u64,
    /// Bytes per MFT record (FILE record).
    pub record_size: u32,
    /// Bytes per index record (INDX block).
    pub index_record_size: u32,
    /// Volume serial number.
    pub serial: u64,
    /// BPB sectors per track (geometry as Windows wrote it).
    pub sectors_per_track: u16,
    /// BPB number of heads.
    pub heads: u16,
    /// BPB hidden sectors: where Windows thinks the volume starts on its disk.
    pub hidden_sectors: u32,
}

impl BootSector {
    /// Parses and checks a 512-byte boot sector.
    pub fn parse(b: &[u8], volume_size: u64, ctx: &Ctx) -> Result<Self> {
        if b.len() < 512 || &b[3..11] != b"NTFS    " {
            return Err(ctx.corrupt(3, "no NTFS boot sector (OEM id is not \"NTFS    \")"));
        }
        let bytes_per_sector = u16_at(b, 0x0B) as u32;
        if !(512..=4096).contains(&bytes_per_sector) || !bytes_per_sector.is_power_of_two() {
            return Err(ctx.corrupt(
                0x0B,
                format!("bytes per sector {bytes_per_sector} is not 512..4096 and a power of two"),
            ));
        }
        // Sectors per cluster: a power of two up to 128, or, read as a signed byte, -n for
        // 2^n sectors (Windows 10 1709+ formats clusters of 128 KiB to 2 MiB so: 0xF8 is
        // 256 sectors, 0xF4 is 4096). The exponent counts sectors, not bytes.
        let spc_raw = b[0x0D];
        let cluster_size = match spc_raw {
            1..=0x80 if spc_raw.is_power_of_two() => bytes_per_sector * spc_raw as u32,
            0xF4..=0xFF => bytes_per_sector
                .checked_shl(256 - spc_raw as u32)
                .unwrap_or(0),
            _ => 0,
        };
        if cluster_size == 0 || cluster_size > 2 * 1024 * 1024 || cluster_size < bytes_per_sector {
            return Err(ctx.corrupt(
                0x0D,
                format!("sectors per cluster byte {spc_raw:#x} is invalid"),
            ));
        }
        let total_sectors = u64_at(b, 0x28);
        let mft_lcn = u64_at(b, 0x30);
        let mft_mirror_lcn = u64_at(b, 0x38);
        let record_size = record_bytes(b[0x40] as i8, cluster_size)
            .filter(|s| (256..=65536).contains(s) && s.is_power_of_two())
            .ok_or_else(|| {
                ctx.corrupt(
                    0x40,
                    format!("clusters per MFT record {:#x} is invalid", b[0x40]),
                )
            })?;
        let index_record_size = record_bytes(b[0x44] as i8, cluster_size)
            .filter(|s| (256..=65536).contains(s) && s.is_power_of_two())
            .ok_or_else(|| {
                ctx.corrupt(
                    0x44,
                    format!("clusters per index record {:#x} is invalid", b[0x44]),
                )
            })?;
        let size_bytes = total_sectors.checked_mul(bytes_per_sector as u64);
        if size_bytes.is_none_or(|s| s > volume_size.saturating_add(bytes_per_sector as u64)) {
            return Err(ctx.corrupt(
                0x28,
                format!(
                    "the boot sector says {total_sectors} sectors, more than the {volume_size} bytes of the volume"
                ),
            ));
        }
        let clusters = total_sectors * bytes_per_sector as u64 / cluster_size as u64;
        if mft_lcn == 0 || mft_lcn >= clusters {
            return Err(ctx.corrupt(
                0x30,
                format!("$MFT cluster {mft_lcn} is outside the volume"),
            ));
        }
        Ok(BootSector {
            bytes_per_sector,
            cluster_size,
            total_sectors,
            mft_lcn,
            mft_mirror_lcn,
            record_size,
            index_record_size,
            serial: u64_at(b, 0x48),
            sectors_per_track: u16_at(b, 0x18),
            heads: u16_at(b, 0x1A),
            hidden_sectors: u32_at(b, 0x1C),
        })
    }

    /// Clusters in the volume.
    pub fn total_clusters(&self) -> u64 {
        self.total_sectors * self.bytes_per_sector as u64 / self.cluster_size as u64
    }
}

/// A record size byte: positive = clusters, negative = 2^-n bytes.
fn record_bytes(raw: i8, cluster_size: u32) -> Option<u32> {
    if raw > 0 {
        cluster_size.checked_mul(raw as u32)
    } else {
        let shift = (-(raw as i32)) as u32;
        1u32.checked_shl(shift)
    }
}
