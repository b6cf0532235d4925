// SPDX-License-Identifier: MPL-2.0
//! Renegotiation mid-stream: a `capsfilter` after the element changes the
//! frame size or pixel-aspect-ratio it takes (RECONFIGURE upstream). The
//! frames after the change come out at the new caps, none is lost, and when
//! the filter goes back to the element's own caps the source is bit-exact in
//! the frames again; the shared canvas is untouched: the chunks are the same
//! as in a run without the change (frames at the element's caps are
//! byte-identical to that run's, and so is every frame of another output
//! sharing the canvas). Caps of another display aspect cannot be followed:
//! the element keeps its caps and says so in one WARNING.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::prelude::*;

const LOOKAHEAD: u64 = 16;
/// The size the filter asks for in the second third of the stream.
const SMALL: (i32, i32) = (48, 86);

/// A pipeline appsrc ! m3ddmoutpaint ! capsfilter ! queue ! appsink for
/// 64×36 I420, with more outputs (request pads at given aspects) each into
/// queue ! appsink.
struct Pipeline {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    filter: gst::Element,
    /// The filtered output's first, then the request pads' in order.
    sinks: Vec<gst_app::AppSink>,
    info: gst_video::VideoInfo,
}

impl Pipeline {
    fn new(others: &[&str]) -> Pipeline {
        init();
        let info = video_info("I420", 64, 36);
        let properties = outpaint_properties(LOOKAHEAD as u32);
        let element = element(&as_refs(&properties));
        let src = gst_app::AppSrc::builder()
            .caps(&info.to_caps().unwrap())
            .format(gst::Format::Time)
            .build();
        let filter = gst::ElementFactory::make("capsfilter").build().unwrap();
        let pipeline = gst::Pipeline::new();
        pipeline
            .add_many([src.upcast_ref(), &element, &filter])
            .unwrap();
        gst::Element::link_many([src.upcast_ref(), &element, &filter]).unwrap();
        // A queue on each branch: the outputs are pushed from one thread, and
        // one sink waiting for preroll would hold the others.
        let branch = |from: &gst::Pad| {
            let queue = gst::ElementFactory::make("queue").build().unwrap();
            let sink = gst_app::AppSink::builder().sync(false).build();
            pipeline.add_many([&queue, sink.upcast_ref()]).unwrap();
            queue.link(&sink).unwrap();
            from.link(&queue.static_pad("sink").unwrap()).unwrap();
            sink
        };
        let mut sinks = vec![branch(&filter.static_pad("src").unwrap())];
        for aspect in others {
            let pad = element.request_pad_simple("src_%u").unwrap();
            pad.set_property_from_str("aspect", aspect);
            sinks.push(branch(&pad));
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        Pipeline {
            pipeline,
            src,
            filter,
            sinks,
            info,
        }
    }

    /// Pushes frames `range` (and EOS after the last with `eos`) and pulls as
    /// many frames out of each output.
    fn run(&self, range: std::ops::Range<u64>, eos: bool) -> Vec<Vec<gst::Sample>> {
        let count = range.end - range.start;
        for k in range {
            self.src.push_buffer(make_frame(&self.info, k, 0)).unwrap();
        }
        if eos {
            self.src.end_of_stream().unwrap();
        }
        let pull = |sink: &gst_app::AppSink| -> Vec<gst::Sample> {
            (0..count)
                .map(|k| {
                    sink.try_pull_sample(gst::ClockTime::from_seconds(120))
                        .unwrap_or_else(|| panic!("frame {k} of {count}"))
                })
                .collect()
        };
        self.sinks.iter().map(pull).collect()
    }

    /// Checks that no frame is left over; returns the texts of the WARNING
    /// messages on the bus.
    fn finish(self) -> Vec<String> {
        for sink in &self.sinks {
            assert!(
                sink.try_pull_sample(gst::ClockTime::from_seconds(1))
                    .is_none(),
                "more frames out than in"
            );
            assert!(sink.is_eos());
        }
        let bus = self.pipeline.bus().unwrap();
        let warnings = bus
            .iter_filtered(&[gst::MessageType::Warning])
            .map(|message| match message.view() {
                gst::MessageView::Warning(warning) => warning.error().to_string(),
                _ => unreachable!("filtered to warnings"),
            })
            .collect();
        self.pipeline.set_state(gst::State::Null).unwrap();
        warnings
    }
}

/// What the filter does before a part of the stream (`LOOKAHEAD` frames).
enum Step {
    /// Nothing.
    Keep,
    /// It takes these caps (a RECONFIGURE goes upstream).
    Caps(gst::Caps),
    /// Another RECONFIGURE reaches the element from the filter, its caps unchanged.
    Reconfigure,
}

/// What came out of a run without a change and of one with it, per output.
struct Runs {
    /// The run without a change.
    reference: Vec<Vec<gst::Sample>>,
    got: Vec<Vec<gst::Sample>>,
    /// The texts of the WARNING messages of the run with the change.
    warnings: Vec<String>,
}

/// Runs a stream without a change (the reference) and one whose filter does
/// `steps` (one per part of the stream), through the element with `others`
/// outputs besides the filtered one.
fn runs_with_change(others: &[&str], steps: &[Step]) -> Runs {
    let total = steps.len() as u64 * LOOKAHEAD;
    let straight = Pipeline::new(others);
    let reference = straight.run(0..total, true);
    assert!(straight.finish().is_empty(), "no warning without a change");
    let pipeline = Pipeline::new(others);
    let mut got = vec![Vec::new(); 1 + others.len()];
    for (part, step) in (0..).zip(steps) {
        match step {
            Step::Keep => {}
            Step::Caps(caps) => pipeline.filter.set_property("caps", caps),
            Step::Reconfigure => {
                let pad = pipeline.filter.static_pad("sink").unwrap();
                assert!(pad.push_event(gst::event::Reconfigure::new()));
            }
        }
        let start = part * LOOKAHEAD;
        let end = start + LOOKAHEAD;
        for (output, samples) in got.iter_mut().zip(pipeline.run(start..end, end == total)) {
            output.extend(samples);
        }
    }
    let warnings = pipeline.finish();
    for (output, (got, reference)) in got.iter().zip(&reference).enumerate() {
        assert_eq!(
            got.len(),
            reference.len(),
            "no frame lost on output {output}"
        );
        for (k, (sample, expected)) in got.iter().zip(reference).enumerate() {
            assert_eq!(
                sample.buffer().unwrap().pts(),
                expected.buffer().unwrap().pts(),
                "frame {k} of output {output} in order"
            );
        }
    }
    Runs {
        reference,
        got,
        warnings,
    }
}

/// A change for the second third of the stream, and back to any caps.
fn change_and_back(caps: gst::Caps) -> [Step; 3] {
    [
        Step::Keep,
        Step::Caps(caps),
        Step::Caps(gst::Caps::new_any()),
    ]
}

/// Frame `k` is at the element's own caps, byte-identical to the run without
/// the change, and holds the source bit-exact.
fn assert_as_without_change(k: u64, sample: &gst::Sample, expected: &gst::Sample) {
    assert_eq!(
        sample.caps().unwrap(),
        expected.caps().unwrap(),
        "frame {k} at the element's caps"
    );
    assert!(
        bytes(sample) == bytes(expected),
        "frame {k} differs from the run without the change: the canvas moved"
    );
    let in_info = video_info("I420", 64, 36);
    let out_info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let input = make_frame(&in_info, k, 0);
    let output = sample.buffer().unwrap();
    let at = locate_source(&in_info, &input, &out_info, output).expect("the source");
    assert!(source_is_exact(&in_info, &input, &out_info, output, at));
}

fn size_of(sample: &gst::Sample) -> (i32, i32) {
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    (info.width() as i32, info.height() as i32)
}

fn par_of(sample: &gst::Sample) -> gst::Fraction {
    gst_video::VideoInfo::from_caps(sample.caps().unwrap())
        .unwrap()
        .par()
}

/// The mean of each row of the luma plane.
fn row_means(sample: &gst::Sample) -> Vec<f64> {
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info)
        .unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let width = info.width() as usize;
    frame
        .plane_data(0)
        .unwrap()
        .chunks(stride)
        .take(info.height() as usize)
        .map(|row| row[..width].iter().map(|&v| f64::from(v)).sum::<f64>() / width as f64)
        .collect()
}

