//! The fixes of boot files missing or a store that does not start the install: the
//! active flag, the boot files rebuilt (`no-store`, and `--rebuild-boot` over a store that
//! does not start the install), a missing boot manager or NT 5.x loader file copied from
//! the install.

use super::super::{rebuild, rebuild_nt5, ID, TO_BE_ACTIVE};
use crate::cannot::NoBootFiles;
use crate::finding::Finding;
use crate::fix::{Change, Plan};
use crate::subject::Subject;
use rehost_core::error::Result;
use rehost_formats::bcdboot::Firmware;

/// The cases of a store that exists but does not start the install, which `--rebuild-boot`
/// repairs by writing the boot files new.
pub(super) const STORE_CASES: [&str; 6] = [
    "bcd-device",
    "winload-firmware",
    "other-loader",
    "loader-missing",
    "no-entry",
    "no-fallback",
];

/// Where the store a finding names lives, and for which firmware.
fn store_place(f: &Finding) -> Option<(u32, Firmware)> {
    f.evidence.iter().find_map(|e| {
        let file = e.file.as_deref()?;
        let fw = if ["Boot/BCD", "bootmgr"]
            .iter()
            .any(|p| file.eq_ignore_ascii_case(p))
        {
            Firmware::Bios
        } else if file.to_ascii_lowercase().starts_with("efi/") {
            Firmware::Uefi
        } else {
            return None;
        };
        Some((e.volume?, fw))
    })
}

/// `--rebuild-boot`: the boot files written new on the partition holding the store.
pub(super) fn rebuild_store(s: &Subject, findings: &[&Finding], plan: &mut Plan) -> Result<()> {
    let Some((volume, firmware)) = findings.iter().find_map(|f| store_place(f)) else {
        plan.cannot(
            ID,
            "the findings name no store to rebuild (--rebuild-boot rebuilds the store the \
             firmware reads)",
        );
        return Ok(());
    };
    rebuild::rebuild(
        s,
        volume,
        firmware,
        &format!(
            "the boot configuration on volume {volume} that does not start the install, \
             rebuilt from the install's own {}\\Boot as bcdboot rebuilds it (--rebuild-boot)",
            s.install.system_root.trim_end_matches('\\')
        ),
        plan,
    )
}

/// A missing boot manager is copied from the install's own `\Windows\Boot`, a missing
/// ntldr or NTDETECT.COM from the copies an NT 5.x install keeps; a missing Windows loader
/// (winload) is not rebuilt.
pub(super) fn loader_missing(s: &Subject, findings: &[&Finding], plan: &mut Plan) {
    for f in findings {
        let Some(e) = f.evidence.iter().find(|e| e.file.is_some()) else {
            continue;
        };
        let (Some(volume), Some(path)) = (e.volume, e.file.as_deref()) else {
            continue;
        };
        let root = s.install.system_root.trim_matches(['\\', '/']);
        let nt5 = rebuild_nt5::loader_files()
            .into_iter()
            .find(|l| l.eq_ignore_ascii_case(path));
        let from = match (store_place(f), nt5) {
            (_, Some(l)) => match rebuild_nt5::source(s, l) {
                Ok(from) => from,
                Err(looked) => {
                    plan.cannot(
                        ID,
                        NoBootFiles::Missing {
                            volume: s.install.volume,
                            path: looked,
                        }
                        .to_string(),
                    );
                    continue;
                }
            },
            (Some((_, Firmware::Bios)), None) => format!("{root}/Boot/PCAT/bootmgr"),
            (Some((_, Firmware::Uefi)), None)
                if path.to_ascii_lowercase().ends_with("bootmgfw.efi") =>
            {
                format!("{root}/Boot/EFI/bootmgfw.efi")
            }
            _ => {
                plan.cannot(ID, NoBootFiles::Loader { path: path.into() }.to_string());
                continue;
            }
        };
        match s.scene.read(s.install.volume, &from) {
            Ok(bytes) => plan.add(
                ID,
                format!(
                    "\\{} from \\{}, the install's own",
                    path.replace('/', "\\"),
                    from.replace('/', "\\")
                ),
                Change::Put {
                    volume,
                    path: format!("\\{}", path.replace('/', "\\")),
                    bytes,
                },
            ),
            Err(_) => plan.cannot(
                ID,
                NoBootFiles::Missing {
                    volume: s.install.volume,
                    path: format!("\\{}", from.replace('/', "\\")),
                }
                .to_string(),
            ),
        }
    }
}

/// No entry of the store starts the install: only a new store (`--rebuild-boot`) has one.
pub(super) fn no_entry(findings: &[&Finding], plan: &mut Plan) {
    if !findings.is_empty() {
        plan.cannot(ID, NoBootFiles::NoEntry.to_string());
    }
}

/// No active partition: the one the check chose (a primary partition holding the boot
/// files, else the install's own) is made active.
pub(super) fn not_active(s: &Subject, findings: &[&Finding], plan: &mut Plan) {
    for f in findings {
        let to = f
            .evidence
            .iter()
            .find(|e| e.data.as_deref() == Some(TO_BE_ACTIVE))
            .and_then(|e| e.volume);
        match to {
            Some(volume) => plan.add(
                ID,
                format!("make volume {volume} the active partition, the one the BIOS starts"),
                Change::Active { volume },
            ),
            None => plan.cannot(
                ID,
                NoBootFiles::NoSystemPartition {
                    volume: s.install.volume,
                }
                .to_string(),
            ),
        }
    }
}

/// No store where the firmware looks: the boot files rebuilt from the install's own
/// `\Windows\Boot` on the partition the check names.
pub(super) fn no_store(s: &Subject, findings: &[&Finding], plan: &mut Plan) -> Result<()> {
    for f in findings {
        let place = f
            .evidence
            .iter()
            .find_map(|e| Some((e.volume?, e.file.as_deref()?)));
        let Some((volume, path)) = place else {
            plan.cannot(ID, NoBootFiles::NoEsp.to_string());
            continue;
        };
        let firmware = if path.eq_ignore_ascii_case("EFI/Microsoft/Boot/BCD") {
            Firmware::Uefi
        } else {
            Firmware::Bios
        };
        rebuild::rebuild(
            s,
            volume,
            firmware,
            &if s.nt5() {
                format!(
                    "the boot files missing from volume {volume}, rebuilt from the install's \
                     own copies"
                )
            } else {
                format!(
                    "the boot files missing from volume {volume}, rebuilt from the install's \
                     own {}\\Boot as bcdboot rebuilds them",
                    s.install.system_root.trim_end_matches('\\')
                )
            },
            plan,
        )?;
    }
    Ok(())
}
