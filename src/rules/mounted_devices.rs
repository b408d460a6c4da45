//! `mounted-devices`: `SYSTEM\MountedDevices` gives each volume its letter by identity (MBR
//! disk signature and offset, or GPT partition GUID). The install's volume must hold the
//! letter its SystemRoot names: when another identity holds that letter, the volume gets
//! another one at boot, and logon fails (black screen, logon loop).

use super::finding::{Evidence, Finding};
use super::subject::Subject;
use super::target::Target;
use super::Out;
use crate::error::Result;
use crate::windows::report::MountedData;

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

/// The check.
pub fn check(s: &Subject, _t: &Target, out: &mut Out) -> Result<()> {
    let i = s.install;
    let system_root = match s.software {
        Some(sw) => sw.string("Microsoft\\Windows NT\\CurrentVersion", "SystemRoot")?,
        None => None,
    };
    let letter = system_root
        .as_deref()
        .filter(|r| r.len() >= 2 && r.as_bytes()[1] == b':')
        .map(|r| r[..2].to_ascii_uppercase())
        .unwrap_or_else(|| "C:".into());
    let name = format!("\\DosDevices\\{letter}");
    let entry = i
        .mounted_devices
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(&name));
    let mine = i.mounted_devices.iter().find(|m| {
        m.name.to_ascii_lowercase().starts_with("\\dosdevices\\") && m.volume == Some(i.volume)
    });
    let ev = |m: &crate::windows::report::MountedDevice| {
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
