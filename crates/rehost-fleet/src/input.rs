//! What a fleet run is given: images as arguments, directories searched for images, a
//! manifest (CSV with a header, or JSON Lines) whose rows may each give their own target,
//! driver folder, rules to skip and output, and `-` for paths on standard input.
//!
//! [`gather`] turns these into [`Item`]s, one per row, in the order given. A row that
//! cannot be run (a missing file, the same file as an earlier row, ...) keeps its place
//! with its [`Item::problem`]: the run reports it on its row and does the rest. Only an
//! unreadable manifest or a manifest without an `image` column stops the run.

use rehost_core::error::{Ctx, Layer, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a manifest row may say beyond its image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Row {
    /// The image (relative paths are taken from the manifest's folder).
    pub image: PathBuf,
    /// The target for this image instead of the command's `--target`.
    pub target: Option<String>,
    /// The driver folder for this image instead of `--drivers`.
    pub drivers: Option<PathBuf>,
    /// Rules whose fixes to skip for this image, beside `--skip` (comma-separated in CSV).
    #[serde(deserialize_with = "list")]
    pub skip: Vec<String>,
    /// fix: write a new image here instead of the command's mode.
    pub output: Option<PathBuf>,
}

fn list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<L>::deserialize(d)? {
        None => vec![],
        Some(L::One(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Some(L::Many(v)) => v,
    })
}

/// One image of the run, as its input named it.
#[derive(Debug, Clone, Default)]
pub struct Item {
    /// Where it came from: "argument 2", "fleet.csv line 4", "standard input line 3",
    /// "directory images/".
    pub source: String,
    /// What the row says (its image, and for a manifest row its own options).
    pub row: Row,
    /// Why it cannot be run, if it cannot.
    pub problem: Option<String>,
    /// Its position in the whole input, from 0 (the ledger's `row`), whatever shard runs it.
    pub index: usize,
    /// The name its input gave the image, relative to that input's own root: an argument
    /// or a line of standard input as written, a manifest's `image` cell as written (or
    /// `line N` for a row without one), a found file's path below the directory searched.
    /// Every shard of a run reads the same input and so gives each row the same key,
    /// wherever the shared storage is mounted ([`crate::shard`]).
    pub key: String,
}

impl Item {
    fn new(source: String, image: PathBuf, key: &Path) -> Item {
        Item {
            source,
            key: key_of(key),
            row: Row {
                image,
                ..Row::default()
            },
            ..Item::default()
        }
    }

    /// The image.
    pub fn image(&self) -> &Path {
        &self.row.image
    }
}

/// A path as a shard key: its components joined by `/`, without `.` components or
/// repeated separators (`./a//b.vhd` is `a/b.vhd`); `..` is kept as written.
fn key_of(p: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<String> = Vec::new();
    let mut absolute = false;
    for c in p.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::CurDir => {}
            c => parts.push(c.as_os_str().to_string_lossy().into_owned()),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// The extensions of the formats rehost reads (any case).
pub const EXTENSIONS: [&str; 4] = ["vhd", "vhdx", "raw", "img"];

/// Whether a file found in a directory is an image: by its extension, or by its content
/// (a VHDX or VHD signature, or a boot sector's 55 AA).
pub fn looks_like_image(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
        return true;
    }
    use std::os::unix::fs::FileExt;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 512];
    if f.read_exact_at(&mut head, 0).is_err() {
        return false;
    }
    if head.starts_with(b"vhdxfile") || head.starts_with(b"conectix") {
        return true;
    }
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut foot = [0u8; 8];
    if f.read_exact_at(&mut foot, size - 512).is_ok() && &foot == b"conectix" {
        return true;
    }
    // Not the ledger or an undo journal that happens to hold a boot sector's bytes.
    !head.starts_with(b"SQLite format 3\0") && head[510..] == [0x55, 0xAA]
}

/// Every image under `dir`, recursively, sorted by path; hidden entries and undo journals
/// are left out.
fn search(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with(".rehost-undo") {
            continue;
        }
        let p = e.path();
        let ft = std::fs::metadata(&p).map(|m| m.file_type());
        match ft {
            Ok(t) if t.is_dir() => search(&p, out)?,
            Ok(t) if t.is_file() && looks_like_image(&p) => out.push(p),
            _ => {}
        }
    }
    Ok(())
}

fn manifest_error(path: &Path, msg: impl std::fmt::Display) -> rehost_core::Error {
    Ctx::new(path.display().to_string(), Layer::Fleet).invalid(format!("manifest: {msg}"))
}

