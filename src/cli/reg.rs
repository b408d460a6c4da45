//! `rehost reg`: query, export, import, set and delete registry keys and values, in a bare
//! hive file or in the hives of an image's install.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use rehost::formats::regf::regtext::{self, Op};
use rehost::formats::regf::{diff, export, query, types};
use rehost::fs::staged::{self, Mode, Writers};
use rehost::fs::Image;
use rehost::windows::hive_edit::HiveEdits;
use rehost::windows::registry::{self, HiveFile, Mounts};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

// Where edits go.
// (Not a doc comment: clap would show one as the help of each command that
// flattens this in, in place of the command's own.)
#[derive(clap::Args, Clone)]
pub struct WriteArgs {
    /// Show what would change, as a .reg-style diff, and write nothing.
    #[arg(long, conflicts_with_all = ["output", "in_place"])]
    dry_run: bool,
    /// On a hive file: write the edited hive to this new file (the source is left as it
    /// is). On an image: write a new image of the same format with the edit.
    #[arg(long, conflicts_with = "in_place")]
    output: Option<PathBuf>,
    /// On an image: write into the image itself, behind an undo journal (a hive file is
    /// always rewritten in place unless --output or --dry-run).
    #[arg(long)]
    in_place: bool,
    /// Apply edits under CurrentControlSet to every control set Select names (Current,
    /// Default, LastKnownGood), not only the current one.
    #[arg(long)]
    all_control_sets: bool,
    /// On an image, with --in-place: write into a volume that has Volume Shadow Copy
    /// snapshots, which is otherwise refused; the snapshots become stale.
    #[arg(long)]
    allow_shadow_copies: bool,
}

// Which hive and install.
// (Not a doc comment: clap would show one as the help of each command that
// flattens this in, in place of the command's own.)
#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// A hive file (SYSTEM, SOFTWARE, BCD, ...) or a raw, VHD or VHDX image.
    target: PathBuf,
    /// On an image: the volume of the install (or of the BCD store) when there are several.
    #[arg(long)]
    volume: Option<u32>,
    /// On a hive file: the name its root goes by in .reg text (default: where Windows
    /// mounts a hive of its name, e.g. HKEY_LOCAL_MACHINE\SYSTEM).
    #[arg(long)]
    prefix: Option<String>,
}

