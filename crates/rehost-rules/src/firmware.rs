//! `firmware`: can the target's firmware start this disk and this Windows at all? A BIOS
//! starts MBR disks, UEFI starts Windows from GPT disks and only 64-bit Windows Vista SP1 /
//! Server 2008 and later; some targets ask more (Hyper-V generation 2: 64-bit 8 / 2012).

use super::finding::{Evidence, Finding};
use super::fix::{FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::version::Version;
use super::Out;
use rehost_core::error::Result;
use rehost_volume::Partitioning;

mod carry;
mod convert;
mod to_bios;

const ID: &str = "firmware";

/// The firmware that starts a disk so partitioned: "bios", "uefi", or none.
pub fn natural(p: Partitioning) -> Option<&'static str> {
    match p {
        Partitioning::Mbr => Some("bios"),
        Partitioning::Gpt => Some("uefi"),
        Partitioning::None => None,
    }
}

/// Whether the install would start by UEFI on the target.
pub fn by_uefi(s: &Subject, t: &Target) -> bool {
    match natural(s.image.partitioning) {
        Some("uefi") => t.starts("uefi"),
        _ => !t.starts("bios"),
    }
}

/// The fix: an MBR disk on a target that starts only by UEFI is converted (GPT, an EFI
/// system partition with the boot files, MountedDevices in GPT form), and a GPT disk on a
/// target that starts only by BIOS (MBR, bootmgr and a BIOS store on the install's
/// partition made active, MountedDevices in MBR form), or told why not.
pub fn fix(
    s: &Subject,
    t: &Target,
    findings: &[&Finding],
    _opts: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    if findings.iter().any(|f| f.case == "mbr-on-uefi") {
        convert::plan(s, t, plan)?;
    }
    if findings.iter().any(|f| f.case == "gpt-on-bios") {
        to_bios::plan(s, plan)?;
    }
    Ok(())
}

/// What of the target the check reads.
pub fn reads(t: &Target) -> u64 {
    super::target::hash((&t.firmware, &t.requires, t.uefi_int10))
}

/// The check.
pub fn check(s: &Subject, t: &Target, out: &mut Out) -> Result<()> {
    let scheme = || {
        Evidence::fact(format!(
            "partitioning: {}",
            match s.image.partitioning {
                Partitioning::Mbr => "mbr",
                Partitioning::Gpt => "gpt",
                Partitioning::None => "none",
            }
        ))
    };
    let firmware = || Evidence::fact(format!("target firmware: {}", t.firmware.join(", ")));
    match natural(s.image.partitioning) {
        Some("bios") if !t.starts("bios") => out.findings.push(
            Finding::new(
                ID,
                "mbr-on-uefi",
                "this is an MBR disk, started by BIOS; the target starts only by UEFI, from GPT disks",
            )
            .with(scheme())
            .with(firmware()),
        ),
        Some("uefi") if !t.starts("uefi") => out.findings.push(
            Finding::new(
                ID,
                "gpt-on-bios",
                "this is a GPT disk, started by UEFI; the target starts only by BIOS, from MBR disks",
            )
            .with(scheme())
            .with(firmware()),
        ),
        None => out.findings.push(
            Finding::new(
                ID,
                "no-partition-table",
                "the disk has no partition table: neither BIOS nor UEFI starts Windows from it",
            )
            .with(scheme()),
        ),
        _ => {}
    }
    let arch = s.install.arch.as_deref();
    let what = || {
        format!(
            "{} {}",
            arch.unwrap_or("?"),
            s.version.map(Version::releases).unwrap_or("Windows")
        )
    };
    if let Some(req) = &t.requires {
        let mut unmet = Vec::new();
        match arch {
            Some(a) if !req.arch.is_empty() && !req.arch.iter().any(|x| x == a) => {
                unmet.push(format!("it is {a}"))
            }
            None if !req.arch.is_empty() => out
                .unknown
                .push("the install's architecture is unknown (no readable ntoskrnl.exe)".into()),
            _ => {}
        }
        match (s.version, req.min_version) {
            (Some(v), Some(min)) if v < min => unmet.push(format!("it is version {v}")),
            (None, Some(_)) => out
                .unknown
                .push("the Windows version is unknown (no readable SOFTWARE hive)".into()),
            _ => {}
        }
        if !unmet.is_empty() {
            out.findings.push(
                Finding::new(
                    ID,
                    "requires",
                    format!(
                        "{}; this install is {}: {}",
                        req.why,
                        what(),
                        unmet.join(", ")
                    ),
                )
                .with(Evidence::fact(format!("arch: {}", arch.unwrap_or("?"))))
                .with(Evidence::fact(format!(
                    "version: {}",
                    s.install.version.as_deref().unwrap_or("?")
                ))),
            );
        }
        return Ok(());
    }
    if by_uefi(s, t) {
        let arch_ok = matches!(arch, Some("x64" | "arm64" | "ia64"));
        let version_ok = s.version.is_some_and(|v| v >= Version::VISTA);
        if arch.is_some() && s.version.is_some() && !(arch_ok && version_ok) {
            out.findings.push(
                Finding::new(
                    ID,
                    "arch-on-uefi",
                    format!(
                        "the target starts it by UEFI, and UEFI starts only 64-bit Windows \
                         Vista SP1 / Server 2008 and later; this install is {}",
                        what()
                    ),
                )
                .with(Evidence::fact(format!("arch: {}", arch.unwrap_or("?")))),
            );
        }
        int10(s, t, out);
    }
    Ok(())
}

