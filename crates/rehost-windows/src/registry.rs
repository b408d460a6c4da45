//! An install's registry as regedit names it: each hive file at its mount point
//! (`HKEY_LOCAL_MACHINE\SYSTEM`, ... from `profiles/hives.toml`), read from an image or a
//! host file with the transaction logs beside it replayed in memory, and edited through
//! .reg operations with the result read back by nt-hive before it is accepted.

use super::{boot, install, Opened};
use rehost_core::error::{Ctx, Layer, Result};
use rehost_regf::diff::{self, Change, Snapshot};
use rehost_regf::regtext::Op;
use rehost_regf::{self as regf, apply, replay, verify, Editor, Log, Recovery};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A root key and its short form (`HKEY_LOCAL_MACHINE`, `HKLM`).
#[derive(Debug, Clone, Deserialize)]
pub struct RootName {
    /// The full name.
    pub name: String,
    /// The short form.
    pub short: String,
}

/// Where a hive file is mounted.
#[derive(Debug, Clone, Deserialize)]
pub struct Mount {
    /// The hive's file name (`SYSTEM`).
    pub file: String,
    /// Its key (`HKEY_LOCAL_MACHINE\SYSTEM`).
    pub mount: String,
    /// Its control sets are chosen by `Select` (`CurrentControlSet`).
    #[serde(default)]
    pub control_sets: bool,
    /// It is a boot store (BCD), found beside the boot manager, not in System32\config.
    #[serde(default)]
    pub boot_store: bool,
}

/// The mount table.
#[derive(Debug, Clone, Deserialize)]
pub struct Mounts {
    /// Root keys.
    pub root: Vec<RootName>,
    /// Hive files.
    pub hive: Vec<Mount>,
}

fn strip_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    let head = s.get(..p.len())?;
    let rest = &s[p.len()..];
    (head.eq_ignore_ascii_case(p) && (rest.is_empty() || rest.starts_with('\\'))).then_some(rest)
}

impl Mounts {
    /// The table built into rehost.
    pub fn builtin() -> &'static Mounts {
        static M: OnceLock<Mounts> = OnceLock::new();
        M.get_or_init(|| {
            toml::from_str(include_str!("../../../profiles/hives.toml"))
                .expect("the built-in hive table parses (a unit test checks it)")
        })
    }

    /// Every name a mount point goes by: the full one, then with the root's short form.
    pub fn names(&self, m: &Mount) -> Vec<String> {
        let mut out = vec![m.mount.clone()];
        for r in &self.root {
            if let Some(rest) = strip_ci(&m.mount, &r.name) {
                out.push(format!("{}{rest}", r.short));
            }
        }
        out
    }

    /// The hive a key name (`HKLM\SYSTEM\Select`) belongs to, and the path below its root.
    pub fn for_key<'a>(&self, key: &'a str) -> Option<(&Mount, &'a str)> {
        let key = key.trim_start_matches('\\');
        self.hive.iter().find_map(|m| {
            self.names(m)
                .iter()
                .find_map(|n| strip_ci(key, n))
                .map(|rest| (m, rest.trim_start_matches('\\')))
        })
    }

    /// The mount of a hive file named `name` (a file name or the last part of the name a
    /// hive's base block records).
    pub fn for_file(&self, name: &str) -> Option<&Mount> {
        let last = name.rsplit(['\\', '/']).next().unwrap_or(name);
        self.hive.iter().find(|m| m.file.eq_ignore_ascii_case(last))
    }
}

/// A hive read whole with its logs, replayed in memory when it is dirty.
pub struct HiveFile {
    /// Where it was read, for messages (`image.vhd: volume 1 \Windows\...\SYSTEM`).
    pub source: String,
    /// Its mount point, when known.
    pub mount: Option<Mount>,
    /// The hive: as the file holds it, or with its logs applied when it was dirty.
    pub bytes: Vec<u8>,
    /// What replay did, when it did.
    pub replayed: Option<String>,
    /// Why a dirty hive could not be replayed (it is then read as it stands).
    pub unreplayable: Option<String>,
    /// The highest sequence number its logs hold.
    pub log_sequence: u32,
    /// The logs' names.
    pub logs: Vec<String>,
    /// Inside an image: the volume and the path of the hive file there.
    pub location: Option<(u32, String)>,
}

