//! `encrypted`: BitLocker volumes (`-FVE-FS-` in the boot sector). rehost cannot read them,
//! let alone write them; on new hardware BitLocker asks for the recovery key. An install
//! on one is not even found: the image's verdict is then `unknown`, naming the volume the
//! boot configuration points at.

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;
use rehost_windows::report::ImageReport;

const ID: &str = "encrypted";

/// The check, for an install that was read: other volumes that are encrypted.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    for v in s.image.volumes.iter().filter(|v| v.encrypted) {
        out.findings.push(
            Finding::new(
                ID,
                "other-volume",
                format!("volume {} is BitLocker-encrypted", v.index),
            )
            .with(Evidence {
                volume: Some(v.index),
                offset: Some(v.offset + 3),
                data: Some("-FVE-FS-".into()),
                ..Default::default()
            }),
        );
    }
    Ok(())
}

/// For an image where no install was read: the encrypted volumes, the one a boot entry
/// starts Windows from first. Each makes the verdict unknown.
pub fn without_install(image: &ImageReport, out: &mut Out) {
    let named: Vec<u32> = image
        .boot_stores
        .iter()
        .flat_map(|s| &s.entries)
        .filter_map(|e| e.os_device.as_ref().and_then(|d| d.volume))
        .collect();
    let mut encrypted: Vec<_> = image.volumes.iter().filter(|v| v.encrypted).collect();
    encrypted.sort_by_key(|v| !named.contains(&v.index));
    for v in encrypted {
        let booted = named.contains(&v.index);
        let (case, message) = if booted {
            (
                "system-volume",
                format!(
                    "the boot configuration starts Windows from volume {}, which is \
                     BitLocker-encrypted: rehost cannot read the install",
                    v.index
                ),
            )
        } else {
            (
                "other-volume",
                format!("volume {} is BitLocker-encrypted", v.index),
            )
        };
        out.findings
            .push(Finding::new(ID, case, message).with(Evidence {
                volume: Some(v.index),
                offset: Some(v.offset + 3),
                data: Some("-FVE-FS-".into()),
                ..Default::default()
            }));
        out.unknown.push(format!(
            "volume {} is BitLocker-encrypted and cannot be read",
            v.index
        ));
    }
}
