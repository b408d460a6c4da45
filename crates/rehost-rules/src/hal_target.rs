//! `hal-target` (NT 5.x, and the x86 HALs of Vista and 7): does the HAL drive the target's
//! machine? Every modern machine and hypervisor wants ACPI APIC MP (halmacpi.dll); a
//! uniprocessor or PIC HAL starts there on one processor; the others hang or stop with
//! 0x7B (KB 309283). A hal.dll that is not the variant setup recorded is a restore that
//! mixed machines.

use super::cannot::NoDetectHal;
use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;

const ID: &str = "hal-target";
/// BCD osloader element DetectKernelAndHal (boolean), honoured by the Vista loader only.
const DETECT_HAL: u32 = 0x2600_0010;

/// What of the target the check reads.
pub fn reads(t: &Target) -> u64 {
    super::target::hash((&t.hal, &t.hal_reduced))
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    let x86_6 = s.install.arch.as_deref() == Some("x86")
        && s.version.is_some_and(|v| v.major == 6 && v.minor <= 1);
    if !s.nt5() && !x86_6 {
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
    // Windows 7 x86's loader chooses halmacpi.dll or halacpi.dll from System32 on each
    // boot unless the entry names a HAL (geoffchappell.com, BCD option hal).
    let win7 = x86_6 && s.version.is_some_and(|v| v.minor == 1);
    let root = &s.install.system_root;
    if win7
        && entry.is_some_and(|e| e.hal.is_none())
        && s.is_file(&format!("{root}\\System32\\{}", t.hal))
    {
        return Ok(());
    }
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

/// The fix. NT 5.x: the target's HAL with its kernels ([`super::hal_fix`]). Windows Vista
/// x86: detecthal (BCD element 0x26000010) set on the entry that starts the install, so
/// that the loader chooses halmacpi.dll or halacpi.dll from System32 on each machine.
pub fn fix(
    s: &Subject,
    t: &Target,
    findings: &[&Finding],
    o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    let (detect, others): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|f| f.case == "detecthal");
    if !others.is_empty() {
        super::hal_fix::plan(s, t, &others, o, plan, ID)?;
    }
    for f in detect {
        match detecthal(s, t) {
            Ok(change) => plan.add(
                ID,
                format!("detecthal on the boot entry (repairs: {})", f.message),
                change,
            ),
            Err(why) => plan.cannot(ID, format!("{}: {why}", f.message)),
        }
    }
    Ok(())
}

/// The BCD change that sets detecthal on the entry that starts the install.
fn detecthal(s: &Subject, t: &Target) -> std::result::Result<Change, NoDetectHal> {
    let link = s
        .install
        .boot
        .default_entry
        .as_ref()
        .or(s.install.boot.entries.first())
        .filter(|l| l.store == "bcd")
        .ok_or(NoDetectHal::NoBcdEntry)?;
    let entry = s.default_entry().ok_or(NoDetectHal::EntryNotRead)?;
    let hal = format!("{}\\System32\\{}", s.install.system_root, t.hal);
    if !s.is_file(&hal) {
        return Err(NoDetectHal::NoHal { path: hal });
    }
    let guid = &entry.id;
    let valid = guid.len() == 38
        && guid.starts_with('{')
        && guid.ends_with('}')
        && guid.as_bytes()[1..37]
            .iter()
            .all(|b| b.is_ascii_hexdigit() || *b == b'-');
    if !valid || link.entry != *guid {
        return Err(NoDetectHal::NotBcdObject { id: guid.clone() });
    }
    Ok(Change::Registry {
        hive: "BCD".into(),
        store: Some(link.store_volume),
        ops: vec![
            Op::Key(format!(
                "HKEY_LOCAL_MACHINE\\BCD00000000\\Objects\\{guid}\\Elements\\{DETECT_HAL:08x}"
            )),
            reg::set("Element", 3, vec![1]),
        ],
    })
}
