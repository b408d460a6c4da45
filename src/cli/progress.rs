//! The progress of a fleet run on a terminal: a bar of the images done (and failed), the
//! rate and the time left, and a line per worker naming the image it is on. Drawn on
//! stderr only when stderr is a terminal and `--quiet` was not given; stdout (text or JSON
//! lines) is never drawn on.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rehost_fleet::execute::Observer;
use rehost_fleet::input::Item;
use rehost_fleet::Done;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bars, when they are drawn.
struct Bars {
    all: MultiProgress,
    main: ProgressBar,
    workers: Vec<ProgressBar>,
}

/// A fleet's progress, and what to do with each finished image.
pub struct Progress<'a, R> {
    bars: Option<Bars>,
    failed: AtomicUsize,
    sink: &'a (dyn Fn(&Done<R>) + Sync),
}

impl<'a, R> Progress<'a, R> {
    /// Progress over `total` images on `workers` threads; drawn when `draw`, and then only
    /// on a terminal. `sink` sees each finished image (its output is kept clear of the
    /// bars).
    pub fn new(
        total: usize,
        workers: usize,
        draw: bool,
        sink: &'a (dyn Fn(&Done<R>) + Sync),
    ) -> Self {
        let bars = (draw && std::io::stderr().is_terminal()).then(|| {
            let all = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let main = all.add(ProgressBar::new(total as u64));
            main.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} images, {msg} failed, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            main.set_message("0");
            let workers = (0..workers)
                .map(|_| {
                    let w = all.add(ProgressBar::new_spinner());
                    w.set_style(
                        ProgressStyle::with_template("  {prefix} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    w
                })
                .collect();
            Bars { all, main, workers }
        });
        Progress {
            bars,
            failed: AtomicUsize::new(0),
            sink,
        }
    }

    /// Clears the bars.
    pub fn done(&self) {
        if let Some(b) = &self.bars {
            for w in &b.workers {
                w.finish_and_clear();
            }
            b.main.finish_and_clear();
            let _ = b.all.clear();
        }
    }
}

impl<R> Observer<R> for Progress<'_, R> {
    fn started(&self, worker: usize, item: &Item) {
        if let Some(w) = self.bars.as_ref().and_then(|b| b.workers.get(worker)) {
            w.set_prefix(format!("worker {}:", worker + 1));
            w.set_message(item.image().display().to_string());
        }
    }

    fn finished(&self, done: &Done<R>) {
        let failed = if done.result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.failed.load(Ordering::Relaxed)
        };
        match &self.bars {
            Some(b) => {
                b.all.suspend(|| (self.sink)(done));
                b.main.set_message(failed.to_string());
                b.main.inc(1);
            }
            None => (self.sink)(done),
        }
    }

    fn skipped(&self, _item: &Item) {
        if let Some(b) = &self.bars {
            b.main.inc(1);
        }
    }
}
