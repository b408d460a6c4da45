//! Volume facts: label, NTFS version, dirty flag, `$LogFile` state, hibernation, shadow
//! copies.

use super::le::{u16_at, u32_at};
use super::record::{AT_VOLUME_INFORMATION, AT_VOLUME_NAME};
use super::{fixup, Ntfs, RECORD_LOGFILE, RECORD_VOLUME};
use rehost_core::error::Result;
use rehost_core::io::ReadAt;
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
    /// The Volume Shadow Copy structures, when the volume has them (`null`: none): the
    /// shadow copies, when each was made, the size of its store.
    pub shadow_copies: Option<super::vss::ShadowCopies>,
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

/// The fields of a restart page the writer's checks need.
struct RestartPage {
    system_page_size: u32,
    minor: i16,
    major: i16,
    current_lsn: u64,
    in_use: u16,
    flags: u16,
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
            shadow_copies: self.shadow_copies()?,
        })
    }

    /// Reads the restart pages of `$LogFile` and decides, as ntfs-3g does, whether Windows
    /// would replay the log: the more recent of the two restart pages counts; a log of
    /// 0xFF bytes wherever a page could start is empty.
    pub fn logfile_state(&self) -> Result<LogFileState> {
        let f = self.file(RECORD_LOGFILE)?;
        let s = self.data(&f, "")?;
        let page_len = 4096.min(s.size()) as usize;
        let mut page = vec![0u8; page_len];
        s.read_at(0, &mut page)?;
        if page.iter().all(|b| *b == 0xFF) {
            // Where else a restart or log record page could start: 4 KiB, 8 KiB, ...
            let mut off = 4096u64;
            let mut block = [0u8; 512];
            while off + 512 <= s.size() {
                s.read_at(off, &mut block)?;
                if block.iter().any(|b| *b != 0xFF) {
                    return Ok(LogFileState {
                        clean: false,
                        version: None,
                        detail: format!(
                            "the first restart page is empty but the log holds data at {off:#x}"
                        ),
                    });
                }
                off *= 2;
            }
            return Ok(LogFileState {
                clean: true,
                version: None,
                detail: "the log is empty (reset to 0xFF)".into(),
            });
        }
        let first = self.restart_page(&s, 0)?;
        let second_at = first.as_ref().map_or(4096, |p| p.system_page_size as u64);
        let second = if second_at + 512 <= s.size() {
            self.restart_page(&s, second_at)?
        } else {
            Err(self
                .ctx()
                .corrupt_at_path("\\$LogFile", "no second restart page"))
        };
        let page = match (first, second) {
            (Ok(a), Ok(b)) => {
                if b.current_lsn > a.current_lsn {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) | (Err(_), Ok(a)) => a,
            (Err(why), Err(_)) => {
                return Ok(LogFileState {
                    clean: false,
                    version: None,
                    detail: why.kind.to_string(),
                })
            }
        };
        let version = format!("{}.{}", page.major, page.minor);
        let (clean, detail) = if page.in_use == LOGFILE_NO_CLIENT {
            (true, "no log client in use".to_string())
        } else if page.flags & RESTART_VOLUME_IS_CLEAN != 0 {
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

    /// The restart page at `off` of `$LogFile`, or why it is not one (a corrupt error at
    /// `$LogFile` whose message says why).
    fn restart_page(&self, s: &super::stream::Stream, off: u64) -> Result<Result<RestartPage>> {
        let not = |why: String| Ok(Err(self.ctx().corrupt_at_path("\\$LogFile", why)));
        let mut head = [0u8; 512];
        s.read_at(off, &mut head)?;
        let magic = &head[..4];
        if magic != b"RSTR" && magic != b"CHKD" {
            return not(format!(
                "restart page at {off:#x} has signature {:?}",
                String::from_utf8_lossy(magic)
            ));
        }
        let sys = u32_at(&head, 0x10);
        if !(512..=65536).contains(&sys) || !sys.is_power_of_two() || off + sys as u64 > s.size() {
            return not(format!("restart page at {off:#x} has page size {sys}"));
        }
        let mut page = vec![0u8; sys as usize];
        s.read_at(off, &mut page)?;
        let magic: [u8; 4] = page[..4].try_into().unwrap_or([0; 4]);
        if let Err(e) = fixup::unprotect(&mut page, &magic, self.ctx(), off) {
            return not(format!("restart page at {off:#x} damaged: {}", e.kind));
        }
        let ra = u16_at(&page, 0x18) as usize;
        if ra + 0x10 > page.len() {
            return not(format!(
                "restart area of the page at {off:#x} lies outside it"
            ));
        }
        Ok(Ok(RestartPage {
            system_page_size: sys,
            minor: u16_at(&page, 0x1A) as i16,
            major: u16_at(&page, 0x1C) as i16,
            current_lsn: super::le::u64_at(&page, ra),
            in_use: u16_at(&page, ra + 0x0C),
            flags: u16_at(&page, ra + 0x0E),
        }))
    }

    /// `hiberfil.sys` at the root, if there is one.
    pub fn hibernation(&self) -> Result<Option<Hibernation>> {
        let f = match self.lookup("hiberfil.sys") {
            Ok(f) => f,
            Err(e) if matches!(e.kind, rehost_core::ErrorKind::NotFound(_)) => return Ok(None),
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
