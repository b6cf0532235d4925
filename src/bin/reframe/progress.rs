// SPDX-License-Identifier: MPL-2.0
//! What a run tells the user while it works. The element posts
//! `m3ddmoutpaint-progress` messages (frames done and total, windows done, time
//! left) for a stream of known length: they feed an `indicatif` progress bar
//! on a terminal, and plain lines (one every few seconds, and the last one)
//! when stderr is not a terminal, so that logs stay readable. Until a message
//! comes (a stream of unknown length never gets one), lines of frames in and
//! out read from the element's `stats` are printed instead.

use std::time::{Duration, Instant};

use gst::prelude::*;
use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The shortest time between two lines.
const INTERVAL: Duration = Duration::from_secs(5);
/// The longest time without a line while nothing changes (a chunk is running).
const QUIET: Duration = Duration::from_secs(30);
/// The element message that reports progress.
const PROGRESS_MESSAGE: &str = "m3ddmoutpaint-progress";
const BAR_TEMPLATE: &str = "{elapsed:>4} [{wide_bar}] {pos}/{len} frames ({percent:>3}%) {msg:<30}";

/// One `m3ddmoutpaint-progress` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub frames_done: u64,
    pub frames_total: u64,
    pub percent: f64,
    pub windows_done: u64,
    /// The element's estimate; none before the first frame.
    pub time_left: Option<Duration>,
}

impl Report {
    /// Reads a progress message (`None` for other element messages).
    pub fn from_message(structure: &gst::StructureRef) -> Option<Report> {
        if structure.name() != PROGRESS_MESSAGE {
            return None;
        }
        let count = |field: &str| structure.get::<u64>(field).ok();
        Some(Report {
            frames_done: count("frames-done")?,
            frames_total: count("frames-total")?,
            percent: structure.get::<f64>("percent").ok()?,
            windows_done: count("windows-done").unwrap_or(0),
            time_left: count("time-left")
                .filter(|&ns| ns != u64::MAX)
                .map(Duration::from_nanos),
        })
    }

    fn finished(&self) -> bool {
        self.frames_done >= self.frames_total
    }

