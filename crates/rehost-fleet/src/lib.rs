//! rehost-fleet: many images at once.
//!
//! A fleet run is a list of images and one piece of work to do on each (inspect, check,
//! fix, or any function of a path). [`run`] does the work on a pool of at most `jobs`
//! threads (one task per image, no nested pools), hands each [`Done`] to a sink as soon as
//! its image is finished (so a caller can stream JSON lines or progress), and returns every
//! result in the order the images were given, typed: a failed image carries its
//! [`rehost_core::Error`], not a string. [`Summary`] counts what happened. A bad image
//! never stops the others.
//!
//! At scale, [`input::gather`] turns arguments, directories, a manifest and standard input
//! into [`input::Item`]s (a row that cannot run keeps its place with its problem), and
//! [`execute::execute`] runs a command's [`work::Work`] on them with an
//! [`execute::Observer`] (progress), a ledger ([`rehost_ledger`]) and `--resume`.
//!
//! ```no_run
//! use std::path::PathBuf;
//! let images = vec![PathBuf::from("a.vhdx"), PathBuf::from("b.vhd")];
//! let done = rehost_fleet::inspect(&images, Some(2), |d| {
//!     if let Err(e) = &d.result {
//!         eprintln!("{}: {e}", d.image.display());
//!     }
//! })?;
//! // Count the images on which a Windows install was found.
//! let summary = rehost_fleet::Summary::of(&done, |r| !r.installs.is_empty());
//! println!("{} images, {} with Windows, {} failed", summary.images, summary.passed, summary.failed);
//! # Ok::<(), rehost_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod execute;
pub mod input;
pub mod shard;
pub mod work;

use rehost_core::error::{Ctx, Layer, Result};
use rehost_image::staged::Mode;
use rehost_rules::fix::run::FixReport;
use rehost_rules::fix::FixOptions;
use rehost_rules::{CheckReport, Target};
use rehost_windows::report::ImageReport;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One image's result.
#[derive(Debug)]
pub struct Done<R> {
    /// The image's position in the list given.
    pub index: usize,
    /// The image.
    pub image: PathBuf,
    /// What the work returned for it.
    pub result: Result<R>,
}

impl<R> Done<R> {
    /// The record of a failed image for JSON output (`None` when it succeeded).
    pub fn failure(&self) -> Option<Failure> {
        self.result.as_ref().err().map(|e| Failure {
            image: self.image.display().to_string(),
            errors: vec![format!("{e:#}")],
        })
    }
}

impl<R: Serialize> Done<R> {
    /// The image's result as one JSON value, as `--jsonl` writes it and the ledger keeps
    /// it: its report, or its [`Failure`] record.
    pub fn json(&self) -> serde_json::Value {
        match (&self.result, self.failure()) {
            (Ok(rep), _) => serde_json::to_value(rep).unwrap_or_default(),
            (Err(_), f) => serde_json::to_value(f).unwrap_or_default(),
        }
    }
}

/// A failed image, as JSON output records it: the same `image` and `errors` fields as a
/// report, so that a consumer of JSON lines reads both alike.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The image.
    pub image: String,
    /// Why it failed.
    pub errors: Vec<String>,
}

/// What a fleet run came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Images run.
    pub images: usize,
    /// Images whose work failed (unreadable, refused).
    pub failed: usize,
    /// Images whose result passed the caller's test (boots, say).
    pub passed: usize,
}

impl Summary {
    /// Counts `done`; `passed` says which results count as passed.
    pub fn of<R>(done: &[Done<R>], passed: impl Fn(&R) -> bool) -> Summary {
        Summary {
            images: done.len(),
            failed: done.iter().filter(|d| d.result.is_err()).count(),
            passed: done
                .iter()
                .filter(|d| d.result.as_ref().is_ok_and(&passed))
                .count(),
        }
    }
}

/// Runs `work` on every image, at most `jobs` at a time (`None`: one per core). `sink`
/// sees each result as its image finishes, one at a time (calls never overlap, so lines
/// written there never interleave). The results come back in the order of `images`.
pub fn run<R, W, S>(
    images: &[PathBuf],
    jobs: Option<usize>,
    work: W,
    sink: S,
) -> Result<Vec<Done<R>>>
where
    R: Send,
    W: Fn(&Path) -> Result<R> + Sync,
    S: Fn(&Done<R>) + Sync,
{
    let one_at_a_time = Mutex::new(());
    let each = |(index, image): (usize, &PathBuf)| {
        let done = Done {
            index,
            image: image.clone(),
            result: work(image),
        };
        let _turn = one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        sink(&done);
        done
    };
    execute::map_items(images, jobs, each)
}

/// Inspects every image, read-only.
pub fn inspect(
    images: &[PathBuf],
    jobs: Option<usize>,
    sink: impl Fn(&Done<ImageReport>) + Sync,
) -> Result<Vec<Done<ImageReport>>> {
    run(images, jobs, rehost_windows::inspect, sink)
}

/// Checks every image against `targets`, read-only; a finding is fixable when a fix with
/// `opts` repairs it.
pub fn check(
    images: &[PathBuf],
    targets: &[Target],
    opts: &FixOptions,
    jobs: Option<usize>,
    sink: impl Fn(&Done<CheckReport>) + Sync,
) -> Result<Vec<Done<CheckReport>>> {
    run(
        images,
        jobs,
        |p| rehost_rules::check_with(p, targets, opts),
        sink,
    )
}

/// What a fleet fix does to each image.
pub struct FixJob<'a> {
    /// The target machine.
    pub target: &'a Target,
    /// Dry run, in place, or into a new image (one image only).
    pub mode: Mode,
    /// Which rules, the driver folder, the options of the fixes.
    pub options: FixOptions,
    /// Write even when the staged image would still not boot.
    pub force: bool,
}

/// Fixes every image for one target.
pub fn fix(
    images: &[PathBuf],
    job: &FixJob,
    jobs: Option<usize>,
    sink: impl Fn(&Done<FixReport>) + Sync,
) -> Result<Vec<Done<FixReport>>> {
    if matches!(job.mode, Mode::Output(_)) && images.len() > 1 {
        return Err(Ctx::new("fleet", Layer::Fleet).invalid(
            "--output writes one new image: give one image, or use --in-place or --dry-run",
        ));
    }
    run(
        images,
        jobs,
        |p| rehost_rules::fix::run::fix(p, job.target, job.mode.clone(), &job.options, job.force),
        sink,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rehost_core::error::ErrorKind;

    #[test]
    fn results_keep_their_order_and_failures_stay_typed() {
        let images: Vec<PathBuf> = (0..40).map(|n| PathBuf::from(format!("{n}"))).collect();
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let done = run(
            &images,
            Some(3),
            |p| {
                let n: usize = p.to_str().unwrap().parse().unwrap();
                if n % 7 == 3 {
                    Err(Ctx::new(p.display().to_string(), Layer::Raw).invalid("odd one"))
                } else {
                    Ok(n * 2)
                }
            },
            |_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
        )
        .unwrap();
        assert_eq!(seen.into_inner(), 40);
        for (n, d) in done.iter().enumerate() {
            assert_eq!(d.index, n);
            match &d.result {
                Ok(v) => assert_eq!(*v, n * 2),
                Err(e) => {
                    assert_eq!(n % 7, 3);
                    assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{e:?}");
                    assert_eq!(d.failure().unwrap().image, format!("{n}"));
                }
            }
        }
        let s = Summary::of(&done, |v| *v >= 40);
        assert_eq!((s.images, s.failed), (40, 6));
        assert_eq!(s.passed, (20..40).filter(|n| n % 7 != 3).count());
    }
}