// The `reg` subcommands.
// (Not a doc comment: clap would show one as the help of each command that
// flattens this in, in place of the command's own.)
#[derive(Subcommand)]
#[command(defer = true)]
pub enum RegCommand {
    /// Show a key: its values and subkeys (as reg.exe does).
    Query {
        #[command(flatten)]
        t: TargetArgs,
        /// The key: HKLM\SYSTEM\CurrentControlSet\Services\atapi, or on a hive file a path
        /// below its root.
        key: String,
        /// Only this value ("" for the default value).
        #[arg(long)]
        value: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export a key and its subtree as .reg text (regedit's "Version 5.00" format).
    Export {
        #[command(flatten)]
        t: TargetArgs,
        /// The key.
        key: String,
    },
    /// Import a .reg file: create keys, set values, delete keys ([-KEY]) and values ("x"=-).
    Import {
        #[command(flatten)]
        t: TargetArgs,
        /// The .reg file (UTF-8, or UTF-16 with a byte order mark).
        file: PathBuf,
        #[command(flatten)]
        w: WriteArgs,
    },
    /// Set a value, creating its key if needed.
    Set {
        #[command(flatten)]
        t: TargetArgs,
        /// The key.
        key: String,
        /// The value's name ("" for the default value).
        #[arg(long)]
        value: String,
        /// Its type: REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, REG_QWORD, REG_BINARY,
        /// or a number.
        #[arg(long = "type", default_value = "REG_SZ")]
        kind: String,
        /// The data: text for strings (REG_MULTI_SZ items separated by \0), decimal or 0x hex
        /// for numbers, hex bytes for anything else.
        #[arg(long)]
        data: String,
        #[command(flatten)]
        w: WriteArgs,
    },
    /// Delete a key and its subtree, or one value with --value.
    Delete {
        #[command(flatten)]
        t: TargetArgs,
        /// The key.
        key: String,
        /// Delete only this value of the key.
        #[arg(long)]
        value: Option<String>,
        #[command(flatten)]
        w: WriteArgs,
    },
}

fn is_hive_file(path: &Path) -> Result<bool> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut sig = [0u8; 4];
    use std::io::Read;
    Ok(f.read_exact(&mut sig).is_ok() && &sig == b"regf")
}

/// The hive a key belongs to, opened, and the key's full name.
fn open(t: &TargetArgs, key: &str) -> Result<(HiveFile, String)> {
    if is_hive_file(&t.target)? {
        let hive = registry::open_host(&t.target)?;
        let prefix = hive.prefix(t.prefix.as_deref());
        let full = if hive.mapping(t.prefix.as_deref(), false)?.map(key).is_ok() {
            key.trim_matches('\\').to_string()
        } else {
            let rel = key.trim_matches('\\');
            if rel.is_empty() {
                prefix
            } else {
                format!("{prefix}\\{rel}")
            }
        };
        return Ok((hive, full));
    }
    let mounts = Mounts::builtin();
    let Some((m, _)) = mounts.for_key(key) else {
        let names: Vec<&str> = mounts.hive.iter().map(|m| m.mount.as_str()).collect();
        bail!("{key}: name the hive the key is in ({})", names.join(", "));
    };
    let opened = rehost::windows::open(&t.target)?;
    let hive = registry::open_in_image(&opened, t.volume, m)?;
    Ok((hive, key.trim_matches('\\').to_string()))
}

fn warn_dirty(hive: &HiveFile) {
    if let Some(r) = &hive.replayed {
        eprintln!("rehost: {}: dirty, {r} (in memory)", hive.source);
    }
    if let Some(why) = &hive.unreplayable {
        eprintln!(
            "rehost: {}: dirty and read as it stands: {why}",
            hive.source
        );
    }
}

/// The one path in the hive a key names (CurrentControlSet: the current control set).
fn path_of(hive: &HiveFile, t: &TargetArgs, full: &str) -> Result<String> {
    let map = hive.mapping(t.prefix.as_deref(), false)?;
    let paths = map
        .map(full)
        .map_err(|e| anyhow::anyhow!("{}: {e}", hive.source))?;
    paths
        .into_iter()
        .next()
        .with_context(|| format!("{full}: no control set"))
}

/// Runs a `reg` subcommand.
pub fn run(cmd: &RegCommand) -> Result<i32> {
    match cmd {
        RegCommand::Query {
            t,
            key,
            value,
            json,
        } => query_cmd(t, key, value.as_deref(), *json),
        RegCommand::Export { t, key } => {
            let (hive, full) = open(t, key)?;
            warn_dirty(&hive);
            let path = path_of(&hive, t, &full)?;
            let k = query::key(&hive.bytes, &path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", hive.source))?
                .with_context(|| format!("{}: no key {full}", hive.source))?;
            let cells = rehost::formats::regf::cells::Cells::new(&hive.bytes);
            let root = cells
                .root(&hive.bytes)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let nk = cells
                .find(&root, &path)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_context(|| format!("no key {full}"))?;
            let name = join(&hive.prefix(t.prefix.as_deref()), &k.path);
            let text = export::export(&cells, &nk, &name)
                .map_err(|e| anyhow::anyhow!("{}: {e}", hive.source))?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(0)
        }
        RegCommand::Import { t, file, w } => {
            let bytes = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
            let ops = regtext::parse(&regtext::decode(&bytes))
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let first = ops.iter().find_map(|o| match o {
                Op::Key(k) | Op::DeleteKey(k) => Some(k.clone()),
                _ => None,
            });
            let Some(first) = first else {
                bail!("{}: no key in the file", file.display());
            };
            edit_cmd(t, &first, &ops, w)
        }
        RegCommand::Set {
            t,
            key,
            value,
            kind,
            data,
            w,
        } => {
            let k = types::parse(kind).with_context(|| format!("{kind:?} is not a value type"))?;
            let d = types::data(k, data).map_err(|e| anyhow::anyhow!("--data: {e}"))?;
            let ops = [
                Op::Key(key.clone()),
                Op::Set {
                    name: value.clone(),
                    kind: k,
                    data: d,
                },
            ];
            edit_cmd(t, key, &ops, w)
        }
        RegCommand::Delete { t, key, value, w } => {
            let ops = match value {
                Some(v) => vec![Op::Key(key.clone()), Op::DeleteValue(v.clone())],
                None => vec![Op::DeleteKey(key.clone())],
            };
            edit_cmd(t, key, &ops, w)
        }
    }
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}\\{b}")
    }
}

