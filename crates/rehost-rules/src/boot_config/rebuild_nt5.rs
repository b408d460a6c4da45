//! The boot files of Windows 2000, XP and Server 2003 rebuilt where the partition the BIOS
//! starts holds none: ntldr and NTDETECT.COM from the copies the install keeps
//! (`profiles/boot.toml`, the `nt5` rows), and a boot.ini whose one entry starts the
//! install from its partition (`multi(0)disk(0)rdisk(0)partition(N)`, as setup writes it).
//! Only when the install holds both files; otherwise the plan says which it lacks.

use super::boot_files::rows;
use super::ID;
use crate::cannot::NoBootFiles;
use crate::fix::{Change, Plan};
use crate::subject::Subject;
use rehost_core::error::Result;

/// Where the install keeps a copy of the loader file `to` (`ntldr`, `NTDETECT.COM`): the
/// path of the first the `nt5` rows name that it holds, or every path looked at.
pub(super) fn source(s: &Subject, to: &str) -> std::result::Result<String, String> {
    let root = s.install.system_root.trim_matches(['\\', '/']);
    let mut looked = Vec::new();
    for r in rows()
        .iter()
        .filter(|r| r.firmware == "nt5" && r.to.eq_ignore_ascii_case(to))
    {
        let path = match r.base.as_deref() {
            Some("volume") => r.from.clone(),
            _ => format!("{root}/{}", r.from),
        };
        if s.scene.is_file(s.install.volume, &path) {
            return Ok(path);
        }
        looked.push(format!("\\{}", path.replace('/', "\\")));
    }
    Err(looked.join(" or "))
}

/// The loader files the `nt5` rows name, in order.
pub(super) fn loader_files() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for r in rows().iter().filter(|r| r.firmware == "nt5") {
        if !out.contains(&r.to.as_str()) {
            out.push(&r.to);
        }
    }
    out
}

/// Plans ntldr, NTDETECT.COM and boot.ini on volume `system` for the install of `s`.
pub fn rebuild(s: &Subject, system: u32, why: &str, plan: &mut Plan) -> Result<()> {
    let i = s.install;
    let mut puts = Vec::new();
    for to in loader_files() {
        match source(s, to) {
            Ok(from) => puts.push((to, s.scene.read(i.volume, &from)?, from)),
            Err(looked) => {
                plan.cannot(
                    ID,
                    NoBootFiles::Missing {
                        volume: i.volume,
                        path: looked,
                    }
                    .to_string(),
                );
                return Ok(());
            }
        }
    }
    let Some(n) = s.scene.volume(i.volume).and_then(|v| v.arc_partition) else {
        plan.cannot(ID, NoBootFiles::NoArc { volume: i.volume }.to_string());
        return Ok(());
    };
    let arc = format!(
        "multi(0)disk(0)rdisk(0)partition({n}){}",
        i.system_root.trim_end_matches('\\')
    );
    let product = i.product_name.as_deref().unwrap_or("Windows");
    let ini = format!(
        "[boot loader]\r\ntimeout=30\r\ndefault={arc}\r\n[operating systems]\r\n\
         {arc}=\"{product}\" /fastdetect\r\n"
    );
    for (to, bytes, from) in puts {
        plan.add(
            ID,
            format!("\\{to} from \\{}. Repairs {why}", from.replace('/', "\\")),
            Change::Put {
                volume: system,
                path: format!("\\{to}"),
                bytes,
            },
        );
    }
    plan.add(
        ID,
        format!("\\boot.ini written new: one entry, {arc}, the default. Repairs {why}"),
        Change::Put {
            volume: system,
            path: "\\boot.ini".into(),
            bytes: ini.into_bytes(),
        },
    );
    Ok(())
}
