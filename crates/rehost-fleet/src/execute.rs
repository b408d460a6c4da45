//! A fleet run over [`Item`]s: each item's [`Work`] on the bounded pool, an [`Observer`]
//! told when each image starts, finishes or is skipped, and, with a ledger, each outcome
//! sent to the ledger's one writer thread as it finishes.
//!
//! With `resume`, an item whose identity (read before its work) has a final outcome in the
//! ledger for the same command and options, before or after its work, is skipped: an
//! image fixed in place is recognised in the state the fix left it in.
//!
//! An image whose fix was committed but whose outcome the ledger never got (the run was
//! killed between the two) has an identity the ledger does not know, and is run again.
//! That is safe, and writes nothing: the commit is whole (rehost-disk rolls an
//! interrupted commit back when the image is next opened, from its journal), so the image
//! is either as it was or fixed, and fix on a fixed image plans nothing and commits
//! nothing, leaving the undo journal of the first fix as it was. The ledger then records
//! the outcome (not committed, with that journal) and the image is done.

use crate::input::Item;
use crate::work::Work;
use crate::Done;
use rayon::prelude::*;
use rehost_core::error::{Ctx, Layer, Result};
use rehost_ledger::writer::{Sender, Writer};
use rehost_ledger::{Identity, Ledger, Options, Outcome, Status};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

/// How a fleet run runs.
#[derive(Debug, Clone, Default)]
pub struct Config<'a> {
    /// Images at once (`None`: one per core).
    pub jobs: Option<usize>,
    /// The ledger to record each outcome in.
    pub ledger: Option<&'a Path>,
    /// Skip the images the ledger has a final outcome for (needs a ledger).
    pub resume: bool,
    /// The command line, for the ledger's run row.
    pub argv: Vec<String>,
}

/// What a caller is told while a fleet runs. Calls of `finished` never overlap.
pub trait Observer<R>: Sync {
    /// A worker (numbered from 0) starts on an item.
    fn started(&self, _worker: usize, _item: &Item) {}
    /// An item is done (run, failed, or not run for a problem of its row).
    fn finished(&self, _done: &Done<R>) {}
    /// An item is skipped: the ledger has its final outcome.
    fn skipped(&self, _item: &Item) {}
}

/// An observer that is told nothing.
pub struct Quiet;

impl<R> Observer<R> for Quiet {}

/// What a fleet run returns.
#[derive(Debug)]
pub struct Ran<R> {
    /// The items run (or failed), in the order given; skipped ones left out.
    pub done: Vec<Done<R>>,
    /// Items skipped by `resume`.
    pub skipped: usize,
}

/// Whether a failure is the image's lock held by another rehost process (`rehost-disk`'s
/// lock says so in these words).
pub fn is_busy(e: &rehost_core::Error) -> bool {
    e.to_string().contains("locked by another rehost process")
}

/// Runs `work` on every item.
pub fn execute<W: Work>(
    work: &W,
    items: &[Item],
    cfg: &Config,
    observer: &dyn Observer<W::Report>,
) -> Result<Ran<W::Report>> {
    if cfg.resume && cfg.ledger.is_none() {
        return Err(Ctx::new("fleet", Layer::Fleet).invalid("--resume needs --ledger FILE"));
    }
    let (writer, run, finals) = match cfg.ledger {
        Some(path) => {
            let ledger = Ledger::open(path)?;
            let finals = if cfg.resume {
                ledger.finals(work.command())?
            } else {
                HashSet::new()
            };
            let run = ledger.begin_run(work.command(), &cfg.argv, env!("CARGO_PKG_VERSION"))?;
            (Some(Writer::spawn(ledger, run)), run, finals)
        }
        None => (None, 0, HashSet::new()),
    };
    let sender = Mutex::new(writer.as_ref().map(Writer::sender));
    let one = One {
        work,
        observer,
        ledger: writer.is_some(),
        finals: &finals,
        sender: &sender,
    };
    let results: Vec<Option<Done<W::Report>>> =
        map_items(items, cfg.jobs, |(index, item)| one.run(index, item))?;
    drop(sender);
    if let Some(w) = writer {
        w.finish(run)?;
    }
    let skipped = results.iter().filter(|r| r.is_none()).count();
    Ok(Ran {
        done: results.into_iter().flatten().collect(),
        skipped,
    })
}

