// SPDX-License-Identifier: MPL-2.0
//! The model of what the element must do with a script: which settings it
//! must refuse to start with, which caps it must take or refuse, and what must
//! leave its source pad. Between two boundaries (a FLUSH_STOP, a stop at READY
//! or NULL) the frames and serialized events that upstream got through leave
//! exactly once and in order, each frame with its timestamps, offset and flags
//! and its source pixels bit-exact, or they are dropped by the boundary; an
//! EOS or a DRAIN leaves only after every one of them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::common::{locate_source, source_is_exact};
use super::script::{CapsSpec, PropChange, TINY_MODEL};

/// The name of the custom events that mark places in the stream.
pub const MARKER: &str = "fuzz-marker";
/// GAP events carry their identity in their timestamp, from here on.
pub const GAP_BASE_NS: u64 = 1 << 50;
/// The largest output side the element makes (16K).
const MAX_OUTPUT_SIDE: f64 = 16_384.0;

/// The property values the element holds, as the script set them.
#[derive(Debug, Clone)]
pub struct SettingsModel {
    values: BTreeMap<&'static str, &'static str>,
    /// `aspect` was set at least once (then `expand` must stay empty).
    aspect_set: bool,
}

/// The shape of the output: a display aspect ratio or margins (top, right, bottom, left).
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Aspect(f64),
    Expand([f64; 4]),
}

/// Whether the output of some caps fits within the element's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Fits,
    TooLarge,
    /// Too close to the limit to tell without the element's own rounding.
    Unsure,
}

fn parse_expand(text: &str) -> Option<[f64; 4]> {
    let inner = text.trim().trim_start_matches('<').trim_end_matches('>');
    let values: Option<Vec<f64>> = inner
        .split([',', ' '])
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<f64>().ok().filter(|f| (0.0..=10.0).contains(f)))
        .collect();
    match values?[..] {
        [all] => Some([all; 4]),
        [v, h] => Some([v, h, v, h]),
        [t, r, b, l] => Some([t, r, b, l]),
        _ => None,
    }
}

impl SettingsModel {
    /// The element's defaults.
    pub fn new() -> SettingsModel {
        let values = [
            ("fill-mode", "outpaint"),
            ("model-path", ""),
            ("execution-provider", "auto"),
            ("device-id", "0"),
            ("aspect", "9/16"),
            ("expand", ""),
        ];
        SettingsModel {
            values: values.into_iter().collect(),
            aspect_set: false,
        }
    }

    pub fn set(&mut self, change: PropChange) {
        if change.name == "aspect" {
            self.aspect_set = true;
        }
        self.values.insert(change.name, change.value);
    }

    fn get(&self, name: &str) -> &'static str {
        self.values.get(name).copied().unwrap_or("")
    }

    fn expand(&self) -> Option<&'static str> {
        Some(self.get("expand")).filter(|e| !e.trim().is_empty())
    }

    /// Why the element must refuse to start with these settings, if it must.
    pub fn start_error(&self) -> Option<&'static str> {
        let devices: Vec<&str> = self.get("device-id").split(',').collect();
        let device_ok = devices.iter().all(|d| d.trim().parse::<u8>().is_ok())
            && (1..devices.len()).all(|i| !devices[..i].contains(&devices[i]));
        if !device_ok {
            return Some("device-id");
        }
        if let Some(expand) = self.expand() {
            if self.aspect_set {
                return Some("aspect and expand");
            }
            if parse_expand(expand).is_none() {
                return Some("expand");
            }
        }
        if self.get("fill-mode") == "outpaint" && self.get("model-path") != TINY_MODEL {
            return Some("model-path");
        }
        None
    }

    /// The output shape of a run started with these settings.
    pub fn shape(&self) -> Shape {
        match self.expand().and_then(parse_expand) {
            Some(margins) => Shape::Expand(margins),
            None => {
                let (num, den) = self.get("aspect").split_once('/').expect("a fraction");
                Shape::Aspect(num.parse::<f64>().unwrap() / den.parse::<f64>().unwrap())
            }
        }
    }
}

