//! `rehost put`, `rm`, `mv`: files written into an image's NTFS volume, staged, then
//! shown (--dry-run), committed in place behind the undo journal (--in-place), or written
//! into a new image (--output).

use anyhow::{bail, Context, Result};
use rehost::fs::staged::{self, Mode, Outcome};
use rehost::fs::Image;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

// Where a write command's changes go (one of the three is required).
// (Not a doc comment: clap would show one as the help of each command that
// flattens this in, in place of the command's own.)
#[derive(clap::Args, Clone)]
pub struct WriteMode {
    /// Stage the change and say what it would write; the image is opened read-only.
    #[arg(long, conflicts_with_all = ["output", "in_place"])]
    pub dry_run: bool,
    /// Write a new image with the change, of the format its extension names (.raw, .img,
    /// .vhd, .vhdx, .qcow2, .vmdk: monolithicSparse) or else of the source's; the source is
    /// not written.
    #[arg(long, conflicts_with = "in_place")]
    pub output: Option<PathBuf>,
    /// With --output: the new image's format, whatever its extension: raw, vhd (dynamic),
    /// vhd-fixed, vhd-azure (fixed, its size rounded up to whole MiB), vhdx (dynamic),
    /// qcow2, vmdk (monolithicSparse), vmdk-stream (streamOptimized, for upload to vSphere).
    #[arg(long)]
    pub output_format: Option<String>,
    /// With --output to a VMDK: the adapter its descriptor names (ddb.adapterType): ide,
    /// buslogic, lsilogic, legacyESX. Default: the source's, when it is a VMDK; else ide.
    #[arg(long, requires = "output")]
    pub vmdk_adapter: Option<String>,
    /// Write into the image itself, behind an undo journal (IMAGE.rehost-undo; undo with
    /// `rehost undo IMAGE`).
    #[arg(long)]
    pub in_place: bool,
    /// Set the volume's dirty flag, so that chkdsk checks it at the next boot.
    #[arg(long)]
    pub mark_dirty: bool,
    /// Empty the volume's $LogFile with the first change, as ntfs-3g's repair tools do (by
    /// default a clean log is left as it is).
    #[arg(long)]
    pub reset_logfile: bool,
    /// With --in-place: write into a volume that has Volume Shadow Copy snapshots, which is
    /// otherwise refused. The snapshots become stale: they no longer match the volume as it
    /// was when they were made.
    #[arg(long)]
    pub allow_shadow_copies: bool,
}

impl WriteMode {
    /// The format `--output-format` names, or a usage error listing the names.
    pub fn output_format(&self) -> Result<Option<rehost::disk::NewFormat>> {
        self.output_format
            .as_deref()
            .map(|name| {
                rehost::disk::NewFormat::from_name(name).ok_or_else(|| {
                    anyhow::Error::new(super::Usage(format!(
                        "no output format {name:?}; rehost writes {}",
                        rehost::disk::NewFormat::NAMES
                    )))
                })
            })
            .transpose()
    }

    /// The adapter `--vmdk-adapter` names, or a usage error listing the names.
    pub fn vmdk_adapter(&self) -> Result<Option<rehost::disk::VmdkAdapter>> {
        vmdk_adapter(self.vmdk_adapter.as_deref())
    }

    /// The mode, or an error saying which to choose (a [`super::Usage`] error) or that
    /// the new image `--output` names is there already (refused before anything is done).
    pub fn mode(&self, image: &Path) -> Result<Mode> {
        if self.output_format.is_some() && self.output.is_none() {
            return Err(super::Usage(format!(
                "{}: --output-format names the format of a new image: give it with --output NEW",
                image.display()
            ))
            .into());
        }
        match (self.dry_run, &self.output, self.in_place) {
            (true, _, _) => Ok(Mode::DryRun),
            (_, Some(o), _) => {
                new_output(image, o)?;
                Ok(Mode::Output(o.clone()))
            }
            (_, _, true) => Ok(Mode::InPlace),
            _ => Err(super::Usage(format!(
                "{}: say where the change goes: --dry-run (show it, write nothing), --output NEW (a new image) or --in-place (this image, behind an undo journal)",
                image.display()
            ))
            .into()),
        }
    }
}

/// Refuses, before anything is done, an `--output` that is there already (a symlink, even a
/// dangling one, counts: nothing is written through it) or whose directory is not.
pub fn new_output(image: &Path, o: &Path) -> Result<()> {
    if o.symlink_metadata().is_ok() {
        bail!(
            "{}: --output {} exists; rehost writes a new image only where there is none \
             (remove it, or name another file)",
            image.display(),
            o.display()
        );
    }
    output_dir(image, o)
}

/// Refuses an `--output` whose directory is not there, naming the directory.
pub fn output_dir(image: &Path, o: &Path) -> Result<()> {
    let dir = o.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir.filter(|d| !d.is_dir()) {
        bail!(
            "{}: --output {}: there is no directory {}",
            image.display(),
            o.display(),
            dir.display()
        );
    }
    Ok(())
}

