//! Finding installs and reading what their hives say about them.

use super::report::{BootStore, ControlSets, HiveReport, Install};
use super::scene::Scene;
use rehost_core::entry::DirEntry;
use rehost_core::error::{ErrorKind, Layer, Result};
use rehost_regf::hive::Hive;
use rehost_regf::Log;
use rehost_volume::Content;

/// System roots looked for on every NTFS volume, besides those boot stores name.
pub const ROOTS: [&str; 3] = ["\\Windows", "\\WINNT", "\\WIN32"];

/// The hives of an install, in System32\config.
pub const HIVES: [&str; 5] = ["SYSTEM", "SOFTWARE", "SAM", "SECURITY", "DEFAULT"];

/// (volume, system root) of every install: a directory with System32\config\SYSTEM. A
/// place that could not be read (a truncated image, a damaged record) goes into `errors`,
/// so that an install it hides is not silently missing.
pub fn candidates(
    scene: &Scene,
    stores: &[BootStore],
    errors: &mut Vec<String>,
) -> Vec<(u32, String)> {
    let mut seen: Vec<(u32, String)> = Vec::new();
    let mut add = |v: u32, root: &str| {
        let root = format!("\\{}", root.trim_matches(['\\', '/']));
        if seen
            .iter()
            .any(|(sv, sr)| *sv == v && sr.eq_ignore_ascii_case(&root))
        {
            return;
        }
        let system = format!("{root}\\System32\\config\\SYSTEM");
        if let Some(Err(e)) = scene.fs(v).map(|fs| fs.stat(&system)) {
            if !matches!(e.kind, ErrorKind::NotFound(_) | ErrorKind::Invalid(_)) {
                let e = e.to_string();
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
        if scene.is_file(v, &system) {
            // Report the name as the volume spells it.
            let name = scene
                .stat(v, &root)
                .map(|e| format!("\\{}", e.name))
                .unwrap_or(root);
            seen.push((v, name));
        }
    };
    for v in scene
        .layout
        .volumes
        .iter()
        .filter(|v| v.content == Content::Ntfs)
    {
        for root in ROOTS {
            add(v.index, root);
        }
    }
    for s in stores {
        for e in &s.entries {
            if let (Some(v), Some(root)) =
                (e.os_device.as_ref().and_then(|d| d.volume), &e.system_root)
            {
                add(v, root);
            }
        }
    }
    seen
}

/// A hive file and the transaction logs beside it (`NAME.LOG`, `.LOG1`, `.LOG2`, any case),
/// read whole: the directory entry, the primary's bytes and each log's name and bytes.
pub type HiveFiles = (DirEntry, Result<Vec<u8>>, Vec<(String, Vec<u8>)>);

/// The hive file `name` in the directory `dir` of volume `volume`, with its logs; `None`
/// when there is no such file.
pub fn read_hive_files(scene: &Scene, volume: u32, dir: &str, name: &str) -> Option<HiveFiles> {
    let path = format!("{dir}\\{name}");
    let entry = scene.stat(volume, &path).filter(|e| !e.is_dir)?;
    let logs: Vec<(String, Vec<u8>)> = scene
        .fs(volume)
        .and_then(|fs| fs.read_dir(dir).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            let n = e.name.to_ascii_uppercase();
            [".LOG", ".LOG1", ".LOG2"]
                .iter()
                .any(|ext| n == format!("{}{ext}", name.to_ascii_uppercase()))
        })
        .filter_map(|e| {
            let bytes = scene.read(volume, &format!("{dir}\\{}", e.name)).ok()?;
            Some((e.name, bytes))
        })
        .collect();
    let primary = scene.read(volume, &path);
    Some((entry, primary, logs))
}

/// A hive of the install, read whole, and its report (size, dirty, logs beside it).
pub fn read_hive(
    scene: &Scene,
    volume: u32,
    root: &str,
    name: &str,
) -> Option<(Result<Hive>, HiveReport)> {
    let dir = format!("{root}\\System32\\config");
    let path = format!("{dir}\\{name}");
    let (entry, primary, log_bytes) = read_hive_files(scene, volume, &dir, name)?;
    let logs: Vec<String> = log_bytes.iter().map(|(n, _)| n.clone()).collect();
    let ctx = scene.ctx.with_layer(Layer::Hive);
    let log_refs: Vec<Log> = log_bytes
        .iter()
        .map(|(n, b)| Log { name: n, bytes: b })
        .collect();
    let hive = primary.and_then(|b| {
        Hive::parse_with_logs(b, &log_refs, ctx.clone())
            .map_err(|e| ctx.corrupt_at_path(&path, e.kind.to_string()))
    });
    let (dirty, reason, replayed) = match &hive {
        Ok(h) => (
            h.dirty().is_some() || h.replayed().is_some(),
            h.dirty().map(str::to_string),
            h.replayed().map(str::to_string),
        ),
        Err(_) => (false, None, None),
    };
    Some((
        hive,
        HiveReport {
            name: name.to_string(),
            path,
            size: entry.size,
            dirty,
            dirty_reason: reason,
            replayed,
            logs,
        },
    ))
}

/// `Select`, and the key of a control set ("ControlSet001").
pub fn control_sets(system: &Hive) -> Result<ControlSets> {
    let n = |name: &str| -> Result<Option<u32>> {
        Ok(system.number("Select", name)?.map(|v| v as u32))
    };
    Ok(ControlSets {
        current: n("Current")?,
        default: n("Default")?,
        last_known_good: n("LastKnownGood")?,
        failed: n("Failed")?.filter(|f| *f != 0),
    })
}

/// The key of control set `n`.
pub fn control_set_key(n: u32) -> String {
    format!("ControlSet{n:03}")
}

/// The control sets `Select` names, current first, each once.
pub fn named_sets(cs: &ControlSets) -> Vec<u32> {
    let mut out = Vec::new();
    for n in [cs.current, cs.default, cs.last_known_good]
        .into_iter()
        .flatten()
    {
        if n != 0 && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Product, version, build and identity from SOFTWARE and SYSTEM.
pub fn identity(
    install: &mut Install,
    software: Option<&Hive>,
    system: &Hive,
    cs: Option<u32>,
) -> Result<()> {
    if let Some(sw) = software {
        let key = "Microsoft\\Windows NT\\CurrentVersion";
        install.product_name = sw.string(key, "ProductName")?;
        install.version = match sw.number(key, "CurrentMajorVersionNumber")? {
            Some(major) => {
                let minor = sw.number(key, "CurrentMinorVersionNumber")?.unwrap_or(0);
                Some(format!("{major}.{minor}"))
            }
            None => sw.string(key, "CurrentVersion")?,
        };
        install.build = match sw.string(key, "CurrentBuildNumber")? {
            Some(b) => b.parse().ok(),
            None => sw.string(key, "CurrentBuild")?.and_then(|b| b.parse().ok()),
        };
        install.ubr = sw.number(key, "UBR")?.map(|v| v as u32);
        install.service_pack = sw.string(key, "CSDVersion")?.filter(|s| !s.is_empty());
        install.edition = sw.string(key, "EditionID")?;
        install.installation_type = sw.string(key, "InstallationType")?;
        install.product_name = install.product_name.as_deref().map(|p| {
            super::knowledge::Knowledge::builtin().product_name(
                p,
                install.build,
                install.installation_type.as_deref(),
            )
        });
    }
    if let Some(cs) = cs {
        let base = control_set_key(cs);
        install.hostname = system.string(
            &format!("{base}\\Control\\ComputerName\\ComputerName"),
            "ComputerName",
        )?;
        if install.installation_type.is_none() {
            // NT 5.x has no InstallationType: ProductOptions says WinNT for clients.
            install.installation_type = system
                .string(&format!("{base}\\Control\\ProductOptions"), "ProductType")?
                .map(|t| {
                    if t.eq_ignore_ascii_case("WinNT") {
                        "Client".into()
                    } else {
                        "Server".into()
                    }
                });
        }
    }
    Ok(())
}