/// Whether the output for `caps` in `shape` is within the element's 16K limit.
pub fn fit(shape: Shape, caps: &CapsSpec) -> Fit {
    let (w, h) = (caps.width as f64, caps.height as f64);
    let par = caps.par.0 as f64 / caps.par.1 as f64;
    let (out_w, out_h) = match shape {
        Shape::Aspect(aspect) => {
            let display_w = w * par;
            if display_w / h < aspect {
                (h * aspect / par, h)
            } else {
                (w, display_w / aspect)
            }
        }
        Shape::Expand([t, r, b, l]) => (w * (1.0 + l + r), h * (1.0 + t + b)),
    };
    let side = out_w.max(out_h);
    if side <= MAX_OUTPUT_SIDE * 0.98 {
        Fit::Fits
    } else if side >= MAX_OUTPUT_SIDE * 1.02 {
        Fit::TooLarge
    } else {
        Fit::Unsure
    }
}

/// What upstream got into the element, in order.
pub enum Sent {
    Frame {
        id: u64,
        input: gst::Buffer,
        info: Arc<gst_video::VideoInfo>,
        /// The push returned OK (else FLUSHING: it may have been dropped).
        definite: bool,
    },
    /// A custom event or a GAP, by its number.
    Marker(u64),
    Eos,
    /// A flush or a stop: everything before it that has not left is dropped.
    Boundary,
}

/// What left the element's source pad, in order (and the boundaries, placed
/// by the runner once nothing from before them can leave any more).
pub enum Logged {
    Buffer(gst::Buffer),
    Event(gst::Event),
    Boundary,
}

/// Compares what left the element with what was sent, as it leaves.
#[derive(Default)]
pub struct OutputChecker {
    sent: VecDeque<Sent>,
    /// The output caps of the frames that leave now.
    out_info: Option<gst_video::VideoInfo>,
    /// Where the source lay in the last frame checked, by its input and output caps.
    source_at: Option<(gst::Caps, gst::Caps, (u32, u32))>,
    pub frames_out: u64,
    pub eos_out: u64,
}

fn describe(sent: Option<&Sent>) -> String {
    match sent {
        Some(Sent::Frame { id, definite, .. }) => {
            format!("frame {id}{}", if *definite { "" } else { " (flushing)" })
        }
        Some(Sent::Marker(id)) => format!("marker {id}"),
        Some(Sent::Eos) => "EOS".into(),
        Some(Sent::Boundary) => "a flush or stop".into(),
        None => "nothing".into(),
    }
}

impl OutputChecker {
    pub fn send(&mut self, sent: Sent) {
        self.sent.push_back(sent);
    }

    /// Checks what left since the last call.
    pub fn take(&mut self, logged: Vec<Logged>) -> Result<(), String> {
        for entry in logged {
            match entry {
                Logged::Buffer(buffer) => self.frame_out(&buffer)?,
                Logged::Event(event) => self.event_out(&event)?,
                Logged::Boundary => loop {
                    match self.sent.pop_front() {
                        Some(Sent::Boundary) => break,
                        Some(_) => {}
                        None => return Err("a boundary was logged but not sent".into()),
                    }
                },
            }
        }
        Ok(())
    }

    fn expect_next(&mut self, what: &str, matches: impl Fn(&Sent) -> bool) -> Result<Sent, String> {
        match self.sent.front() {
            Some(front) if matches(front) => Ok(self.sent.pop_front().unwrap()),
            front => Err(format!(
                "{what} left where {} was due (dropped, duplicated or out of order)",
                describe(front)
            )),
        }
    }

    fn frame_out(&mut self, output: &gst::Buffer) -> Result<(), String> {
        let id = output.offset();
        let Sent::Frame { input, info, .. } = self.expect_next(
            &format!("frame {id}"),
            |s| matches!(s, Sent::Frame { id: i, .. } if *i == id),
        )?
        else {
            unreachable!()
        };
        self.frames_out += 1;
        if output.pts() != input.pts()
            || output.duration() != input.duration()
            || output.flags() != input.flags()
            || output.offset_end() != input.offset_end()
        {
            return Err(format!(
                "frame {id} left with PTS {:?} duration {:?} flags {:?}, it came with {:?} {:?} {:?}",
                output.pts(),
                output.duration(),
                output.flags(),
                input.pts(),
                input.duration(),
                input.flags()
            ));
        }
        let out_info = self
            .out_info
            .clone()
            .ok_or_else(|| format!("frame {id} left before any caps"))?;
        self.check_pixels(id, &input, &info, output, &out_info)
    }