fn bytes(sample: &gst::Sample) -> Vec<u8> {
    sample.buffer().unwrap().map_readable().unwrap().to_vec()
}

/// Frame `k` of every output but the filtered one is byte-identical to the
/// run without the change: their crops of the canvas are untouched.
fn assert_others_as_without_change(runs: &Runs) {
    for (output, (got, reference)) in runs.got.iter().zip(&runs.reference).enumerate().skip(1) {
        for (k, (sample, expected)) in got.iter().zip(reference).enumerate() {
            assert_eq!(sample.caps(), expected.caps(), "output {output} frame {k}");
            assert!(
                bytes(sample) == bytes(expected),
                "output {output} frame {k} differs from the run without the change"
            );
        }
    }
}

#[test]
fn a_size_change_downstream_applies_from_the_next_frame() {
    init();
    let caps = gst::Caps::builder("video/x-raw")
        .field("width", SMALL.0)
        .field("height", SMALL.1)
        .build();
    let runs = runs_with_change(&[], &change_and_back(caps));
    assert_ne!(size_of(&runs.reference[0][0]), SMALL);
    assert_eq!(
        runs.warnings,
        Vec::<String>::new(),
        "a size is followed silently"
    );
    for (k, (sample, expected)) in runs.got[0].iter().zip(&runs.reference[0]).enumerate() {
        let k = k as u64;
        if (LOOKAHEAD..2 * LOOKAHEAD).contains(&k) {
            assert_eq!(size_of(sample), SMALL, "frame {k} at the filter's size");
        } else {
            assert_as_without_change(k, sample, expected);
        }
    }
}