/// One file operation.
pub enum FileOp {
    /// Create or replace a file with the bytes of a local file.
    Put { local: PathBuf, path: String },
    /// Delete a file.
    Rm { path: String },
    /// Rename or move a file.
    Mv { from: String, to: String },
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Runs one file operation against an image.
pub fn run(image: &Path, volume: Option<u32>, op: &FileOp, w: &WriteMode) -> Result<i32> {
    let mode = w.mode(image)?;
    let opts = staged::image_options(w.mark_dirty, w.reset_logfile);
    let staged = Image::open_staged(image, mode.clone())?
        .allow_shadow_copies(w.allow_shadow_copies)
        .output_format(w.output_format()?)
        .vmdk_adapter(w.vmdk_adapter()?);
    let index = staged.choose(volume)?.0.index;
    let mut w = staged.writer(index, opts)?;
    let what = match op {
        FileOp::Put { local, path } => {
            let bytes = std::fs::read(local).with_context(|| local.display().to_string())?;
            let existed = w.reader().lookup(path).is_ok();
            let comps = rehost::fs::components(path);
            let dirs = comps.split_last().map_or(0, |(_, d)| d.len());
            let made = w.mkdir_all(&comps[..dirs].join("/"))?;
            w.put(path, &bytes)?;
            format!(
                "{} {path}: {} bytes, sha256 {}{}",
                if existed { "replaced" } else { "created" },
                bytes.len(),
                sha(&bytes),
                match made {
                    0 => String::new(),
                    1 => " (1 directory created)".to_string(),
                    n => format!(" ({n} directories created)"),
                }
            )
        }
        FileOp::Rm { path } => {
            w.delete(path)?;
            format!("deleted {path}")
        }
        FileOp::Mv { from, to } => {
            w.rename(from, to)?;
            format!("renamed {from} to {to}")
        }
    };
    println!("{}: volume {index}: {what}", image.display());
    drop(w);
    report(image, &mode, staged.finish()?);
    Ok(0)
}

/// Prints what a finished staged write did.
pub fn report(image: &Path, mode: &Mode, out: Outcome) {
    if let Some(r) = &out.recovered {
        println!("{}: {r}", image.display());
    }
    // What the change writes, in the disk's own bytes (the image file's writes, which the
    // container's format and whole sectors add to, are said when they are made).
    if out.staged_extents > 0 {
        println!(
            "the change {} {} bytes of the disk, in {} place{}",
            if *mode == Mode::DryRun {
                "would write"
            } else {
                "writes"
            },
            out.staged_bytes,
            out.staged_extents,
            if out.staged_extents == 1 { "" } else { "s" }
        );
    }
    match (mode, &out.commit) {
        (Mode::DryRun, _) => println!("dry run: nothing written"),
        (_, None) => println!("nothing to write"),
        (Mode::InPlace, Some(c)) => println!(
            "written in place: {} host writes, {} bytes; undo journal {} (+{} bytes): `rehost undo {}` restores the image",
            c.host_writes,
            c.bytes_written,
            c.journal.as_ref().map(|j| j.display().to_string()).unwrap_or_default(),
            c.journal_bytes,
            image.display()
        ),
        (Mode::Output(p), Some(c)) => println!(
            "written to {}: {} host writes, {} bytes",
            p.display(),
            c.host_writes,
            c.bytes_written
        ),
    }
    for l in shadow_copy_notes(mode, out.commit.is_some(), &out.shadow_copies) {
        println!("{l}");
    }
    if let Some(why) = &out.in_place_refusal {
        println!("{}", in_place_refusal_note(why));
    }
    for r in &out.in_place_repairs {
        println!("{}", in_place_repair_note(r));
    }
}

/// What a dry run says the container would repair in a commit in place besides the write.
pub fn in_place_repair_note(what: &str) -> String {
    format!("--in-place would also repair the container: {what}")
}

/// What a dry run says when the image's container would refuse the write in place.
pub fn in_place_refusal_note(why: &str) -> String {
    format!("--in-place would be refused: {why}")
}

/// What a write did, or would do, to the shadow copies of the volumes it went into: stale
/// after a commit in place; stale in the new image after `--output` (the source's stay
/// whole); in a dry run, that `--in-place` would need `--allow-shadow-copies`.
pub fn shadow_copy_notes(
    mode: &Mode,
    committed: bool,
    written: &[staged::ShadowCopiesWritten],
) -> Vec<String> {
    written
        .iter()
        .map(|s| {
            let copies = format!(
                "{}{} shadow cop{}",
                if s.damaged { "at least " } else { "" },
                s.count,
                if s.count == 1 { "y" } else { "ies" }
            );
            let (them, no_longer, still) = if s.count == 1 {
                ("it", "it no longer matches", "it still matches")
            } else {
                ("them", "they no longer match", "they still match")
            };
            match (mode, committed) {
                (Mode::DryRun, _) => format!(
                    "volume {} has {copies}: --in-place would refuse to write into it without \
                     --allow-shadow-copies (which leaves {them} stale)",
                    s.volume
                ),
                (Mode::InPlace, true) => format!(
                    "volume {} has {copies}, now stale (--allow-shadow-copies): {no_longer} \
                     the volume as it was when made; `rehost undo` restores the \
                     volume, and with it the snapshots",
                    s.volume
                ),
                (Mode::Output(p), true) => format!(
                    "volume {} has {copies}: in {} {no_longer} the volume (the \
                     source's are whole)",
                    s.volume,
                    p.display()
                ),
                (_, false) => format!(
                    "volume {} has {copies}: nothing was written, {still}",
                    s.volume
                ),
            }
        })
        .collect()
}

/// The adapter named by `--vmdk-adapter`, or a usage error listing the names.
pub fn vmdk_adapter(name: Option<&str>) -> Result<Option<rehost::disk::VmdkAdapter>> {
    name.map(|n| {
        rehost::disk::VmdkAdapter::from_name(n).ok_or_else(|| {
            anyhow::Error::new(super::Usage(format!(
                "no VMDK adapter {n:?}; the adapters are {}",
                rehost::disk::VmdkAdapter::NAMES
            )))
        })
    })
    .transpose()
}
