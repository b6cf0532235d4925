// SPDX-License-Identifier: MPL-2.0
//! Ctrl-C (SIGINT) and SIGTERM. The first one, while outputs are being
//! written, asks the bus loop to end the run cleanly (`bus.rs` ends every
//! output's stream where it is, so that each file is finished with the frames
//! done so far); a second one, or the first one before any output frame can be
//! kept, stops the program at once in the signal handler itself and removes
//! the files being written. Files are registered here while they are partial:
//! the handler unlinks them with `unlink(2)` and leaves with `_exit(2)`, both
//! async-signal-safe, so the stop works whatever the other threads are doing
//! (an inference call, a pipeline going to NULL).

use std::ffi::CString;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// The exit status of an interrupted run (128 + SIGINT, as shells report it).
pub const INTERRUPTED_STATUS: u8 = 130;
/// The most files registered at once: the outputs (8 at most) and the plan.
const SLOTS: usize = 16;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
/// Whether a first signal may end the run cleanly (outputs are being written).
static CAN_FINISH: AtomicBool = AtomicBool::new(false);
/// The partial files, as leaked C strings (null: a free slot).
static PARTIAL: [AtomicPtr<libc::c_char>; SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];

const STOP_MESSAGE: &[u8] =
    b"\nm3ddm-reframe: interrupted: stopped at once, the files being written are removed\n";

/// Installs the handlers of SIGINT and SIGTERM.
pub fn install() -> Result<(), String> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // SAFETY: the handler only uses atomics, unlink(2), write(2) and _exit(2),
        // which are async-signal-safe.
        unsafe { signal_hook::low_level::register(signal, on_signal) }
            .map_err(|err| format!("cannot handle Ctrl-C: {err}"))?;
    }
    Ok(())
}

fn on_signal() {
    let count = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
    if count >= 2 || !CAN_FINISH.load(Ordering::SeqCst) {
        stop_now();
    }
}

/// Removes the partial files and leaves (in the signal handler).
fn stop_now() -> ! {
    for slot in &PARTIAL {
        let path = slot.load(Ordering::SeqCst);
        if !path.is_null() {
            // SAFETY: a registered path is a leaked, NUL-terminated C string.
            unsafe { libc::unlink(path) };
        }
    }
    // SAFETY: write(2) of a static buffer and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, STOP_MESSAGE.as_ptr().cast(), STOP_MESSAGE.len());
        libc::_exit(i32::from(INTERRUPTED_STATUS));
    }
}

/// Whether a first signal came (and the run is to end cleanly).
pub fn requested() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}

/// From now on a first signal ends the run cleanly instead of stopping it.
pub fn allow_finishing() {
    CAN_FINISH.store(true, Ordering::SeqCst);
}

/// A file removed when the program is stopped at once, until it is complete.
pub struct Partial {
    slot: Option<usize>,
}

impl Partial {
    pub fn register(path: &Path) -> Partial {
        let Ok(text) = CString::new(path.as_os_str().as_encoded_bytes()) else {
            return Partial { slot: None };
        };
        let text = text.into_raw();
        let slot = PARTIAL.iter().position(|slot| {
            slot.compare_exchange(ptr::null_mut(), text, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if slot.is_none() {
            // SAFETY: `text` came from `into_raw` and was not stored.
            drop(unsafe { CString::from_raw(text) });
        }
        Partial { slot }
    }
}

impl Drop for Partial {
    /// The file is complete (or removed by its owner): no longer removed on a stop.
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            // The string stays leaked: a handler running now may still read it.
            PARTIAL[slot].store(ptr::null_mut(), Ordering::SeqCst);
        }
    }
}
