// SPDX-License-Identifier: MPL-2.0
//! A stream's stop request. It is checked before every model call, and it
//! ends the calls in flight (an ONNX Runtime run, a request to an inference
//! server) through the [`Interrupt`] each backend registers for the length of
//! a call, so that a flush or a state change never waits for a call to end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::{EngineError, Result};

/// Something that makes a call in flight return early (with an error the
/// backend reports as [`EngineError::Cancelled`]).
pub trait Interrupt: Send + Sync {
    fn interrupt(&self);
}

/// The stop request of one stream, shared by the threads that work for it.
#[derive(Default)]
pub struct Cancel {
    requested: AtomicBool,
    in_flight: Mutex<Vec<(u64, Arc<dyn Interrupt>)>>,
    next_id: AtomicU64,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every thread of the stream to stop and interrupts the calls in flight.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        for (_, call) in self.calls().iter() {
            call.interrupt();
        }
    }

    /// Withdraws the request (a new stream starts).
    pub fn clear(&self) {
        self.requested.store(false, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once a stop was requested.
    pub fn check(&self) -> Result<()> {
        if self.is_requested() {
            Err(EngineError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Registers a call about to start; the call is interrupted by a
    /// [`Cancel::request`] until the returned guard drops. `Err(Cancelled)`
    /// when the stop came first.
    pub fn track(&self, call: Arc<dyn Interrupt>) -> Result<InFlight<'_>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.calls().push((id, call));
        let guard = InFlight { cancel: self, id };
        // After registering: a request either sees this call or is seen here.
        self.check()?;
        Ok(guard)
    }

    fn calls(&self) -> MutexGuard<'_, Vec<(u64, Arc<dyn Interrupt>)>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A registered call; unregistered on drop.
pub struct InFlight<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.cancel.calls().retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Counter(AtomicUsize);
    impl Interrupt for Counter {
        fn interrupt(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_request_interrupts_the_calls_in_flight_only() {
        let cancel = Cancel::new();
        let running = Arc::new(Counter::default());
        let finished = Arc::new(Counter::default());
        drop(cancel.track(finished.clone()).unwrap());
        let _guard = cancel.track(running.clone()).unwrap();
        assert_eq!(cancel.check(), Ok(()));
        cancel.request();
        assert_eq!(running.0.load(Ordering::SeqCst), 1);
        assert_eq!(finished.0.load(Ordering::SeqCst), 0);
        assert_eq!(cancel.check(), Err(EngineError::Cancelled));
    }

    #[test]
    fn a_call_after_the_request_does_not_start_and_clear_withdraws_it() {
        let cancel = Cancel::new();
        cancel.request();
        let call = Arc::new(Counter::default());
        assert!(matches!(
            cancel.track(call.clone()),
            Err(EngineError::Cancelled)
        ));
        assert!(cancel.calls().is_empty(), "a refused call stays registered");
        cancel.clear();
        assert!(cancel.track(call).is_ok());
    }
}