impl HiveFile {
    /// A hive from its bytes and its logs' names and bytes.
    pub fn new(
        source: String,
        mount: Option<Mount>,
        primary: Vec<u8>,
        logs: &[(String, Vec<u8>)],
    ) -> HiveFile {
        let refs: Vec<Log> = logs
            .iter()
            .map(|(n, b)| Log { name: n, bytes: b })
            .collect();
        let (bytes, replayed, unreplayable) = match regf::recover(&primary, &refs) {
            Recovery::Clean => (primary, None, None),
            Recovery::Replayed { bytes, note } => (bytes, Some(note), None),
            Recovery::Unreplayable(why) => (primary, None, Some(why)),
        };
        HiveFile {
            source,
            mount,
            bytes,
            replayed,
            unreplayable,
            log_sequence: replay::highest_sequence(&refs),
            logs: logs.iter().map(|(n, _)| n.clone()).collect(),
            location: None,
        }
    }

    /// The same hive with other bytes (an edit's result), to edit further.
    pub fn with_bytes(&self, bytes: Vec<u8>) -> HiveFile {
        HiveFile {
            source: self.source.clone(),
            mount: self.mount.clone(),
            bytes,
            replayed: None,
            unreplayable: None,
            log_sequence: self.log_sequence,
            logs: self.logs.clone(),
            location: self.location.clone(),
        }
    }

    /// The name its keys go by in .reg text: its mount point, or `prefix` when given.
    pub fn prefix(&self, prefix: Option<&str>) -> String {
        match (prefix, &self.mount) {
            (Some(p), _) => p.trim_end_matches('\\').to_string(),
            (None, Some(m)) => m.mount.clone(),
            (None, None) => "HKEY_LOCAL_MACHINE\\HIVE".into(),
        }
    }