/// What each worker shares.
struct One<'a, W: Work> {
    work: &'a W,
    observer: &'a dyn Observer<W::Report>,
    ledger: bool,
    finals: &'a HashSet<rehost_ledger::Key>,
    /// The ledger's sender, behind the lock that also keeps `finished` calls apart.
    sender: &'a Mutex<Option<Sender>>,
}

impl<W: Work> One<'_, W> {
    fn run(&self, index: usize, item: &Item) -> Option<Done<W::Report>> {
        let image = item.image();
        let command = self.work.command();
        let prepared = match &item.problem {
            Some(p) => Err(p.clone()),
            None => self
                .work
                .prepare(item)
                .map_err(|e| format!("{}: {e}", item.source)),
        };
        let (job, options) = match prepared {
            Ok((job, value)) => (job, Options::new(command, &value)),
            Err(msg) => {
                let name = if image.as_os_str().is_empty() {
                    item.source.clone()
                } else {
                    image.display().to_string()
                };
                let done = Done {
                    index,
                    image: image.to_path_buf(),
                    result: Err(Ctx::new(name, Layer::Fleet).invalid(msg)),
                };
                let options = Options::new(command, &serde_json::json!({}));
                self.finish(item, &done, options, Status::Input, [None, None], 0.0);
                return Some(done);
            }
        };
        let before = if self.ledger {
            Identity::of(image).ok()
        } else {
            None
        };
        if let Some(b) = &before {
            let key = (
                options.key.clone(),
                b.path.clone(),
                b.size,
                b.mtime_ns,
                b.hash.clone(),
            );
            if self.finals.contains(&key) {
                self.observer.skipped(item);
                return None;
            }
        }
        self.observer
            .started(rayon::current_thread_index().unwrap_or(0), item);
        let started = std::time::Instant::now();
        let done = Done {
            index,
            image: image.to_path_buf(),
            result: self.work.run(&job, image),
        };
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let status = match &done.result {
            Ok(_) => Status::Ok,
            Err(e) if is_busy(e) => Status::Busy,
            Err(_) => Status::Failed,
        };
        // Read outside the lock: the identity the write in place left.
        let after = match &done.result {
            Ok(r) if self.ledger => {
                let f = self.work.facts(r);
                (f.in_place && f.committed)
                    .then(|| Identity::of(image).ok())
                    .flatten()
            }
            _ => None,
        };
        self.finish(item, &done, options, status, [before, after], elapsed);
        Some(done)
    }

    /// Tells the observer, and sends the outcome to the ledger's writer.
    fn finish(
        &self,
        item: &Item,
        done: &Done<W::Report>,
        options: Options,
        status: Status,
        [before, after]: [Option<Identity>; 2],
        elapsed_ms: f64,
    ) {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        self.observer.finished(done);
        let Some(tx) = sender.as_ref() else { return };
        let facts = match &done.result {
            Ok(r) => self.work.facts(r),
            Err(e) => crate::work::Facts {
                errors: vec![format!("{e:#}")],
                ..Default::default()
            },
        };
        let _ = tx.send(Outcome {
            row: item.index,
            source: item.source.clone(),
            image: done.image.display().to_string(),
            options,
            status,
            before,
            after,
            committed: facts.committed,
            journal: facts.journal,
            bytes_read: facts.bytes_read,
            bytes_written: facts.bytes_written,
            elapsed_ms,
            errors: facts.errors,
            verdicts: facts.verdicts,
            findings: facts.findings,
            changes: facts.changes,
            report: done.json().to_string(),
        });
    }
}

/// `f` of each item with its index, in order, at most `jobs` at a time (`None`: one per
/// core). One item, or `jobs` of one, runs on this thread with no pool to start (and no
/// heaps of other threads to set up), which is most of what a single small image costs.
pub(crate) fn map_items<T: Sync, R: Send>(
    items: &[T],
    jobs: Option<usize>,
    f: impl Fn((usize, &T)) -> R + Sync + Send,
) -> Result<Vec<R>> {
    if items.len() < 2 || jobs == Some(1) {
        return Ok(items.iter().enumerate().map(f).collect());
    }
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(j) = jobs {
        builder = builder.num_threads(j.max(1));
    }
    let pool = builder.build().map_err(|e| {
        Ctx::new("fleet", Layer::Fleet).invalid(format!("cannot start the worker threads: {e}"))
    })?;
    Ok(pool.install(|| items.par_iter().enumerate().map(&f).collect()))
}