/// Reads a manifest: JSON Lines when its first non-blank character is `{`, CSV otherwise.
/// A row that cannot be read becomes an item with that problem.
pub fn manifest(path: &Path) -> Result<Vec<Item>> {
    let text = std::fs::read_to_string(path).map_err(|e| manifest_error(path, e))?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let name = path.display().to_string();
    let mut items = Vec::new();
    if text.trim_start().starts_with('{') {
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let source = format!("{name} line {}", n + 1);
            let key = format!("line {}", n + 1);
            items.push(match serde_json::from_str::<Row>(line) {
                Ok(row) => row_item(source, row, &base, key),
                Err(e) => bad(source, e, key),
            });
        }
        return Ok(items);
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| manifest_error(path, e))?
        .clone();
    if !headers.iter().any(|h| h == "image") {
        return Err(manifest_error(
            path,
            "no `image` column (the header names the columns: image, target, drivers, skip, output)",
        ));
    }
    for record in reader.records() {
        let (line, row) = match record {
            Ok(r) => (
                r.position().map_or(0, |p| p.line()),
                r.deserialize::<Row>(Some(&headers))
                    .map_err(|e| e.to_string()),
            ),
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
        };
        let source = format!("{name} line {line}");
        let key = format!("line {line}");
        items.push(match row {
            Ok(row) => row_item(source, blank_is_none(row), &base, key),
            Err(e) => bad(source, e, key),
        });
    }
    Ok(items)
}

/// An empty CSV cell says nothing.
fn blank_is_none(mut row: Row) -> Row {
    row.target = row.target.filter(|s| !s.is_empty());
    row.drivers = row.drivers.filter(|p| !p.as_os_str().is_empty());
    row.output = row.output.filter(|p| !p.as_os_str().is_empty());
    row
}

/// A manifest row that cannot be read; `key` names its line.
fn bad(source: String, e: impl std::fmt::Display, key: String) -> Item {
    Item {
        problem: Some(format!("{source}: cannot be read: {e}")),
        source,
        key,
        ..Item::default()
    }
}

/// A manifest row with its relative paths taken from the manifest's folder; its key is
/// its image as written (`line_key`, its line, when it has none).
fn row_item(source: String, mut row: Row, base: &Path, line_key: String) -> Item {
    let rel = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    if row.image.as_os_str().is_empty() {
        return bad(source, "no image", line_key);
    }
    let key = key_of(&row.image);
    rel(&mut row.image);
    row.drivers.as_mut().map(rel);
    row.output.as_mut().map(rel);
    Item {
        source,
        row,
        key,
        ..Item::default()
    }
}

/// Gathers the items of a run from its arguments (files, directories, `-` for paths on
/// `stdin`, one a line) and its manifest, then marks each missing file and each file an
/// earlier row named already (the same device and inode, under any name).
pub fn gather(
    args: &[PathBuf],
    manifest_path: Option<&Path>,
    stdin: impl BufRead,
) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut stdin = Some(stdin);
    for (n, a) in args.iter().enumerate() {
        if a.as_os_str() == "-" {
            let Some(input) = stdin.take() else { continue };
            for (l, line) in input.lines().enumerate() {
                let line = line
                    .map_err(|e| Ctx::new("standard input", Layer::Fleet).invalid(e.to_string()))?;
                if !line.trim().is_empty() {
                    let source = format!("standard input line {}", l + 1);
                    let image = PathBuf::from(line.trim_end());
                    items.push(Item::new(source, image.clone(), &image));
                }
            }
        } else if a.is_dir() {
            let mut found = Vec::new();
            search(a, &mut found).map_err(|e| {
                Ctx::new(a.display().to_string(), Layer::Fleet).invalid(e.to_string())
            })?;
            let source = format!("directory {}", a.display());
            items.extend(found.into_iter().map(|p| {
                let below = p.strip_prefix(a).unwrap_or(&p).to_path_buf();
                Item::new(source.clone(), p, &below)
            }));
        } else {
            items.push(Item::new(format!("argument {}", n + 1), a.clone(), a));
        }
    }
    if let Some(m) = manifest_path {
        items.extend(manifest(m)?);
    }
    for (i, item) in items.iter_mut().enumerate() {
        item.index = i;
    }
    mark(&mut items);
    Ok(items)
}

/// Marks missing files and duplicates.
fn mark(items: &mut [Item]) {
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    for i in 0..items.len() {
        if items[i].problem.is_some() {
            continue;
        }
        let problem = match std::fs::metadata(items[i].image()) {
            Err(e) => Some(format!("{}: {e}", items[i].source)),
            Ok(m) if m.is_dir() => Some(format!("{}: is a directory", items[i].source)),
            Ok(m) => match seen.get(&(m.dev(), m.ino())) {
                Some(&first) => Some(format!(
                    "{}: the same file as {} ({}); done once",
                    items[i].source,
                    items[first].source,
                    items[first].image().display()
                )),
                None => {
                    seen.insert((m.dev(), m.ino()), i);
                    None
                }
            },
        };
        items[i].problem = problem;
    }
}

#[cfg(test)]
mod tests;
