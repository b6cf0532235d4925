// SPDX-License-Identifier: MPL-2.0
//! What a run tells the user while it works: frames in and out of the element,
//! read from its `stats` property, printed when they change (at most every few
//! seconds) and otherwise now and then. (Once the element posts
//! `m3ddmoutpaint-progress` messages, a progress bar fed by them replaces this.)

use std::time::{Duration, Instant};

use gst::prelude::*;

/// The shortest time between two lines.
const INTERVAL: Duration = Duration::from_secs(5);
/// The longest time without a line while nothing changes (a chunk is running).
const QUIET: Duration = Duration::from_secs(30);

pub struct Progress {
    started: Instant,
    last_line: Instant,
    last_counts: (u64, u64),
}

impl Progress {
    pub fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            last_line: now,
            last_counts: (0, 0),
        }
    }

    /// Prints a line when the counts changed, or when nothing was printed for a while.
    pub fn tick(&mut self, outpaint: &gst::Element) {
        let since = self.last_line.elapsed();
        let counts = counts(outpaint);
        if since >= QUIET || (since >= INTERVAL && counts != self.last_counts) {
            self.print(counts);
        }
    }

    /// Prints the last line.
    pub fn finish(&mut self, outpaint: &gst::Element) {
        self.print(counts(outpaint));
    }

    fn print(&mut self, (frames_in, frames_out): (u64, u64)) {
        self.last_line = Instant::now();
        self.last_counts = (frames_in, frames_out);
        eprintln!(
            "{:>6.1} s: {frames_in} frames in, {frames_out} out",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Frames in and out of the element so far.
fn counts(outpaint: &gst::Element) -> (u64, u64) {
    let stats = outpaint.property::<gst::Structure>("stats");
    let count = |field: &str| stats.get::<u64>(field).unwrap_or(0);
    (count("frames-in"), count("frames-out"))
}
