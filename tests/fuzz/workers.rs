// SPDX-License-Identifier: MPL-2.0
//! The threads a fuzz case drives the element from, so that no step can hang
//! the test: an upstream streaming thread (frames, serialized events, queries)
//! and an application thread (flushes, properties, state changes), each step
//! awaited with a deadline. Also the record of panics in any thread.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, Once};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs jobs in order; one that never returns leaks with its thread.
pub struct Worker {
    jobs: Sender<Job>,
}

/// The answer of a job, awaited later.
pub struct Reply<T> {
    what: String,
    answer: Receiver<T>,
}

impl Worker {
    pub fn spawn(name: &str) -> Worker {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .expect("a worker thread");
        Worker { jobs }
    }

    /// Starts `job` after the jobs queued before it; `what` names it in a timeout.
    pub fn start<T: Send + 'static>(
        &self,
        what: impl Into<String>,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Reply<T> {
        let (tx, answer) = mpsc::channel();
        let what = what.into();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(job());
            }))
            .expect("the worker thread runs");
        Reply { what, answer }
    }

    /// Runs `job` and waits for it at most `deadline`.
    pub fn call<T: Send + 'static>(
        &self,
        deadline: Duration,
        what: impl Into<String>,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        self.start(what, job).wait(deadline)
    }
}

impl<T> Reply<T> {
    pub fn wait(self, deadline: Duration) -> Result<T, String> {
        match self.answer.recv_timeout(deadline) {
            Ok(answer) => Ok(answer),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "STUCK: {} did not return within {deadline:?} (a deadlock or a stall)",
                self.what
            )),
            Err(RecvTimeoutError::Disconnected) => Err(format!("{} panicked", self.what)),
        }
    }
}

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every panic of any thread (the default hook still prints it).
pub fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed").to_owned();
            if let Ok(mut panics) = PANICS.lock() {
                panics.push(format!("thread {name}: {info}"));
            }
            default(info);
        }));
    });
}

/// The panics recorded since the last call.
pub fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The error messages on `bus` so far, as text.
pub fn bus_errors(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error]))
        .map(|msg| match msg.view() {
            gst::MessageView::Error(err) => {
                format!("{} ({:?})", err.error(), err.debug())
            }
            _ => unreachable!(),
        })
        .collect()
}
