// SPDX-License-Identifier: MPL-2.0
//! Renegotiation mid-stream: a `capsfilter` after the element changes the
//! frame size it takes (RECONFIGURE upstream). The frames after the change
//! come out at the new size, none is lost, and when the filter goes back to
//! the element's own size the source is bit-exact in the frames again; the
//! shared canvas is untouched: the chunks are the same as in a run without
//! the change (frames at the element's size are byte-identical to that run's).

mod common;

use common::*;
use gst::prelude::*;

const LOOKAHEAD: u64 = 16;
/// The size the filter asks for in the second third of the stream.
const SMALL: (i32, i32) = (48, 86);

/// A pipeline appsrc ! m3ddmoutpaint ! capsfilter ! appsink for 64×36 I420.
struct Pipeline {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    filter: gst::Element,
    sink: gst_app::AppSink,
    info: gst_video::VideoInfo,
}

impl Pipeline {
    fn new() -> Pipeline {
        init();
        let info = video_info("I420", 64, 36);
        let properties = outpaint_properties(LOOKAHEAD as u32);
        let element = element(&as_refs(&properties));
        let src = gst_app::AppSrc::builder()
            .caps(&info.to_caps().unwrap())
            .format(gst::Format::Time)
            .build();
        let filter = gst::ElementFactory::make("capsfilter").build().unwrap();
        let sink = gst_app::AppSink::builder().sync(false).build();
        let pipeline = gst::Pipeline::new();
        let chain = [src.upcast_ref(), &element, &filter, sink.upcast_ref()];
        pipeline.add_many(chain).unwrap();
        gst::Element::link_many(chain).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Pipeline {
            pipeline,
            src,
            filter,
            sink,
            info,
        }
    }

    /// Pushes frames `range` (and EOS after the last with `eos`) and pulls as many frames out.
    fn run(&self, range: std::ops::Range<u64>, eos: bool) -> Vec<gst::Sample> {
        let count = range.end - range.start;
        for k in range {
            self.src.push_buffer(make_frame(&self.info, k, 0)).unwrap();
        }
        if eos {
            self.src.end_of_stream().unwrap();
        }
        (0..count)
            .map(|k| {
                self.sink
                    .try_pull_sample(gst::ClockTime::from_seconds(120))
                    .unwrap_or_else(|| panic!("frame {k} of {count}"))
            })
            .collect()
    }

    fn finish(self) {
        assert!(
            self.sink
                .try_pull_sample(gst::ClockTime::from_seconds(1))
                .is_none(),
            "more frames out than in"
        );
        assert!(self.sink.is_eos());
        self.pipeline.set_state(gst::State::Null).unwrap();
    }
}

fn size_of(sample: &gst::Sample) -> (i32, i32) {
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    (info.width() as i32, info.height() as i32)
}

fn bytes(sample: &gst::Sample) -> Vec<u8> {
    sample.buffer().unwrap().map_readable().unwrap().to_vec()
}

#[test]
fn a_size_change_downstream_applies_from_the_next_frame() {
    let straight = Pipeline::new();
    let reference = straight.run(0..3 * LOOKAHEAD, true);
    straight.finish();
    let natural = size_of(&reference[0]);
    assert_ne!(natural, SMALL);

    let pipeline = Pipeline::new();
    let mut got = pipeline.run(0..LOOKAHEAD, false);
    pipeline.filter.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("width", SMALL.0)
            .field("height", SMALL.1)
            .build(),
    );
    got.extend(pipeline.run(LOOKAHEAD..2 * LOOKAHEAD, false));
    pipeline.filter.set_property("caps", gst::Caps::new_any());
    got.extend(pipeline.run(2 * LOOKAHEAD..3 * LOOKAHEAD, true));
    pipeline.finish();

    assert_eq!(got.len(), reference.len(), "no frame lost");
    for (k, (sample, expected)) in got.iter().zip(&reference).enumerate() {
        let k = k as u64;
        assert_eq!(
            sample.buffer().unwrap().pts(),
            expected.buffer().unwrap().pts(),
            "frame {k} in order"
        );
        if (LOOKAHEAD..2 * LOOKAHEAD).contains(&k) {
            assert_eq!(size_of(sample), SMALL, "frame {k} at the filter's size");
            continue;
        }
        assert_eq!(size_of(sample), natural, "frame {k} at the element's size");
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
}