fn query_cmd(t: &TargetArgs, key: &str, value: Option<&str>, json: bool) -> Result<i32> {
    let (hive, full) = open(t, key)?;
    warn_dirty(&hive);
    let path = path_of(&hive, t, &full)?;
    let k = query::key(&hive.bytes, &path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", hive.source))?
        .with_context(|| format!("{}: no key {full}", hive.source))?;
    let name = join(&hive.prefix(t.prefix.as_deref()), &k.path);
    let values: Vec<_> = k
        .values
        .iter()
        .filter(|v| value.is_none_or(|want| v.name.eq_ignore_ascii_case(want)))
        .collect();
    if let Some(want) = value {
        if values.is_empty() {
            bail!("{}: {name} has no value {want:?}", hive.source);
        }
    }
    if json {
        let vals: Vec<_> = values
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "type": types::name(v.kind),
                    "type_number": v.kind,
                    "data": types::show(v.kind, &v.data),
                    "size": v.data.len(),
                })
            })
            .collect();
        let mut doc = json!({ "key": name, "last_written": k.last_written, "values": vals });
        if value.is_none() {
            doc["subkeys"] = json!(k.subkeys);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{name}")?;
    for v in &values {
        let shown = if v.name.is_empty() {
            "(Default)"
        } else {
            &v.name
        };
        writeln!(
            out,
            "    {shown}    {}    {}",
            types::name(v.kind),
            types::show(v.kind, &v.data)
        )?;
    }
    if value.is_none() {
        writeln!(out)?;
        for s in &k.subkeys {
            writeln!(out, "{name}\\{s}")?;
        }
    }
    out.flush()?;
    Ok(0)
}

/// The operations of a .reg text grouped by the hive each key belongs to, in order.
fn by_hive(ops: &[Op]) -> Result<Vec<(String, Vec<Op>)>> {
    let mounts = Mounts::builtin();
    let mut groups: Vec<(String, Vec<Op>)> = Vec::new();
    let mut current: Option<String> = None;
    for op in ops {
        if let Op::Key(k) | Op::DeleteKey(k) = op {
            let Some((m, _)) = mounts.for_key(k) else {
                let names: Vec<&str> = mounts.hive.iter().map(|m| m.mount.as_str()).collect();
                bail!("{k}: not in a hive rehost knows ({})", names.join(", "));
            };
            current = Some(m.mount.clone());
        }
        let Some(c) = &current else {
            bail!("a value before any key");
        };
        match groups.iter_mut().find(|(g, _)| g == c) {
            Some((_, list)) => list.push(op.clone()),
            None => groups.push((c.clone(), vec![op.clone()])),
        }
    }
    Ok(groups)
}

