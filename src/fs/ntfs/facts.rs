//! Volume facts: label, NTFS version, dirty flag, `$LogFile` state, hibernation.

use super::le::{u16_at, u32_at};
use super::record::{AT_VOLUME_INFORMATION, AT_VOLUME_NAME};
use super::{fixup, Ntfs, RECORD_LOGFILE, RECORD_VOLUME};
use crate::disk::ReadAt;
use crate::error::Result;
use serde::Serialize;

/// `$VOLUME_INFORMATION` flag: the volume is dirty (chkdsk runs at the next mount).
pub const VOLUME_IS_DIRTY: u16 = 0x0001;
/// Restart area flag: the volume was shut down cleanly.
const RESTART_VOLUME_IS_CLEAN: u16 = 0x0002;
/// Client list terminator: no log client in use.
const LOGFILE_NO_CLIENT: u16 = 0xFFFF;

/// What a volume says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct NtfsFacts {
    /// Bytes per sector.
    pub sector_size: u32,
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Bytes per MFT record.
    pub record_size: u32,
    /// Volume size in bytes (from the boot sector).
    pub size: u64,
    /// Volume serial number, 16 hex digits.
    pub serial: String,
    /// Volume label.
    pub label: Option<String>,
    /// NTFS version ("3.1").
    pub version: Option<String>,
    /// `$VOLUME_INFORMATION` flags.
    pub volume_flags: u16,
    /// The dirty flag is set.
    pub dirty: bool,
    /// State of `$LogFile`.
    pub logfile: LogFileState,
    /// `hiberfil.sys`, when present.
    pub hibernation: Option<Hibernation>,
}

/// State of `$LogFile`'s restart area.
#[derive(Debug, Clone, Serialize)]
pub struct LogFileState {
    /// No log client in use, or the clean flag set, or the log emptied: Windows has nothing
    /// to replay.
    pub clean: bool,
    /// Restart page version ("1.1", "2.0"), when readable.
    pub version: Option<String>,
    /// Why the state was decided so.
    pub detail: String,
}

/// `hiberfil.sys` and what its first bytes say.
#[derive(Debug, Clone, Serialize)]
pub struct Hibernation {
    /// Size of the file.
    pub size: u64,
    /// The signature in its first four bytes ("hibr", "HIBR", "wake", or empty for zeros).
    pub signature: String,
    /// A hibernation image waits to be resumed (`hibr`/`HIBR`): the volume must not be written.
    pub active: bool,
}

impl Ntfs {
    /// Reads the volume's facts: `$Volume`, `$LogFile`, `hiberfil.sys`.
    pub fn facts(&self) -> Result<NtfsFacts> {
        let vol = self.file(RECORD_VOLUME)?;
        let label = vol
            .attributes
            .iter()
            .find(|a| a.ty == AT_VOLUME_NAME)
            .and_then(|a| a.resident())
            .map(|v| {
                let units: Vec<u16> = v
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            });
        let info = vol
            .attributes
            .iter()
            .find(|a| a.ty == AT_VOLUME_INFORMATION)
            .and_then(|a| a.resident())
            .filter(|v| v.len() >= 12);
        let version = info.map(|v| format!("{}.{}", v[8], v[9]));
        let volume_flags = info.map(|v| u16_at(v, 10)).unwrap_or(0);
        let boot = self.boot();
        Ok(NtfsFacts {
            sector_size: boot.bytes_per_sector,
            cluster_size: boot.cluster_size,
            record_size: boot.record_size,
            size: boot.total_sectors * boot.bytes_per_sector as u64,
            serial: format!("{:016x}", boot.serial),
            label,
            version,
            volume_flags,
            dirty: volume_flags & VOLUME_IS_DIRTY != 0,
            logfile: self.logfile_state()?,
            hibernation: self.hibernation()?,
        })
    }

    /// Reads the first restart page of `$LogFile` and decides whether Windows would replay it.
    pub fn logfile_state(&self) -> Result<LogFileState> {
        let f = self.file(RECORD_LOGFILE)?;
        let s = self.data(&f, "")?;
        let page_len = 4096.min(s.size()) as usize;
        let mut page = vec![0u8; page_len];
        s.read_at(0, &mut page)?;
        if page.iter().all(|b| *b == 0xFF) {
            return Ok(LogFileState {
                clean: true,
                version: None,
                detail: "the log is empty (reset to 0xFF)".into(),
            });
        }
        let magic = page.get(..4).unwrap_or(&[]);
        if magic != b"RSTR" {
            return Ok(LogFileState {
                clean: false,
                version: None,
                detail: format!(
                    "first restart page has signature {:?}",
                    String::from_utf8_lossy(magic)
                ),
            });
        }
        let page_size = (u32_at(&page, 0x10) as usize).clamp(512, page_len);
        let mut page = page[..page_size].to_vec();
        let pos = 0;
        if let Err(e) = fixup::unprotect(&mut page, b"RSTR", self.ctx(), pos) {
            return Ok(LogFileState {
                clean: false,
                version: None,
                detail: format!("restart page damaged: {}", e.kind),
            });
        }
        let version = format!(
            "{}.{}",
            u16_at(&page, 0x1C) as i16,
            u16_at(&page, 0x1A) as i16
        );
        let ra = u16_at(&page, 0x18) as usize;
        if ra + 0x10 > page.len() {
            return Ok(LogFileState {
                clean: false,
                version: Some(version),
                detail: "restart area lies outside the restart page".into(),
            });
        }
        let in_use = u16_at(&page, ra + 0x0C);
        let flags = u16_at(&page, ra + 0x0E);
        let (clean, detail) = if in_use == LOGFILE_NO_CLIENT {
            (true, "no log client in use".to_string())
        } else if flags & RESTART_VOLUME_IS_CLEAN != 0 {
            (true, "restart area marked clean".to_string())
        } else {
            (false, "a log client is in use and the restart area is not marked clean: Windows would replay the log".to_string())
        };
        Ok(LogFileState {
            clean,
            version: Some(version),
            detail,
        })
    }

    /// `hiberfil.sys` at the root, if there is one.
    pub fn hibernation(&self) -> Result<Option<Hibernation>> {
        let f = match self.lookup("hiberfil.sys") {
            Ok(f) => f,
            Err(e) if matches!(e.kind, crate::ErrorKind::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let s = self.data(&f, "")?;
        let mut sig = [0u8; 4];
        if s.size() >= 4 {
            s.read_at(0, &mut sig)?;
        }
        let signature = if sig == [0; 4] {
            String::new()
        } else {
            String::from_utf8_lossy(&sig).into_owned()
        };
        let active = signature.eq_ignore_ascii_case("hibr");
        Ok(Some(Hibernation {
            size: s.size(),
            signature,
            active,
        }))
    }
}
