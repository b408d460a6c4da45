//! What inspect, check and fix take to run at scale: a manifest, directories and `-` among
//! the images, a ledger, `--resume`, `--quiet`; and the run itself with its progress.

use super::progress::Progress;
use anyhow::Result;
use rehost_fleet::execute::{self, Config, Ran};
use rehost_fleet::input::{self, Item};
use rehost_fleet::shard::{Origin, Shard};
use rehost_fleet::work::Work;
use rehost_fleet::Done;
use std::path::PathBuf;

// The fleet options of inspect, check and fix.
// (Not a doc comment: clap would show one as the help of each command that
// flattens this in, in place of the command's own.)
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Fleet options")]
pub struct FleetArgs {
    /// A manifest of images: CSV with a header, or JSON Lines. Columns (keys): image (the
    /// only one required; relative to the manifest's folder), target, drivers, skip (rules,
    /// comma-separated), output (fix: a new image). A row's own values replace --target,
    /// --drivers and the mode, and add to --skip.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Record each image's identity and outcome in this SQLite database (created when
    /// missing).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Skip the images the ledger already has a final outcome for, with the same command
    /// and options (a fixed image is recognised as the fix left it).
    #[arg(long, requires = "ledger")]
    pub resume: bool,
    /// No progress bar (it is drawn on stderr only when stderr is a terminal).
    #[arg(short, long)]
    pub quiet: bool,
    /// Run only shard K of N (from 0): the rows whose name in the input (a manifest's
    /// image cell, a path below a directory given, an argument as written) hashes to K.
    /// N processes given the same input and --shard 0/N to N-1/N run every row once, each
    /// with its own --ledger (`rehost ledger merge` combines them). Default: from a Slurm
    /// array task (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT) or a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX, and REHOST_SHARD_COUNT, which the Job must set to its
    /// completions); --shard 0/1 runs every row there.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

impl FleetArgs {
    /// The items of the run: the images (files, directories, `-` for paths on standard
    /// input) and the manifest's rows.
    pub fn items(&self, images: &[PathBuf]) -> Result<Vec<Item>> {
        let items = input::gather(images, self.manifest.as_deref(), std::io::stdin().lock())?;
        if items.is_empty() {
            return Err(super::Usage("no images: none given, found or listed".into()).into());
        }
        let (shard, origin) = match self.shard {
            Some(s) => (s, "--shard"),
            None => match Shard::from_env(|k| std::env::var(k).ok()) {
                Ok(Some((s, Origin::Slurm))) => (s, "Slurm array task"),
                Ok(Some((s, Origin::Kubernetes))) => (s, "Kubernetes Indexed Job"),
                Ok(None) => return Ok(items),
                Err(e) => return Err(super::Usage(e.to_string()).into()),
            },
        };
        let total = items.len();
        let items = shard.select(items);
        if !self.quiet {
            eprintln!(
                "rehost: shard {shard} ({origin}): {} of {total} row{}",
                items.len(),
                if total == 1 { "" } else { "s" }
            );
        }
        Ok(items)
    }

    /// Runs `work` on `items`, drawing progress, with `sink` seeing each finished image.
    pub fn run<W: Work>(
        &self,
        work: &W,
        items: &[Item],
        jobs: Option<usize>,
        sink: &(dyn Fn(&Done<W::Report>) + Sync),
    ) -> Result<Ran<W::Report>> {
        let workers =
            jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let progress = Progress::new(items.len(), workers.min(items.len()), !self.quiet, sink);
        let cfg = Config {
            jobs,
            ledger: self.ledger.as_deref(),
            resume: self.resume,
            argv: std::env::args().collect(),
        };
        let ran = execute::execute(work, items, &cfg, &progress);
        progress.done();
        let ran = ran?;
        if ran.skipped > 0 && !self.quiet {
            eprintln!(
                "rehost {}: {} image{} skipped: the ledger has their outcome (--resume)",
                work.command(),
                ran.skipped,
                if ran.skipped == 1 { "" } else { "s" }
            );
        }
        Ok(ran)
    }
}