fn edit_cmd(t: &TargetArgs, key: &str, ops: &[Op], w: &WriteArgs) -> Result<i32> {
    if is_hive_file(&t.target)? {
        return edit_hive(t, key, ops, w);
    }
    let mode = match (w.dry_run, &w.output, w.in_place) {
        (true, _, _) => Mode::DryRun,
        (_, Some(o), _) => {
            super::write::new_output(&t.target, o)?;
            Mode::Output(o.clone())
        }
        (_, _, true) => Mode::InPlace,
        _ => bail!(
            "{}: say where the edit goes: --dry-run (show it, write nothing), --output NEW (a new image) or --in-place (this image, behind an undo journal)",
            t.target.display()
        ),
    };
    // The image is opened for writing first: its lock is held, and an interrupted commit
    // rolled back, before its hives are read. Every hive is read through this one session,
    // so a later group sees what an earlier one staged; a dry run stages in memory.
    let staged =
        Image::open_staged(&t.target, mode.clone())?.allow_shadow_copies(w.allow_shadow_copies);
    let opened = rehost::windows::open_image(&staged)?;
    let mut edits = HiveEdits::new();
    for (mount, group) in &by_hive(ops)? {
        let mounts = Mounts::builtin();
        let m = mounts
            .hive
            .iter()
            .find(|m| &m.mount == mount)
            .with_context(|| format!("{mount}: not a hive rehost knows"))?;
        let hive = edits.hive(&opened, t.volume, m)?;
        warn_dirty(hive);
        let prefix = hive.prefix(t.prefix.as_deref());
        let changes = edits.edit(
            &opened,
            t.volume,
            m,
            group,
            t.prefix.as_deref(),
            w.all_control_sets,
        )?;
        print!("{}", diff::render(&changes, &prefix));
    }
    let mut writers = Writers::new(&staged, staged::image_options(false, false));
    for s in edits.stage(&mut writers)? {
        if mode != Mode::DryRun {
            eprintln!(
                "rehost: {}: {} change{} to write into {} on volume {}",
                t.target.display(),
                s.changes,
                if s.changes == 1 { "" } else { "s" },
                s.path,
                s.volume
            );
        }
    }
    drop(writers);
    match mode {
        Mode::DryRun => {
            let notes =
                super::write::shadow_copy_notes(&mode, false, &staged.shadow_copies_written());
            for l in notes {
                eprintln!("rehost: {l}");
            }
            let check = staged.in_place_check();
            if let Some(why) = &check.refusal {
                eprintln!("rehost: {}", super::write::in_place_refusal_note(why));
            }
            for r in &check.repairs {
                eprintln!("rehost: {}", super::write::in_place_repair_note(r));
            }
            eprintln!("rehost: dry run: nothing written");
        }
        _ => super::write::report(&t.target, &mode, staged.finish()?),
    }
    Ok(0)
}

/// An edit of a bare hive file: rewritten atomically in place, or into --output.
fn edit_hive(t: &TargetArgs, key: &str, ops: &[Op], w: &WriteArgs) -> Result<i32> {
    if let (Some(o), false) = (&w.output, w.dry_run) {
        super::write::output_dir(&t.target, o)?;
    }
    let (hive, _) = open(t, key)?;
    warn_dirty(&hive);
    // Keys named relative to a bare hive's root get its prefix, as `open` resolved them.
    let prefix = hive.prefix(t.prefix.as_deref());
    let map = hive.mapping(t.prefix.as_deref(), w.all_control_sets)?;
    let ops: Vec<Op> = ops
        .iter()
        .map(|o| match o {
            Op::Key(k) if map.map(k).is_err() => Op::Key(join(&prefix, k.trim_matches('\\'))),
            Op::DeleteKey(k) if map.map(k).is_err() => {
                Op::DeleteKey(join(&prefix, k.trim_matches('\\')))
            }
            other => other.clone(),
        })
        .collect();
    let edited = registry::edit(&hive, &ops, &map)?;
    let text = diff::render(&edited.changes, &prefix);
    print!("{text}");
    if edited.changes.is_empty() {
        eprintln!("rehost: {}: nothing to change", hive.source);
    }
    if w.dry_run {
        eprintln!("rehost: dry run: nothing written");
        return Ok(0);
    }
    let dest = w.output.clone().unwrap_or_else(|| t.target.clone());
    if edited.changes.is_empty() && w.output.is_none() {
        return Ok(0);
    }
    registry::write_host(&dest, &edited.bytes)?;
    eprintln!(
        "rehost: wrote {} ({} change{}{})",
        dest.display(),
        edited.changes.len(),
        if edited.changes.len() == 1 { "" } else { "s" },
        if hive.replayed.is_some() {
            "; its transaction logs were replayed first and are now behind the clean hive, which Windows loads without them"
        } else {
            ""
        }
    );
    Ok(0)
}