    /// How .reg key names map into this hive; `all_control_sets` makes `CurrentControlSet`
    /// stand for every control set `Select` names.
    pub fn mapping(&self, prefix: Option<&str>, all_control_sets: bool) -> Result<apply::Mapping> {
        let mut roots = vec![self.prefix(prefix)];
        if let Some(m) = &self.mount {
            for n in Mounts::builtin().names(m) {
                if !roots.iter().any(|r| r.eq_ignore_ascii_case(&n)) {
                    roots.push(n);
                }
            }
        }
        let control_sets =
            apply::control_sets(&self.bytes, all_control_sets).map_err(|e| self.error(e))?;
        Ok(apply::Mapping {
            roots,
            control_sets,
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> rehost_core::Error {
        Ctx::new(self.source.clone(), Layer::Hive).corrupt_at_path("", e.to_string())
    }
}

/// The outcome of an edit: the new hive, verified, and what changed.
pub struct Edited {
    /// The hive file to write: clean, sequence numbers past every log entry.
    pub bytes: Vec<u8>,
    /// The changes, in key order.
    pub changes: Vec<Change>,
}

/// Applies .reg operations to a hive, reads the result back through nt-hive, and returns it
/// with the changes. A dirty hive whose logs cannot be replayed is refused: editing it as
/// it stands would lose the changes in its logs.
pub fn edit(hive: &HiveFile, ops: &[Op], map: &apply::Mapping) -> Result<Edited> {
    let ctx = Ctx::new(hive.source.clone(), Layer::Hive);
    if let Some(why) = &hive.unreplayable {
        return Err(ctx.unsupported(
            0,
            format!(
                "the hive is dirty and cannot be edited: {why}. Windows recovers a dirty \
                 hive from its transaction logs; without them, what the logs held is lost \
                 and only the primary file as it stands is left. --accept-dirty-hive edits \
                 it as it stands and writes it back consistent"
            ),
        ));
    }
    let mut ed = Editor::open(hive.bytes.clone()).map_err(|e| ctx.locate(e))?;
    ed.check().map_err(|e| {
        let mut e = ctx.locate(e);
        if let rehost_core::ErrorKind::Corrupt(what) = &mut e.kind {
            what.push_str("; the hive is not edited");
        }
        e
    })?;
    let touched = apply::apply(&mut ed, ops, map).map_err(|e| ctx.locate(e))?;
    let bytes = ed.save_beyond(hive.log_sequence);
    verify::read_back(&bytes, &touched).map_err(|e| ctx.locate(e))?;
    let before = Snapshot::read(&hive.bytes, &touched).map_err(|e| ctx.locate(e))?;
    let after = Snapshot::read(&bytes, &touched).map_err(|e| ctx.locate(e))?;
    Ok(Edited {
        changes: diff::changes(&before, &after),
        bytes,
    })
}

/// A hive file on the host, with the logs beside it (`NAME.LOG`, `.LOG1`, `.LOG2`, any case).
pub fn open_host(path: &Path) -> Result<HiveFile> {
    let name = path.display().to_string();
    let ctx = Ctx::new(name.clone(), Layer::File);
    let primary = std::fs::read(path).map_err(|e| ctx.io(0, e))?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut logs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            let upper = n.to_ascii_uppercase();
            let is_log = [".LOG", ".LOG1", ".LOG2"]
                .iter()
                .any(|ext| upper == format!("{}{ext}", file.to_ascii_uppercase()));
            if is_log {
                if let Ok(b) = std::fs::read(e.path()) {
                    logs.push((n, b));
                }
            }
        }
    }
    logs.sort();
    let recorded = base_name(&primary);
    let mounts = Mounts::builtin();
    let mount = mounts
        .for_file(&recorded)
        .or_else(|| mounts.for_file(&file))
        .cloned();
    Ok(HiveFile::new(name, mount, primary, &logs))
}

/// The file name a base block records (offset 48, 64 bytes of UTF-16).
fn base_name(b: &[u8]) -> String {
    let Some(raw) = b.get(48..112) else {
        return String::new();
    };
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Writes a hive file on the host atomically: a new file beside it, flushed, renamed over
/// it, and the directory flushed.
pub fn write_host(path: &Path, bytes: &[u8]) -> Result<()> {
    let ctx = Ctx::new(path.display().to_string(), Layer::File);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    if !dir.is_dir() {
        return Err(ctx.invalid(format!(
            "there is no directory {} to write the hive in",
            dir.display()
        )));
    }
    let tmp: PathBuf = dir.join(format!(".{name}.rehost-new"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ctx.io(0, e)
    })
}

/// The hive `m` of an image: a BCD store beside the boot manager, or a hive of the install
/// on `volume` (the only install when `None`).
pub fn open_in_image(opened: &Opened, volume: Option<u32>, m: &Mount) -> Result<HiveFile> {
    let scene = &opened.scene;
    let mut errors = Vec::new();
    let stores = boot::stores(scene, &mut errors);
    let (vol, dir) = if m.boot_store {
        let bcd: Vec<_> = stores
            .iter()
            .filter(|s| s.kind == "bcd" && volume.is_none_or(|v| v == s.volume))
            .collect();
        match bcd.as_slice() {
            [one] => {
                let (d, _) = one.path.rsplit_once('/').unwrap_or(("", &one.path));
                (one.volume, d.replace('/', "\\"))
            }
            [] => {
                return Err(scene
                    .ctx
                    .not_found("a BCD store (\\Boot\\BCD or \\EFI\\Microsoft\\Boot\\BCD)"))
            }
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|s| format!("volume {} {}", s.volume, s.path))
                    .collect();
                return Err(scene.ctx.invalid(format!(
                    "several BCD stores ({}): choose one with --volume",
                    list.join(", ")
                )));
            }
        }
    } else {
        let mut unread = Vec::new();
        let installs: Vec<(u32, String)> = install::candidates(scene, &stores, &mut unread)
            .into_iter()
            .filter(|(v, _)| volume.is_none_or(|want| want == *v))
            .collect();
        match installs.as_slice() {
            [(v, root)] => (*v, format!("{root}\\System32\\config")),
            [] if !unread.is_empty() => {
                return Err(scene.ctx.invalid(format!(
                    "no Windows install found, and what could hold one could not be read: {}",
                    unread.join("; ")
                )))
            }
            [] => {
                return Err(scene
                    .ctx
                    .not_found("a Windows install (System32\\config\\SYSTEM)"))
            }
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|(v, r)| format!("volume {v} {r}"))
                    .collect();
                return Err(scene.ctx.invalid(format!(
                    "several installs ({}): choose one with --volume",
                    list.join(", ")
                )));
            }
        }
    };
    let path = format!("{dir}\\{}", m.file);
    let Some((_, primary, logs)) = install::read_hive_files(scene, vol, &dir, &m.file) else {
        return Err(scene.ctx.not_found(&format!("volume {vol} {path}")));
    };
    let source = format!("{}: volume {vol} {path}", scene.ctx.image);
    let mut hive = HiveFile::new(source, Some(m.clone()), primary?, &logs);
    hive.location = Some((vol, path));
    Ok(hive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_table_names_every_hive() {
        let m = Mounts::builtin();
        let (sys, rest) = m.for_key("HKLM\\SYSTEM\\Select").unwrap();
        assert_eq!((sys.file.as_str(), rest), ("SYSTEM", "Select"));
        let (bcd, rest) = m.for_key("HKEY_LOCAL_MACHINE\\BCD00000000").unwrap();
        assert!(bcd.boot_store && rest.is_empty());
        assert!(m.for_key("HKLM\\SYSTEMX\\Select").is_none());
        assert_eq!(
            m.for_file("\\SystemRoot\\System32\\Config\\SOFTWARE")
                .unwrap()
                .file,
            "SOFTWARE"
        );
        assert_eq!(m.names(m.for_file("default").unwrap())[1], "HKU\\.DEFAULT");
    }
}
