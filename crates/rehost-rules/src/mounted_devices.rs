//! `mounted-devices`: `SYSTEM\MountedDevices` gives each volume its letter by identity (MBR
//! disk signature and offset, or GPT partition GUID). The install's volume must hold the
//! letter its SystemRoot names: when another identity holds that letter, the volume gets
//! another one at boot, and logon fails (black screen, logon loop).

use super::finding::{Evidence, Finding};
use super::fix::{reg, Change, FixOptions, Plan};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use rehost_core::error::Result;
use rehost_regf::regtext::Op;
use rehost_windows::devices;
use rehost_windows::report::MountedData;

const ID: &str = "mounted-devices";

fn describe(d: &MountedData) -> String {
    match d {
        MountedData::Mbr { signature, offset } => {
            format!("MBR disk {signature}, partition at {offset}")
        }
        MountedData::Gpt { partition } => format!("GPT partition {partition}"),
        MountedData::Other { text } => text.clone(),
    }
}

/// The letter the install's SystemRoot names (`C:` when SOFTWARE does not say).
fn system_letter(s: &Subject) -> Result<String> {
    let system_root = match s.software {
        Some(sw) => sw.string("Microsoft\\Windows NT\\CurrentVersion", "SystemRoot")?,
        None => None,
    };
    Ok(system_root
        .as_deref()
        .filter(|r| r.len() >= 2 && r.as_bytes()[1] == b':')
        .map(|r| r[..2].to_ascii_uppercase())
        .unwrap_or_else(|| "C:".into()))
}

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let i = s.install;
    let letter = system_letter(s)?;
    let name = format!("\\DosDevices\\{letter}");
    let entry = i
        .mounted_devices
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(&name));
    let mine = i.mounted_devices.iter().find(|m| {
        m.name.to_ascii_lowercase().starts_with("\\dosdevices\\") && m.volume == Some(i.volume)
    });
    let ev = |m: &rehost_windows::report::MountedDevice| {
        Evidence::system("MountedDevices", &m.name, describe(&m.data))
    };
    match entry {
        Some(e) if e.volume == Some(i.volume) => {}
        Some(e) => {
            let mut f = Finding::new(
                ID,
                "letter-taken",
                format!(
                    "SystemRoot is on {letter}, but MountedDevices gives {letter} to {}, not to the \
                     install's volume {}",
                    describe(&e.data),
                    i.volume
                ),
            )
            .with(ev(e));
            if let Some(m) = mine {
                f = f.with(ev(m));
            }
            out.findings.push(f);
        }
        None => match mine {
            Some(m) => out.findings.push(
                Finding::new(
                    ID,
                    "letter-taken",
                    format!(
                        "SystemRoot is on {letter}, but MountedDevices gives the install's volume \
                         {} the letter {}",
                        i.volume,
                        m.name.rsplit('\\').next().unwrap_or("?")
                    ),
                )
                .with(ev(m)),
            ),
            None => out.findings.push(
                Finding::new(
                    ID,
                    "no-letter",
                    format!(
                        "no MountedDevices value names the install's volume {}: it gets the next \
                         free letter at boot, which should be {letter}",
                        i.volume
                    ),
                )
                .with(Evidence::system_key("MountedDevices", format!("no {name}"))),
            ),
        },
    }
    Ok(())
}

/// The fix: the letter SystemRoot names is given to the install's volume, by this disk's
/// identity (MBR signature and partition start, or the GPT partition GUID); the other
/// letters that name the install's volume are dropped, so that it has one letter.
pub fn fix(
    s: &Subject,
    _t: &Target,
    findings: &[&Finding],
    _o: &FixOptions,
    plan: &mut Plan,
) -> Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    let i = s.install;
    let Some(data) = s
        .scene
        .identity(i.volume)
        .as_ref()
        .and_then(devices::encode)
    else {
        plan.cannot(
            ID,
            format!(
                "volume {} has no identity MountedDevices can name (no MBR signature, or no \
                 GPT partition GUID)",
                i.volume
            ),
        );
        return Ok(());
    };
    let letter = system_letter(s)?;
    let wanted = format!("\\DosDevices\\{letter}");
    let dos = |m: &&rehost_windows::report::MountedDevice| {
        m.name.to_ascii_lowercase().starts_with("\\dosdevices\\")
    };
    // The value as the hive spells it, when it exists.
    let existing = i
        .mounted_devices
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(&wanted));
    let name = existing.map(|m| m.name.clone()).unwrap_or(wanted);
    let mut ops = vec![
        Op::Key(reg::system("MountedDevices")),
        reg::set(&name, 3, data),
    ];
    let mut why = match existing {
        Some(e) => format!(
            "give {letter} to the install's volume {} (it named {})",
            i.volume,
            describe(&e.data)
        ),
        None => format!("give {letter} to the install's volume {}", i.volume),
    };
    if let Some(v) = existing.and_then(|e| e.volume) {
        why.push_str(&format!(
            "; volume {v} of this image loses {letter} and gets the next free letter"
        ));
    }
    for m in i.mounted_devices.iter().filter(dos) {
        if m.volume == Some(i.volume) && !m.name.eq_ignore_ascii_case(&name) {
            ops.push(Op::DeleteValue(m.name.clone()));
            why.push_str(&format!("; drop {}, which named it too", m.name));
        }
    }
    plan.add(ID, why, Change::system(ops));
    Ok(())
}