    /// The output's format, framerate and pixel-aspect-ratio are the input's, and
    /// the source's pixels are in it bit-exact.
    fn check_pixels(
        &mut self,
        id: u64,
        input: &gst::Buffer,
        in_info: &gst_video::VideoInfo,
        output: &gst::Buffer,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), String> {
        if out_info.format() != in_info.format()
            || out_info.fps() != in_info.fps()
            || out_info.par() != in_info.par()
            || out_info.width() < in_info.width()
            || out_info.height() < in_info.height()
        {
            return Err(format!(
                "frame {id} of {:?} {}x{} {} fps PAR {} left as {:?} {}x{} {} fps PAR {}",
                in_info.format(),
                in_info.width(),
                in_info.height(),
                in_info.fps(),
                in_info.par(),
                out_info.format(),
                out_info.width(),
                out_info.height(),
                out_info.fps(),
                out_info.par()
            ));
        }
        if output.size() < out_info.size() {
            return Err(format!(
                "frame {id} left with {} bytes, its caps need {}",
                output.size(),
                out_info.size()
            ));
        }
        let (in_caps, out_caps) = (in_info.to_caps().unwrap(), out_info.to_caps().unwrap());
        let cached = match &self.source_at {
            Some((i, o, at)) if *i == in_caps && *o == out_caps => Some(*at),
            _ => None,
        };
        if let Some(at) = cached
            && source_is_exact(in_info, input, out_info, output, at)
        {
            return Ok(());
        }
        let at = locate_source(in_info, input, out_info, output)
            .filter(|&at| source_is_exact(in_info, input, out_info, output, at))
            .ok_or_else(|| {
                format!(
                    "the source pixels of frame {id} ({:?} {}x{}) are not bit-exact in its output {}x{}",
                    in_info.format(),
                    in_info.width(),
                    in_info.height(),
                    out_info.width(),
                    out_info.height()
                )
            })?;
        self.source_at = Some((in_caps, out_caps, at));
        Ok(())
    }

    fn event_out(&mut self, event: &gst::Event) -> Result<(), String> {
        use gst::EventView;
        match event.view() {
            EventView::Caps(caps) => {
                let info = gst_video::VideoInfo::from_caps(caps.caps())
                    .map_err(|err| format!("output caps {} are no video: {err}", caps.caps()))?;
                self.out_info = Some(info);
            }
            EventView::CustomDownstream(custom) => {
                let structure = custom.structure().unwrap();
                if structure.name() == MARKER {
                    let id = structure.get::<u64>("id").unwrap();
                    self.expect_next(
                        &format!("marker {id}"),
                        |s| matches!(s, Sent::Marker(i) if *i == id),
                    )?;
                }
            }
            EventView::Gap(gap) => {
                let id = gap.get().0.nseconds() - GAP_BASE_NS;
                self.expect_next(
                    &format!("gap marker {id}"),
                    |s| matches!(s, Sent::Marker(i) if *i == id),
                )?;
            }
            EventView::Eos(_) => {
                self.expect_next("EOS", |s| matches!(s, Sent::Eos))?;
                self.eos_out += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// After a DRAIN query returned: no frame or marker sent is still due.
    pub fn check_drained(&self) -> Result<(), String> {
        match self
            .sent
            .iter()
            .find(|s| matches!(s, Sent::Frame { .. } | Sent::Marker(_)))
        {
            Some(due) => Err(format!(
                "a DRAIN query returned while {} had not left",
                describe(Some(due))
            )),
            None => Ok(()),
        }
    }

    /// Whether everything sent left (or was dropped by a boundary).
    pub fn all_left(&self) -> bool {
        self.sent.iter().all(|s| matches!(s, Sent::Boundary))
    }

    /// At the end: everything sent left or was dropped by a boundary.
    pub fn check_complete(&self) -> Result<(), String> {
        match self.sent.iter().find(|s| !matches!(s, Sent::Boundary)) {
            Some(due) => Err(format!(
                "the stream ended while {} had not left",
                describe(Some(due))
            )),
            None => Ok(()),
        }
    }
}