/// Windows Vista SP1 to 7 / Server 2008 R2 started by UEFI still set the display mode
/// through INT 10h (the VGA miniport runs the video BIOS in an emulator); Windows 8 and
/// later use UEFI's Graphics Output Protocol. Firmware with neither a CSM nor a VBE shim
/// leaves them hanging at "Starting Windows".
fn int10(s: &Subject, t: &Target, out: &mut Out) {
    let nt6_early = s
        .version
        .is_some_and(|v| v >= Version::VISTA && v < Version::WIN8);
    if !nt6_early || s.install.arch.as_deref() != Some("x64") {
        return;
    }
    let (case, why) = match t.uefi_int10 {
        Some(true) => return,
        Some(false) => (
            "no-int10",
            "the target's UEFI firmware has no CSM or VBE shim",
        ),
        None => (
            "int10-unknown",
            "no source says whether the target's UEFI firmware offers a CSM or VBE shim",
        ),
    };
    out.findings.push(
        Finding::new(
            ID,
            case,
            format!(
                "{} started by UEFI sets the display through INT 10h (the video BIOS), and {why}: \
                 without one it hangs at \"Starting Windows\"",
                s.version.map(Version::releases).unwrap_or("Windows")
            ),
        )
        .with(Evidence::fact(format!(
            "target uefi_int10: {}",
            t.uefi_int10
                .map_or("unknown".to_string(), |b| b.to_string())
        ))),
    );
}

/// MountedDevices as a firmware move leaves it: every letter and volume name of the disk's
/// volumes set to the way the new partition table names its volume (`named`: a GPT
/// partition, or an MBR signature and offset). The operations (the key first) and the
/// names set.
fn mounted_devices(
    s: &Subject,
    named: impl Fn(u32) -> Option<rehost_formats::bcd::PartitionRef>,
) -> (Vec<rehost_regf::regtext::Op>, Vec<String>) {
    use super::fix::reg;
    use rehost_regf::regtext::Op;
    let mut ops = vec![Op::Key(reg::system("MountedDevices"))];
    let mut names = Vec::new();
    for m in s
        .install
        .mounted_devices
        .iter()
        .chain(&s.install.volume_names)
    {
        let Some(data) = m
            .volume
            .and_then(&named)
            .as_ref()
            .and_then(rehost_windows::devices::encode)
        else {
            continue;
        };
        ops.push(reg::set(&m.name, 3, data));
        names.push(m.name.clone());
    }
    (ops, names)
}

/// The new store with what of the old one still applies (`carry`), read back (it parses, and
/// has a boot manager), and the carried options in words for the change's reason.
fn carried_store(s: &Subject, store: Vec<u8>) -> Result<(Vec<u8>, String)> {
    use rehost_formats::bcd;
    let bcd_ctx = s.scene.ctx.with_layer(rehost_core::error::Layer::Bcd);
    let (store, carried) = carry::carry(s, store, &bcd_ctx)?;
    let parsed = rehost_regf::hive::Hive::parse(store.clone(), bcd_ctx.clone())?;
    if !bcd::objects(&parsed)?.iter().any(|o| o.id == bcd::BOOTMGR) {
        return Err(bcd_ctx.invalid("the new store read back has no boot manager"));
    }
    let carried = if carried.is_empty() {
        String::new()
    } else {
        format!(
            "; from the old store, the options that still apply: {}",
            carried.join(", ")
        )
    };
    Ok((store, carried))
}
