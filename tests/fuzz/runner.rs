// SPDX-License-Identifier: MPL-2.0
//! Runs one script on a `gst_check::Harness` around the element, as a
//! well-behaved upstream (STREAM_START, CAPS, SEGMENT before data; a new
//! segment after a flush), an application (flushes, seeks, properties, state
//! changes) and a downstream (the harness's sink, buffers recorded by a probe
//! on the element's source pad) would drive it. Every step runs on a worker
//! thread with a deadline; its outcome (flow return, accepted event, error
//! messages on the bus, panics) is compared with the model's, and what left
//! the element is checked by the model's `OutputChecker` as it leaves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::common::{FRAME_NS, init, released, tiny_model};
use super::model::{Logged, OutputChecker, Sent, SettingsModel};
use super::script::{CapsSpec, Mode, PropChange, Script, StateTrip, Step, TINY_MODEL};
use super::workers::{Reply, Worker, bus_errors, take_panics};

mod upstream;

type Flow = Result<gst::FlowSuccess, gst::FlowError>;

/// Frames larger than this are pushed twice at most per caps (memory and time).
const BIG_FRAME_BYTES: u64 = 8 << 20;
const BIG_FRAMES_PER_CAPS: u32 = 2;

/// How long one step may take before the case fails as stuck.
pub fn step_deadline(mode: Mode) -> Duration {
    let default = match mode {
        Mode::Blur => 60,
        Mode::Outpaint => 300,
    };
    let seconds = std::env::var("M3DDM_FUZZ_STEP_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(seconds)
}

/// A frame pushed, with what the model says its push must return.
struct PushRecord {
    id: u64,
    input: gst::Buffer,
    info: Arc<gst_video::VideoInfo>,
    expect: Flow,
    /// Pushed without waiting: a flush or stop that follows may meet it (then FLUSHING).
    detached: bool,
}

/// What one case ran and saw.
pub struct Outcome {
    pub frames_out: u64,
}

struct Case {
    deadline: Duration,
    harness: Option<gst_check::Harness>,
    element: gst::Element,
    sinkpad: gst::Pad,
    bus: gst::Bus,
    log: Arc<Mutex<Vec<Logged>>>,
    checker: OutputChecker,
    upstream: Worker,
    control: Worker,
    in_flight: Option<(Reply<Flow>, PushRecord)>,
    /// The properties as set now, and as they were when the current run started.
    settings: SettingsModel,
    run: Option<SettingsModel>,
    /// The caps upstream streams in (the last ones the element took).
    upstream_caps: Option<CapsSpec>,
    /// The caps the element took in this run, with their frames' info.
    caps: Option<(CapsSpec, Arc<gst_video::VideoInfo>)>,
    frames_under_caps: u32,
    flushing: bool,
    eos: bool,
    segment_due: bool,
    next_pts: u64,
    next_id: u64,
    next_marker: u64,
    streams: u32,
    /// Error messages the steps since the last check must have posted, at least and at most.
    errors_due: (usize, usize),
    /// Words the error messages due must contain.
    error_words: Vec<String>,
    /// The step running, for messages.
    step: String,
}

/// Runs `script` in `mode`; an error says which step went wrong and how.
pub fn run_case(mode: Mode, script: &Script) -> Result<Outcome, String> {
    init();
    // A crash (an abort, a fatal GLib warning) ends the process: the script is left here.
    let current = concat!(env!("CARGO_TARGET_TMPDIR"), "/fuzz-current-case.txt");
    let _ = std::fs::write(current, format!("{mode:?}\n{script:#?}\n"));
    super::workers::record_panics();
    take_panics();
    let mut case = Case::new(mode, script);
    let result = case.run(script);
    let result = result.and_then(|()| case.finish());
    match result {
        Ok(()) => {
            let frames_out = case.checker.frames_out;
            case.teardown()?;
            Ok(Outcome { frames_out })
        }
        Err(err) => {
            let err = format!("at {}: {err}", case.step);
            case.abandon();
            Err(err)
        }
    }
}

fn property_value(change: PropChange) -> String {
    if change.value == TINY_MODEL {
        tiny_model().display().to_string()
    } else {
        change.value.to_owned()
    }
}

fn flow_name(flow: &Flow) -> String {
    match flow {
        Ok(_) => "OK".into(),
        Err(err) => format!("{err:?}"),
    }
}

impl Case {
    fn new(mode: Mode, script: &Script) -> Case {
        // The harness sets the element PLAYING at once (and aborts if it
        // cannot): it starts in blur mode, then stops to take the script's properties.
        let element = gst::ElementFactory::make("m3ddmoutpaint")
            .property_from_str("fill-mode", "blur")
            .build()
            .unwrap();
        let mut harness = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
        harness.set_drop_buffers(true);
        element.set_state(gst::State::Null).unwrap();
        let mut settings = SettingsModel::new();
        for change in super::script::base_properties(mode)
            .iter()
            .chain(&script.properties)
        {
            element.set_property_from_str(change.name, &property_value(*change));
            settings.set(*change);
        }
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        let log = Arc::new(Mutex::new(Vec::new()));
        let probe_log = log.clone();
        element.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::DATA_DOWNSTREAM,
            move |_, info| {
                let entry = match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => Logged::Buffer(buffer.clone()),
                    Some(gst::PadProbeData::Event(event)) => Logged::Event(event.clone()),
                    _ => return gst::PadProbeReturn::Ok,
                };
                probe_log.lock().unwrap().push(entry);
                gst::PadProbeReturn::Ok
            },
        );
        Case {
            deadline: step_deadline(mode),
            harness: Some(harness),
            sinkpad: element.static_pad("sink").unwrap(),
            element,
            bus,
            log,
            checker: OutputChecker::default(),
            upstream: Worker::spawn("fuzz-upstream"),
            control: Worker::spawn("fuzz-application"),
            in_flight: None,
            settings,
            run: None,
            upstream_caps: script.caps,
            caps: None,
            frames_under_caps: 0,
            flushing: false,
            eos: false,
            segment_due: true,
            next_pts: 0,
            next_id: 0,
            next_marker: 0,
            streams: 0,
            errors_due: (0, 0),
            error_words: Vec::new(),
            step: "the start".into(),
        }
    }

    fn run(&mut self, script: &Script) -> Result<(), String> {
        self.start()?;
        self.after_step()?;
        for (index, step) in script.steps.iter().enumerate() {
            self.step = format!("step {index} ({step:?})");
            self.do_step(*step)?;
            self.after_step()?;
        }
        self.step = "the end of the script".into();
        Ok(())
    }

    fn do_step(&mut self, step: Step) -> Result<(), String> {
        match step {
            Step::Push { count, pts, detach } => {
                for i in 0..count {
                    self.push(pts, detach && i + 1 == count)?;
                }
                Ok(())
            }
            Step::Gap => self.gap(),
            Step::Marker => self.marker(),
            Step::Caps(spec) => self.send_caps(spec),
            Step::Segment => {
                self.wait_idle()?;
                self.segment_due = true;
                self.send_segment(false)
            }
            Step::StreamStart => self.stream_start(),
            Step::FlushStart => self.flush_start(),
            Step::FlushStop => self.flush_stop(),
            Step::Seek { to } => {
                self.flush_start()?;
                self.next_pts = to as u64 * FRAME_NS;
                self.flush_stop()
            }
            Step::Eos => self.eos(),
            Step::Drain => self.drain(),
            Step::ReadStats => self.read_stats(),
            Step::Property(change) => self.set_property(change),
            Step::State(trip) => self.state(trip),
        }
    }

    /// Whether upstream's data reaches the element's own code.
    fn ready(&self) -> bool {
        self.run.is_some() && !self.flushing && !self.eos
    }

    fn expect_errors(&mut self, min: usize, max: usize, word: Option<String>) {
        self.errors_due.0 += min;
        self.errors_due.1 += max;
        self.error_words.extend(word);
    }

    /// Checks what left, the error messages and panics since the last check
    /// (once no push is in flight, so that every outcome is known).
    fn after_step(&mut self) -> Result<(), String> {
        let panics = take_panics();
        if !panics.is_empty() {
            return Err(format!("PANIC: {}", panics.join("; ")));
        }
        if self.in_flight.is_some() {
            return Ok(());
        }
        self.take_log()?;
        let errors = bus_errors(&self.bus);
        let (min, max) = std::mem::take(&mut self.errors_due);
        let words = std::mem::take(&mut self.error_words);
        if errors.len() < min || errors.len() > max {
            return Err(format!(
                "{} error message(s) where {min} to {max} were due: {errors:?}",
                errors.len()
            ));
        }
        let text = errors.join(" ").to_lowercase();
        if let Some(word) = words.iter().find(|w| !text.contains(&w.to_lowercase())) {
            return Err(format!("no error message names `{word}`: {errors:?}"));
        }
        Ok(())
    }

    fn take_log(&mut self) -> Result<(), String> {
        let logged = std::mem::take(&mut *self.log.lock().unwrap());
        self.checker.take(logged)
    }

    /// A flush or stop is complete: nothing from before it may leave any more.
    fn boundary(&mut self) {
        self.log.lock().unwrap().push(Logged::Boundary);
        self.checker.send(Sent::Boundary);
    }

    /// Waits for the push in flight and records its outcome.
    fn wait_idle(&mut self) -> Result<(), String> {
        if let Some((reply, record)) = self.in_flight.take() {
            let flow = reply.wait(self.deadline)?;
            self.record_push(record, flow)?;
        }
        Ok(())
    }

    fn record_push(&mut self, record: PushRecord, flow: Flow) -> Result<(), String> {
        let definite = match (record.expect, flow) {
            (Ok(_), Ok(_)) => true,
            // Refused as the model says: it never entered the element.
            (expect, flow) if expect == flow => return Ok(()),
            (Ok(_), Err(gst::FlowError::Flushing)) if record.detached => false,
            (expect, flow) => {
                return Err(format!(
                    "the push of frame {} returned {} where {} was due",
                    record.id,
                    flow_name(&flow),
                    flow_name(&expect)
                ));
            }
        };
        self.checker.send(Sent::Frame {
            id: record.id,
            input: record.input,
            info: record.info,
            definite,
        });
        Ok(())
    }

    fn upstream_event(&self, event: gst::Event) -> Result<bool, String> {
        let pad = self.sinkpad.clone();
        let what = format!("sending {:?} upstream of the element", event.type_());
        self.upstream
            .call(self.deadline, what, move || pad.send_event(event))
    }

    fn application_event(&self, event: gst::Event) -> Result<bool, String> {
        let pad = self.sinkpad.clone();
        let what = format!("sending {:?} from the application", event.type_());
        self.control
            .call(self.deadline, what, move || pad.send_event(event))
    }

    fn read_stats(&mut self) -> Result<(), String> {
        let element = self.element.clone();
        let stats = self.control.call(self.deadline, "reading stats", move || {
            element.property::<gst::Structure>("stats")
        })?;
        let frames_in = stats.get::<u64>("frames-in").map_err(|e| e.to_string())?;
        let frames_out = stats.get::<u64>("frames-out").map_err(|e| e.to_string())?;
        if frames_out > frames_in {
            return Err(format!("stats count more frames out than in: {stats}"));
        }
        Ok(())
    }

    fn set_property(&mut self, change: PropChange) -> Result<(), String> {
        let element = self.element.clone();
        let value = property_value(change);
        self.control.call(
            self.deadline,
            format!("setting {} to {value}", change.name),
            move || element.set_property_from_str(change.name, &value),
        )?;
        self.settings.set(change);
        Ok(())
    }

    fn set_state(&self, state: gst::State) -> Result<bool, String> {
        let element = self.element.clone();
        let result = self.control.call(
            self.deadline,
            format!("the state change to {state:?}"),
            move || element.set_state(state),
        )?;
        Ok(result.is_ok())
    }

    fn state(&mut self, trip: StateTrip) -> Result<(), String> {
        let down = match trip {
            StateTrip::Pause | StateTrip::Play if self.run.is_some() => {
                let target = if trip == StateTrip::Pause {
                    gst::State::Paused
                } else {
                    gst::State::Playing
                };
                if !self.set_state(target)? {
                    return Err(format!("the element failed to go to {target:?}"));
                }
                return Ok(());
            }
            StateTrip::ViaNull => gst::State::Null,
            _ => gst::State::Ready,
        };
        if self.run.is_some() {
            if !self.set_state(down)? {
                return Err(format!("the element failed to go to {down:?}"));
            }
            self.wait_idle()?;
            // Downstream goes through the same state change: its pad stops flushing.
            let downstream = self.harness.as_ref().and_then(|h| h.sinkpad());
            if let Some(pad) = downstream {
                pad.set_active(false).map_err(|e| e.to_string())?;
                pad.set_active(true).map_err(|e| e.to_string())?;
            }
            self.run = None;
            self.caps = None;
            self.flushing = false;
            self.eos = false;
            self.boundary();
        }
        self.start()
    }

    /// To PLAYING (from NULL or READY), then the stream from its start.
    fn start(&mut self) -> Result<(), String> {
        let refusal = self.settings.start_error();
        let started = self.set_state(gst::State::Playing)?;
        match (started, refusal) {
            (true, None) => {}
            (false, Some(why)) => {
                self.expect_errors(1, 2, Some(why.split(' ').next().unwrap().to_owned()));
                return Ok(());
            }
            (true, Some(why)) => {
                return Err(format!("the element started although {why} is invalid"));
            }
            (false, None) => {
                return Err(format!(
                    "the element failed to start: {:?}",
                    bus_errors(&self.bus)
                ));
            }
        }
        self.run = Some(self.settings.clone());
        self.frames_under_caps = 0;
        self.segment_due = true;
        self.streams += 1;
        let start = gst::event::StreamStart::new(&format!("fuzz-stream-{}", self.streams));
        if !self.upstream_event(start)? {
            return Err("the element refused the first STREAM_START".into());
        }
        if let Some(spec) = self.upstream_caps {
            self.send_caps(spec)?;
        }
        self.send_segment(false)
    }

    /// Ends the stream with EOS and checks that everything due left.
    fn finish(&mut self) -> Result<(), String> {
        self.wait_idle()?;
        if self.run.is_some() {
            if self.flushing {
                self.flush_stop()?;
            }
            if !self.eos {
                self.send_segment(false)?;
                self.eos()?;
            }
            let deadline = Instant::now() + self.deadline;
            while !self.checker.all_left() {
                self.take_log()?;
                if Instant::now() > deadline {
                    self.checker.check_complete()?;
                    return Err(format!(
                        "STUCK: EOS did not leave within {:?}",
                        self.deadline
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            self.checker.check_complete()?;
            let element = self.element.clone();
            let stats = self.control.call(self.deadline, "reading stats", move || {
                element.property::<gst::Structure>("stats")
            })?;
            if stats.get::<u64>("frames-queued") != Ok(0) {
                return Err(format!("frames still queued after EOS: {stats}"));
            }
            // No script sets max-latency or sends QoS: no frame may leave degraded.
            if stats.get::<u64>("frames-degraded") != Ok(0) {
                return Err(format!(
                    "frames left with the blur fill, none late: {stats}"
                ));
            }
        }
        self.after_step()
    }

    /// Stops the element and checks that it lets go of everything.
    fn teardown(mut self) -> Result<(), String> {
        self.step = "the teardown".into();
        if !self.set_state(gst::State::Null)? {
            return Err("the element failed to go to NULL".into());
        }
        let weak = self.element.downgrade();
        // Messages on the bus hold their source.
        self.bus.set_flushing(true);
        drop(self);
        if !released(&weak) {
            return Err("the element outlived its harness (a reference leaked)".into());
        }
        Ok(())
    }

    /// After a failure: stops the element if it still can, else leaks it
    /// (dropping a stuck element would hang the test).
    fn abandon(mut self) {
        let element = self.element.clone();
        let stopped = self.control.call(
            Duration::from_secs(10),
            "the state change to NULL",
            move || element.set_state(gst::State::Null),
        );
        if stopped.is_err() {
            std::mem::forget(self.harness.take());
            std::mem::forget(self);
        }
    }
}
