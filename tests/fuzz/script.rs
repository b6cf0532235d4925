// SPDX-License-Identifier: MPL-2.0
//! What the fuzz test throws at the element: a script of steps as an upstream
//! element, the application and downstream would produce them (frames with and
//! without PTS, serialized events, caps within and outside the template,
//! flushes, seeks, EOS, property changes and state changes), and the proptest
//! strategies that generate (and shrink) such scripts for each fill mode.

use proptest::prelude::*;
use proptest::sample::select;

/// The fill mode a script runs in: its properties and how much work it may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `fill-mode=blur` (or `color`, by a property change): frame by frame, no model.
    Blur,
    /// `fill-mode=outpaint` with the tiny model at one step: frames held for a chunk.
    Outpaint,
}

/// The formats of the pad template.
pub const SUPPORTED_FORMATS: [&str; 22] = [
    "RGB",
    "RGBA",
    "BGRA",
    "BGRx",
    "I420",
    "NV12",
    "Y42B",
    "NV16",
    "Y444",
    "UYVY",
    "YUY2",
    "GBR",
    "GBRA",
    "I420_10LE",
    "I420_12LE",
    "P010_10LE",
    "P012_LE",
    "I422_10LE",
    "I422_12LE",
    "v210",
    "Y444_10LE",
    "Y444_12LE",
];
/// Raw formats outside the template: the element must refuse them with an error message.
pub const UNSUPPORTED_FORMATS: [&str; 6] = ["GRAY8", "RGB16", "AYUV", "NV21", "Y41B", "ARGB64"];

/// One input caps: raw video of a format, size, pixel-aspect-ratio and framerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapsSpec {
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub par: (i32, i32),
    pub fps: (i32, i32),
}

impl CapsSpec {
    /// Within the element's template and at least 2×2: caps the element can take
    /// (unless the output it needs is too large).
    pub fn supported(&self) -> bool {
        SUPPORTED_FORMATS.contains(&self.format) && self.width >= 2 && self.height >= 2
    }

    pub fn caps(&self) -> gst::Caps {
        gst::Caps::builder("video/x-raw")
            .field("format", self.format)
            .field("width", self.width as i32)
            .field("height", self.height as i32)
            .field("framerate", gst::Fraction::new(self.fps.0, self.fps.1))
            .field(
                "pixel-aspect-ratio",
                gst::Fraction::new(self.par.0, self.par.1),
            )
            .build()
    }

    /// About the bytes of one frame (4 per pixel at most).
    pub fn frame_bytes(&self) -> u64 {
        self.width as u64 * self.height as u64 * 4
    }
}

/// A property set while the element runs (or before it starts), as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropChange {
    pub name: &'static str,
    /// The value as `gst_util_set_object_arg` takes it; `TINY_MODEL` stands for the tiny model's path.
    pub value: &'static str,
}

/// The value of `model-path` that stands for the bundled tiny model.
pub const TINY_MODEL: &str = "@tiny";

/// A state change the application makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateTrip {
    /// PLAYING→PAUSED (frames keep flowing: the element is no sink).
    Pause,
    /// Back to PLAYING.
    Play,
    /// Down to READY and back: every held frame dropped, the stream started again.
    ViaReady,
    /// Down to NULL (the model released) and back.
    ViaNull,
}

/// One step of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `count` frames of the current caps, with PTS or without; with `detach`
    /// the last one is pushed without waiting for it to return, so that the
    /// next step (a flush, a property, a state change) meets it in flight.
    Push {
        count: u8,
        pts: bool,
        detach: bool,
    },
    /// A GAP event (serialized, in its place among the frames).
    Gap,
    /// A serialized custom downstream event.
    Marker,
    /// New caps (mid-stream: the old frames drain first).
    Caps(CapsSpec),
    /// A non-flushing segment update.
    Segment,
    /// A new STREAM_START (after EOS: a new stream on the same element).
    StreamStart,
    FlushStart,
    FlushStop,
    /// A flushing seek as upstream performs it: FLUSH_START, FLUSH_STOP and a
    /// new segment starting at frame `to`.
    Seek {
        to: u16,
    },
    Eos,
    /// A DRAIN query (an allocation change upstream): every frame before it leaves first.
    Drain,
    /// The `stats` property read while the stream runs.
    ReadStats,
    Property(PropChange),
    State(StateTrip),
}

/// A whole case: properties set before PLAYING, the first caps, then the steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub properties: Vec<PropChange>,
    /// The caps sent after the first STREAM_START (none: frames come without caps).
    pub caps: Option<CapsSpec>,
    pub steps: Vec<Step>,
}

/// The properties of `mode` the element always starts with.
pub fn base_properties(mode: Mode) -> &'static [PropChange] {
    const BLUR: &[PropChange] = &[PropChange {
        name: "fill-mode",
        value: "blur",
    }];
    const OUTPAINT: &[PropChange] = &[
        PropChange {
            name: "fill-mode",
            value: "outpaint",
        },
        PropChange {
            name: "model-path",
            value: TINY_MODEL,
        },
        PropChange {
            name: "steps",
            value: "1",
        },
        PropChange {
            name: "execution-provider",
            value: "cpu",
        },
        PropChange {
            name: "lookahead",
            value: "8",
        },
    ];
    match mode {
        Mode::Blur => BLUR,
        Mode::Outpaint => OUTPAINT,
    }
}