    /// What the bar shows beside the frames: "4 windows, 12 seconds left"
    /// (no windows with blur or color, which run none).
    fn details(&self) -> String {
        let windows = match self.windows_done {
            0 => None,
            1 => Some("1 window".to_string()),
            n => Some(format!("{n} windows")),
        };
        let left = match self.time_left {
            _ if self.finished() => None,
            Some(left) => Some(format!("{} left", HumanDuration(left))),
            None => Some("time left unknown".to_string()),
        };
        windows
            .into_iter()
            .chain(left)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A plain line: "30/60 frames (50.0 %), 4 windows, 12 seconds left".
    fn line(&self) -> String {
        let frames = format!(
            "{}/{} frames ({:.1} %)",
            self.frames_done, self.frames_total, self.percent
        );
        match self.details() {
            details if details.is_empty() => frames,
            details => format!("{frames}, {details}"),
        }
    }
}

pub struct Progress {
    started: Instant,
    last_line: Instant,
    /// The frames in and out of the last stats line.
    last_counts: (u64, u64),
    /// The last progress message, once one came.
    last_report: Option<Report>,
    /// The tenth of the way (0 to 10) of the last progress line printed.
    printed_tenth: Option<u64>,
    /// The bar, on a terminal (created at the first message).
    bar: Option<ProgressBar>,
    terminal: bool,
}

impl Progress {
    pub fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            last_line: now,
            last_counts: (0, 0),
            last_report: None,
            printed_tenth: None,
            bar: None,
            // indicatif draws nothing where stderr is not a terminal.
            terminal: !ProgressDrawTarget::stderr().is_hidden(),
        }
    }

    /// Shows a progress message.
    pub fn report(&mut self, report: &Report) {
        if self.terminal {
            let bar = self.bar.get_or_insert_with(|| {
                // Drawn from its first message on, not before.
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
                bar.set_style(
                    ProgressStyle::with_template(BAR_TEMPLATE)
                        .expect("the template is valid")
                        .progress_chars("=> "),
                );
                bar
            });
            bar.set_length(report.frames_total);
            bar.set_position(report.frames_done);
            bar.set_message(report.details());
            if bar.is_hidden() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
        } else {
            // A line at each tenth of the way, and every few seconds while frames come.
            let tenth = (report.percent / 10.0).floor() as u64;
            let changed =
                self.last_report.as_ref().map(|r| r.frames_done) != Some(report.frames_done);
            let due = self.printed_tenth.is_none_or(|printed| tenth > printed)
                || report.finished()
                || (changed && self.last_line.elapsed() >= INTERVAL);
            if due {
                self.printed_tenth = Some(tenth);
                self.print(&report.line());
            }
        }
        self.last_report = Some(report.clone());
    }

    /// Prints a stats line now and then, while no progress message has come.
    pub fn tick(&mut self, outpaint: &gst::Element) {
        if self.last_report.is_some() {
            return;
        }
        let since = self.last_line.elapsed();
        let [frames_in, frames_out] = counts(outpaint, ["frames-in", "frames-out"]);
        let counts = (frames_in, frames_out);
        if since >= QUIET || (since >= INTERVAL && counts != self.last_counts) {
            self.print_counts(counts);
        }
    }

    /// Shows the end of a run that succeeded. The element's frame total is an
    /// estimate from the duration (which may be the audio's, a frame longer):
    /// at the end, the frames that came out are the total.
    pub fn finish(&mut self, outpaint: &gst::Element) {
        let [frames_in, frames_out, windows] =
            counts(outpaint, ["frames-in", "frames-out", "windows-run"]);
        let Some(last) = &self.last_report else {
            self.print_counts((frames_in, frames_out));
            return;
        };
        let end = Report {
            frames_done: frames_out,
            frames_total: frames_out,
            percent: 100.0,
            windows_done: windows.max(last.windows_done),
            time_left: Some(Duration::ZERO),
        };
        // A last report (all frames done) was shown already.
        if *last != end {
            self.report(&end);
        }
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }

    /// Leaves the bar where it stopped, for the error that follows.
    pub fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    fn print_counts(&mut self, (frames_in, frames_out): (u64, u64)) {
        self.last_counts = (frames_in, frames_out);
        self.print(&format!("{frames_in} frames in, {frames_out} out"));
    }

    fn print(&mut self, text: &str) {
        self.last_line = Instant::now();
        eprintln!("{:>6.1} s: {text}", self.started.elapsed().as_secs_f64());
    }
}

/// Counters of the element's `stats`.
fn counts<const N: usize>(outpaint: &gst::Element, fields: [&str; N]) -> [u64; N] {
    let stats = outpaint.property::<gst::Structure>("stats");
    fields.map(|field| stats.get::<u64>(field).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(done: u64, time_left: u64) -> gst::Structure {
        gst::init().unwrap();
        gst::Structure::builder(PROGRESS_MESSAGE)
            .field("frames-done", done)
            .field("frames-total", 60u64)
            .field("percent", 100.0 * done as f64 / 60.0)
            .field("windows-done", 4u64)
            .field("time-left", time_left)
            .build()
    }

    #[test]
    fn progress_messages_become_lines() {
        let report = Report::from_message(&message(30, 12_000_000_000)).unwrap();
        assert_eq!(report.time_left, Some(Duration::from_secs(12)));
        assert_eq!(
            report.line(),
            "30/60 frames (50.0 %), 4 windows, 12 seconds left"
        );
        let unknown = Report::from_message(&message(0, u64::MAX)).unwrap();
        assert_eq!(
            unknown.line(),
            "0/60 frames (0.0 %), 4 windows, time left unknown"
        );
        let last = Report::from_message(&message(60, 0)).unwrap();
        assert_eq!(last.line(), "60/60 frames (100.0 %), 4 windows");
        let blur = Report {
            windows_done: 0,
            ..last
        };
        assert_eq!(blur.line(), "60/60 frames (100.0 %)");
    }

    #[test]
    fn other_messages_are_not_progress() {
        gst::init().unwrap();
        let cut = gst::Structure::builder("m3ddmoutpaint-scene-cut")
            .field("pts", 0u64)
            .build();
        assert_eq!(Report::from_message(&cut), None);
    }
}
