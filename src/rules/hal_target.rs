//! `hal-target` (NT 5.x, and the x86 HALs of Vista and 7): does the HAL drive the target's
//! machine? Every modern machine and hypervisor wants ACPI APIC MP (halmacpi.dll); a
//! uniprocessor or PIC HAL starts there on one processor; the others hang or stop with
//! 0x7B (KB 309283). A hal.dll that is not the variant setup recorded is a restore that
//! mixed machines.

use super::finding::{Evidence, Finding};
use super::hal_kernel_pair::nt5;
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use crate::error::Result;

const ID: &str = "hal-target";

/// What of the target the check reads.
pub fn reads(t: &Target) -> u64 {
    super::target::hash((&t.hal, &t.hal_reduced))
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    let x86_6 = s.install.arch.as_deref() == Some("x86")
        && s.version.is_some_and(|v| v.major == 6 && v.minor <= 1);
    if !nt5(s) && !x86_6 {
        return Ok(());
    }
    let Some(hal) = s.loaded_hal() else {
        return Ok(());
    };
    let Some(original) = hal.original.clone() else {
        return Ok(());
    };
    let vista = s.version == Some(Version::VISTA);
    let entry = s.default_entry();
    if vista && entry.and_then(|e| e.detect_hal) == Some(true) {
        return Ok(());
    }
    let root = &s.install.system_root;
    let ev = Evidence::file(
        s.install.volume,
        format!("{root}\\System32\\{}", hal.file),
        format!("OriginalFilename {original}"),
    );
    let target = format!("the target wants {}", t.hal);
    let what = hal
        .variant
        .as_ref()
        .map(|h| h.description.clone())
        .unwrap_or_else(|| "a HAL rehost does not know".into());
    if !original.eq_ignore_ascii_case(&t.hal) {
        let reduced = t
            .hal_reduced
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&original));
        let f = if vista {
            Finding::new(
                ID,
                "detecthal",
                format!(
                    "the HAL is {original} ({what}) and the BCD entry does not set detecthal: \
                     Windows Vista keeps it on the new machine; {target}"
                ),
            )
        } else if reduced {
            Finding::new(
                ID,
                "reduced",
                format!(
                    "the HAL is {original} ({what}): it starts on the target but uses one \
                     processor; {target}"
                ),
            )
        } else {
            Finding::new(
                ID,
                "unsuitable",
                format!(
                    "the HAL is {original} ({what}), which does not drive the target: STOP \
                     0x7B or a hang at boot; {target}"
                ),
            )
        };
        out.findings.push(f.with(ev.clone()));
    }
    if hal.file.eq_ignore_ascii_case("hal.dll") && s.install.hal.agrees == Some(false) {
        let key = s.install.hal.hardware_id_key.clone().unwrap_or_default();
        out.findings.push(
            Finding::new(
                ID,
                "record-disagrees",
                format!(
                    "hal.dll is {original} but setup recorded {} for this machine: the HAL and \
                     the registry come from different machines",
                    s.install.hal.hardware_id.as_deref().unwrap_or("?")
                ),
            )
            .with(ev)
            .with(Evidence::system(
                key,
                "HardwareID",
                s.install.hal.hardware_id.clone().unwrap_or_default(),
            )),
        );
    }
    Ok(())
}