type PropertyValues = (&'static str, &'static [&'static str]);

/// Every settable property with values to set (valid and invalid ones). In
/// outpaint mode the values keep a run cheap: the tiny model at 1–2 steps, a
/// short lookahead, the CPU; in blur mode no value makes a run load a model.
fn property_values(mode: Mode) -> &'static [PropertyValues] {
    const COMMON: [PropertyValues; 9] = [
        (
            "aspect",
            &[
                "9/16", "16/9", "1/1", "4/3", "21/9", "1/100", "100/1", "3/4",
            ],
        ),
        ("scheduler", &["pndm", "ddim", "dpmsolver++"]),
        ("guidance-scale", &["2", "0", "7.5", "50"]),
        ("global-guidance-scale", &["4", "0", "1", "50"]),
        ("seed", &["0", "1", "18446744073709551615"]),
        ("fill-color", &["4278190080", "0", "4294967295", "16711935"]),
        ("feather", &["16", "0", "1", "256"]),
        ("scene-threshold", &["0", "0.3", "1"]),
        (
            "expand",
            &[
                "",
                "0.25",
                "0.1,0.2",
                "<0.1, 0.2, 0.3, 0.4>",
                "0",
                "10",
                "abc",
                "0.1,0.2,0.3",
            ],
        ),
    ];
    const BLUR: [PropertyValues; 16] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        COMMON[4],
        COMMON[5],
        COMMON[6],
        COMMON[7],
        COMMON[8],
        ("fill-mode", &["blur", "color", "outpaint"]),
        ("model-path", &["/nonexistent/m3ddm-model", ""]),
        ("execution-provider", &["auto", "cpu", "cuda"]),
        ("device-id", &["0", "0,1", "3", "0,x", ""]),
        ("steps", &["1", "50", "1000"]),
        ("lookahead", &["1", "16", "226", "10000"]),
        ("n-threads", &["0", "1", "4", "1024"]),
    ];
    const OUTPAINT: [PropertyValues; 14] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        COMMON[4],
        COMMON[5],
        COMMON[6],
        COMMON[7],
        COMMON[8],
        ("fill-mode", &["outpaint", "blur", "color"]),
        ("model-path", &[TINY_MODEL, "/nonexistent/m3ddm-model"]),
        ("steps", &["1", "2"]),
        ("lookahead", &["1", "2", "3", "8", "15", "16", "17", "24"]),
        ("n-threads", &["0", "1"]),
    ];
    match mode {
        Mode::Blur => &BLUR,
        Mode::Outpaint => &OUTPAINT,
    }
}

pub fn property_change(mode: Mode) -> impl Strategy<Value = PropChange> {
    select(property_values(mode)).prop_flat_map(|(name, values)| {
        select(values).prop_map(move |value| PropChange { name, value })
    })
}

/// Sizes from 1×1 to 7680×4320: mostly small, some odd or degenerate (1×N is
/// outside the template), some HD, rarely huge (those frames are pushed twice at most).
fn frame_size() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![
        24 => (2u32..=96, 2u32..=96),
        4 => (1u32..=4, 1u32..=4),
        2 => (1u32..=1, 1u32..=300),
        2 => (2u32..=300, 1u32..=1),
        5 => (97u32..=1920, 91u32..=1080),
        1 => (1921u32..=7680, 1081u32..=4320),
    ]
}

pub fn caps_spec() -> impl Strategy<Value = CapsSpec> {
    let format = prop_oneof![
        9 => select(&SUPPORTED_FORMATS[..]),
        1 => select(&UNSUPPORTED_FORMATS[..]),
    ];
    let par = select(&[(1, 1), (4, 3), (16, 15), (2, 1), (1, 2), (64, 45), (10, 11)][..]);
    let fps = select(
        &[
            (30, 1),
            (25, 1),
            (30000, 1001),
            (0, 1),
            (1, 1),
            (60, 1),
            (1, 5),
        ][..],
    );
    (format, frame_size(), par, fps).prop_map(|(format, (width, height), par, fps)| CapsSpec {
        format,
        width,
        height,
        par,
        fps,
    })
}

fn state_trip() -> impl Strategy<Value = StateTrip> {
    select(
        &[
            StateTrip::Pause,
            StateTrip::Play,
            StateTrip::ViaReady,
            StateTrip::ViaNull,
        ][..],
    )
}

fn step(mode: Mode) -> impl Strategy<Value = Step> {
    let max_push: u8 = match mode {
        Mode::Blur => 6,
        Mode::Outpaint => 12,
    };
    let push = (
        1..=max_push,
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(count, pts, detach)| Step::Push { count, pts, detach });
    prop_oneof![
        14 => push,
        1 => Just(Step::Gap),
        2 => Just(Step::Marker),
        3 => caps_spec().prop_map(Step::Caps),
        1 => Just(Step::Segment),
        1 => Just(Step::StreamStart),
        1 => Just(Step::FlushStart),
        1 => Just(Step::FlushStop),
        2 => (0u16..1000).prop_map(|to| Step::Seek { to }),
        2 => Just(Step::Eos),
        1 => Just(Step::Drain),
        1 => Just(Step::ReadStats),
        3 => property_change(mode).prop_map(Step::Property),
        2 => state_trip().prop_map(Step::State),
    ]
}

/// Scripts of `mode`: up to 40 steps without a model, 12 with one.
pub fn script(mode: Mode) -> impl Strategy<Value = Script> {
    let max_steps = match mode {
        Mode::Blur => 40,
        Mode::Outpaint => 12,
    };
    (
        prop::collection::vec(property_change(mode), 0..4),
        prop::option::weighted(0.9, caps_spec()),
        prop::collection::vec(step(mode), 1..max_steps),
    )
        .prop_map(|(properties, caps, steps)| Script {
            properties,
            caps,
            steps,
        })
}