/// A pixel-aspect-ratio change fixed downstream, and the frame the element's
/// 64x114 square pixels (32:57 on screen) take: 3/2 alone keeps the height,
/// 42⅔ pixels of 3/2 rounded to I420's even 42 (alone, and beside a 1:1
/// output sharing the canvas); 48x114 at 4/3 fixed together shows the same;
/// 16/15 with a height of 128 gives the width from the element's aspect.
const PAR_CHANGES: [ParChange; 4] = [
    ParChange {
        caps: "video/x-raw,pixel-aspect-ratio=3/2",
        size: (42, 114),
        par: (3, 2),
        others: &[],
    },
    ParChange {
        caps: "video/x-raw,pixel-aspect-ratio=3/2",
        size: (42, 114),
        par: (3, 2),
        others: &["1/1"],
    },
    ParChange {
        caps: "video/x-raw,width=48,height=114,pixel-aspect-ratio=4/3",
        size: (48, 114),
        par: (4, 3),
        others: &[],
    },
    ParChange {
        caps: "video/x-raw,height=128,pixel-aspect-ratio=16/15",
        size: (68, 128),
        par: (16, 15),
        others: &[],
    },
];

/// The caps a filter takes, the frame size and pixel-aspect-ratio that
/// follow, and the aspects of the other outputs.
struct ParChange {
    caps: &'static str,
    size: (i32, i32),
    par: (i32, i32),
    others: &'static [&'static str],
}

/// Each of `PAR_CHANGES` is followed from the next frame on, silently, none
/// lost; a frame of the natural height is the same picture as in the run
/// without the change (the same canvas crop and source rows, each row's mean
/// kept), resampled across; another output is byte-identical to that run's.
#[test]
fn a_pixel_aspect_change_downstream_applies_from_the_next_frame() {
    init();
    for ParChange {
        caps,
        size,
        par: (num, den),
        others,
    } in PAR_CHANGES
    {
        let runs = runs_with_change(others, &change_and_back(caps.parse().unwrap()));
        let natural = size_of(&runs.reference[0][0]);
        assert_eq!(
            runs.warnings,
            Vec::<String>::new(),
            "{caps} is followed silently"
        );
        assert_others_as_without_change(&runs);
        let mut worst = 0.0f64;
        for (k, (sample, expected)) in runs.got[0].iter().zip(&runs.reference[0]).enumerate() {
            let k = k as u64;
            if !(LOOKAHEAD..2 * LOOKAHEAD).contains(&k) {
                assert_as_without_change(k, sample, expected);
                continue;
            }
            assert_eq!(
                par_of(sample),
                gst::Fraction::new(num, den),
                "{caps}: frame {k}"
            );
            assert_eq!(size_of(sample), size, "{caps}: frame {k}");
            if size.1 != natural.1 {
                continue;
            }
            for (row, (a, b)) in row_means(sample)
                .iter()
                .zip(row_means(expected))
                .enumerate()
            {
                worst = worst.max((a - b).abs());
                assert!(
                    (a - b).abs() < ROW_MEAN_SLACK,
                    "{caps}: frame {k} row {row}: mean {a:.1} where the run without the change \
                     has {b:.1}"
                );
            }
        }
        if size.1 == natural.1 {
            println!("{caps}, other outputs {others:?}: largest row-mean difference: {worst:.2}");
        }
    }
}

/// What resampling a row across changes in its mean (8-bit levels).
const ROW_MEAN_SLACK: f64 = 4.0;

/// Caps that cannot be followed mid-stream, and what the warning about them
/// says: 64x64 square pixels, a 1:1 display where the canvas is laid out for
/// 9:16; RGB, a format the element does not convert to.
const UNFOLLOWED: [(&str, &[&str]); 2] = [
    (
        "video/x-raw,width=64,height=64,pixel-aspect-ratio=1/1",
        &[
            "pad src",
            "width=(int)64, height=(int)64",
            "display",
            "restart the stream",
        ],
    ),
    (
        "video/x-raw,format=RGB",
        &[
            "downstream of src",
            "format=(string)RGB",
            "videoconvertscale",
        ],
    ),
];

/// Each of `UNFOLLOWED`, asked for and asked again, is not followed: every
/// frame still comes out at the element's caps, byte-identical to the run
/// without the change, and one WARNING names the pad, the caps asked for, why
/// and what to do.
#[test]
fn caps_that_cannot_be_followed_keep_the_caps_with_one_warning() {
    init();
    for (caps, needles) in UNFOLLOWED {
        let steps = [
            Step::Keep,
            Step::Caps(caps.parse().unwrap()),
            Step::Reconfigure,
            Step::Caps(gst::Caps::new_any()),
        ];
        let runs = runs_with_change(&[], &steps);
        for (k, (sample, expected)) in runs.got[0].iter().zip(&runs.reference[0]).enumerate() {
            assert_as_without_change(k as u64, sample, expected);
        }
        let warnings = &runs.warnings;
        println!("{caps}: {warnings:#?}");
        assert_eq!(warnings.len(), 1, "{caps}: one warning: {warnings:#?}");
        for needle in needles {
            assert!(
                warnings[0].contains(needle),
                "{needle:?} in {}",
                warnings[0]
            );
        }
    }
}
