//! The ledger's one writer: a thread that owns the connection and records the outcomes
//! sent to it, in the order they arrive. The workers of a fleet only send.

use crate::{Ledger, Outcome};
use rehost_core::error::Result;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The sending end, for the threads that finish images.
pub type Sender = mpsc::Sender<Outcome>;

/// The writer thread of one run.
pub struct Writer {
    tx: Option<Sender>,
    thread: JoinHandle<Result<Ledger>>,
}

impl Writer {
    /// Starts the thread that records each outcome sent into `run` of `ledger`.
    pub fn spawn(mut ledger: Ledger, run: i64) -> Writer {
        let (tx, rx) = mpsc::channel::<Outcome>();
        let thread = std::thread::spawn(move || {
            let mut first_error = None;
            for o in rx {
                if let Err(e) = ledger.record(run, &o) {
                    first_error.get_or_insert(e);
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(ledger),
            }
        });
        Writer {
            tx: Some(tx),
            thread,
        }
    }

    /// A sender for the finishing threads.
    pub fn sender(&self) -> Sender {
        self.tx.clone().expect("the writer is running")
    }

    /// Waits for every outcome sent to be recorded, and marks the run finished.
    pub fn finish(mut self, run: i64) -> Result<()> {
        drop(self.tx.take());
        let ledger = self
            .thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        ledger.end_run(run)
    }
}
