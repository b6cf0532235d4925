// SPDX-License-Identifier: MPL-2.0
//! Progress of a file job: the `m3ddmoutpaint-progress` element message
//! (frames done and total, percent, windows done, estimated time left), due
//! at least once a second while frames are generated and once at the end. Only
//! streams whose length is known (a non-live upstream that answers the
//! duration query) get one.

use std::time::{Duration, Instant};

/// How often a message is due at least.
const PERIOD: Duration = Duration::from_secs(1);

/// The name of the element message.
pub const MESSAGE_NAME: &str = "m3ddmoutpaint-progress";

/// When the next progress message is due, and what it says.
#[derive(Debug, Default)]
pub struct Progress {
    /// Frames in the stream, when known.
    pub total: Option<u64>,
    started: Option<Instant>,
    last: Option<Instant>,
    finished: bool,
}

impl Progress {
    /// A stream of `total` frames (none: no messages).
    pub fn new(total: Option<u64>) -> Progress {
        Progress {
            total: total.filter(|&t| t > 0),
            ..Progress::default()
        }
    }

    /// The period to wait before the next message is due, while a stream of known length runs.
    pub fn period(&self) -> Option<Duration> {
        (self.total.is_some() && !self.finished).then_some(PERIOD)
    }

    /// The message due now with `done` frames out and `windows` windows run,
    /// if one is due (a second since the last one, or the last frame).
    pub fn due(&mut self, done: u64, windows: u64, now: Instant) -> Option<gst::Structure> {
        let total = self.total?;
        if self.finished {
            return None;
        }
        let started = *self.started.get_or_insert(now);
        let last_frame = done >= total;
        if !last_frame && self.last.is_some_and(|last| now - last < PERIOD) {
            return None;
        }
        self.last = Some(now);
        self.finished = last_frame;
        let done = done.min(total);
        let elapsed = now - started;
        let left = if done == 0 {
            None
        } else {
            Some(elapsed.mul_f64((total - done) as f64 / done as f64))
        };
        Some(
            gst::Structure::builder(MESSAGE_NAME)
                .field("frames-done", done)
                .field("frames-total", total)
                .field("percent", 100.0 * done as f64 / total as f64)
                .field("windows-done", windows)
                .field("time-left", left.map_or(u64::MAX, |d| d.as_nanos() as u64))
                .build(),
        )
    }
}

impl Progress {
    /// The closing message at the end of the stream, when none said 100 % yet
    /// (a duration rounds to one frame more than the video when it counts an
    /// audio track's priming): the frames done are the whole.
    pub fn finish(&mut self, done: u64, windows: u64, now: Instant) -> Option<gst::Structure> {
        if self.total.is_none() || self.finished || done == 0 {
            return None;
        }
        self.total = Some(done);
        self.due(done, windows, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_each_second_and_at_the_end() {
        gst::init().unwrap();
        let t0 = Instant::now();
        let mut progress = Progress::new(Some(10));
        let first = progress.due(0, 0, t0).expect("the first one");
        assert_eq!(first.get::<f64>("percent").unwrap(), 0.0);
        assert!(
            progress
                .due(1, 0, t0 + Duration::from_millis(500))
                .is_none()
        );
        let second = progress.due(5, 2, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(second.get::<f64>("percent").unwrap(), 50.0);
        // Two seconds for half: two more seconds left.
        assert_eq!(second.get::<u64>("time-left").unwrap(), 2_000_000_000);
        let last = progress
            .due(10, 4, t0 + Duration::from_millis(2100))
            .unwrap();
        assert_eq!(last.get::<f64>("percent").unwrap(), 100.0);
        assert!(progress.due(10, 4, t0 + Duration::from_secs(9)).is_none());
        assert!(Progress::new(None).due(1, 0, t0).is_none());
    }

    #[test]
    fn the_end_of_the_stream_says_100_percent_once() {
        gst::init().unwrap();
        let t0 = Instant::now();
        // A duration that counted one frame too many.
        let mut progress = Progress::new(Some(61));
        progress.due(0, 0, t0).unwrap();
        let last = progress.finish(60, 5, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(last.get::<u64>("frames-total").unwrap(), 60);
        assert_eq!(last.get::<f64>("percent").unwrap(), 100.0);
        assert!(
            progress
                .finish(60, 5, t0 + Duration::from_secs(4))
                .is_none()
        );
    }
}
