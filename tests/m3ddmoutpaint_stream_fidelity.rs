// SPDX-License-Identifier: MPL-2.0
//! What a broadcast stream carries besides its pixels (issue 23): interlaced
//! input is refused with a sentence naming `deinterlace` (interleaved, mixed,
//! and alternate fields in the `format:Interlaced` feature, from caps pushed
//! by a harness and from the `interlace` element upstream); the timecode of
//! `timecodestamper`, captions and a region of interest reach every output
//! buffer of every pad (the region moved to where the source landed), AFD is
//! dropped and GAP cleared; anamorphic PAL (720×576 at 64/45) reframed for a
//! 1080×1920 downstream, with or without square pixels, displays at 9:16; a
//! rotate-90 orientation tag turns the frames upright before reframing and
//! leaves as rotate-0 (a rotate-0 tag changes nothing).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;
use gst_video::prelude::*;

const BLUR: &[(&str, &str)] = &[("fill-mode", "blur"), ("aspect", "9/16")];

/// The interlace refusal: a format error that names the mode and `deinterlace`.
fn assert_interlace_refusal(err: &gst::glib::Error, mode: &str) {
    assert!(err.matches(gst::StreamError::Format), "{err}");
    let message = err.message();
    assert!(
        message.contains(&format!("interlace-mode={mode}"))
            && message.contains("put deinterlace before it"),
        "{message}"
    );
}

#[test]
fn test_interlaced_caps_are_refused_with_a_sentence_naming_deinterlace() {
    for mode in ["interleaved", "mixed"] {
        let caps = format!(
            "video/x-raw,format=I420,width=64,height=36,framerate=30/1,interlace-mode={mode}"
        );
        assert_interlace_refusal(&caps_error(BLUR, &caps), mode);
    }
    let alternate = "video/x-raw(format:Interlaced),format=NV12,width=64,height=36,\
                     framerate=30/1,interlace-mode=alternate";
    assert_interlace_refusal(&caps_error(BLUR, alternate), "alternate");
}

#[test]
fn test_the_interlace_element_upstream_gets_the_named_error() {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=4 ! video/x-raw,format=I420,width=64,height=36 \
         ! interlace ! m3ddmoutpaint fill-mode=blur ! fakesink",
    )
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("an error within 30 s");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        msg.src()
            .is_some_and(|src| src.name().starts_with("m3ddmoutpaint")),
        "{msg:?}"
    );
    let err = error_of(&msg);
    // interlace's default field pattern (1:1) gives mixed caps.
    assert!(err.message().contains("put deinterlace before it"), "{err}");
}

/// A region of interest: its type, rectangle and first parameter's name.
type Region = (String, (u32, u32, u32, u32), Option<String>);

/// What the test reads from one buffer: its timecode, captions, regions of
/// interest (type, rectangle, first parameter's name) and whether it has AFD or GAP.
#[derive(Debug, Clone, PartialEq)]
struct Carried {
    timecode: Option<String>,
    captions: Vec<Vec<u8>>,
    regions: Vec<Region>,
    afd: bool,
    gap: bool,
}

fn carried(buffer: &gst::BufferRef) -> Carried {
    Carried {
        timecode: buffer
            .meta::<gst_video::VideoTimeCodeMeta>()
            .map(|meta| meta.tc().to_string()),
        captions: buffer
            .iter_meta::<gst_video::VideoCaptionMeta>()
            .map(|meta| meta.data().to_vec())
            .collect(),
        regions: buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|meta| {
                (
                    meta.roi_type().to_string(),
                    meta.rect(),
                    meta.params().next().map(|p| p.name().to_string()),
                )
            })
            .collect(),
        afd: buffer.meta::<gst_video::VideoAFDMeta>().is_some(),
        gap: buffer.flags().contains(gst::BufferFlags::GAP),
    }
}

const REGION: (u32, u32, u32, u32) = (10, 5, 20, 10);

/// Adds a caption (its bytes name the frame), a region of interest and AFD to
/// every buffer, and GAP to every other one.
fn add_metas(buffer: &mut gst::BufferRef, index: u64) {
    let caption = [0x96, 0x69, index as u8, 0xfc, 0x80, 0x80];
    gst_video::VideoCaptionMeta::add(buffer, gst_video::VideoCaptionType::Cea708Cdp, &caption);
    let mut region = gst_video::VideoRegionOfInterestMeta::add(buffer, "face", REGION);
    region.add_param(
        gst::Structure::builder("detection")
            .field("score", 0.9)
            .build(),
    );
    gst_video::VideoAFDMeta::add(
        buffer,
        0,
        gst_video::VideoAFDSpec::DvbEtsi,
        gst_video::VideoAFDValue::_43Full169Full,
    );
    if index % 2 == 1 {
        buffer.set_flags(gst::BufferFlags::GAP);
    }
}

#[test]
fn test_timecode_captions_and_regions_reach_every_output_of_every_pad() {
    init();
    let frames = 6;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball \
         ! video/x-raw,format=I420,width=64,height=36,framerate=30/1 ! timecodestamper \
         ! m3ddmoutpaint name=o fill-mode=blur aspect=9/16 src_0::aspect=1/1 \
         o.src ! queue ! fakesink name=tall sync=false \
         o.src_0 ! queue ! fakesink name=square sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let element = pipeline.by_name("o").unwrap();
    // Inputs by PTS: the frame (for the source's place) and what it carries.
    let inputs: Arc<Mutex<BTreeMap<u64, (gst::Buffer, Carried)>>> = Arc::default();
    let recorded = inputs.clone();
    let index = std::sync::atomic::AtomicU64::new(0);
    element
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buffer) = info.buffer_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            add_metas(
                buffer.make_mut(),
                index.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            );
            let pts = buffer.pts().unwrap().nseconds();
            recorded
                .lock()
                .unwrap()
                .insert(pts, (buffer.clone(), carried(buffer)));
            gst::PadProbeReturn::Ok
        });
    let outputs: Arc<Mutex<Vec<(String, gst::Buffer, gst::Caps)>>> = Arc::default();
    for sink in ["tall", "square"] {
        let outputs = outputs.clone();
        pipeline
            .by_name(sink)
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let buffer = info.buffer().unwrap().clone();
                let caps = pad.current_caps().unwrap();
                outputs
                    .lock()
                    .unwrap()
                    .push((sink.to_string(), buffer, caps));
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("EOS within 60 s");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");

    let inputs = inputs.lock().unwrap();
    let outputs = outputs.lock().unwrap();
    assert_eq!(inputs.len(), frames);
    assert_eq!(outputs.len(), 2 * frames, "every frame on both pads");
    for (sink, output, caps) in outputs.iter() {
        let (input, sent) = &inputs[&output.pts().unwrap().nseconds()];
        assert!(sent.timecode.is_some() && sent.gap == (sent.captions[0][2] % 2 == 1));
        let in_info = video_info("I420", 64, 36);
        let out_info = gst_video::VideoInfo::from_caps(caps).unwrap();
        let (x0, y0) = locate_source(&in_info, input, &out_info, output)
            .unwrap_or_else(|| panic!("{sink}: the source is in the output"));
        let got = carried(output);
        let expected = Carried {
            regions: vec![(
                "face".to_string(),
                (REGION.0 + x0, REGION.1 + y0, REGION.2, REGION.3),
                Some("detection".to_string()),
            )],
            afd: false,
            gap: false,
            ..sent.clone()
        };
        assert_eq!(got, expected, "{sink} at {:?}", output.pts());
        assert!(y0 > 0, "{sink}: the source moved down ({x0}, {y0})");
    }
}

/// The caps `m3ddmoutpaint aspect=9/16` gives a 720×576 PAR 64/45 source
/// (16:9 PAL) when `downstream` caps follow it.
fn pal_output_caps(downstream: &str) -> gst::Caps {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 \
         ! video/x-raw,format=I420,width=720,height=576,pixel-aspect-ratio=64/45,framerate=25/1 \
         ! m3ddmoutpaint fill-mode=blur aspect=9/16 ! {downstream} ! fakesink name=sink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sinkpad = pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("EOS within 60 s");
    let caps = sinkpad.current_caps();
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{downstream}: {msg:?}");
    caps.expect("caps were negotiated")
}

#[test]
fn test_anamorphic_pal_displays_at_the_aspect_downstream_fixes_a_size_for() {
    for downstream in [
        "video/x-raw,width=1080,height=1920",
        "video/x-raw,width=1080,height=1920,pixel-aspect-ratio=1/1",
    ] {
        let caps = pal_output_caps(downstream);
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!((info.width(), info.height()), (1080, 1920), "{caps}");
        let par = info.par();
        // Display aspect = width · PAR : height, exactly 9:16.
        assert_eq!(
            16 * 1080 * i64::from(par.numer()),
            9 * 1920 * i64::from(par.denom()),
            "{downstream}: {caps}"
        );
    }
    // Square pixels alone: the 720 anamorphic columns become 1024 square ones.
    let caps = pal_output_caps("video/x-raw,pixel-aspect-ratio=1/1");
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!(info.par(), gst::Fraction::new(1, 1), "{caps}");
    let display = f64::from(info.width()) / f64::from(info.height());
    assert!((display - 9.0 / 16.0).abs() < 1e-3, "{caps}");
    // Nothing fixed downstream: the source keeps its pixels and their aspect.
    let caps = pal_output_caps("video/x-raw");
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!(info.par(), gst::Fraction::new(64, 45), "{caps}");
    assert_eq!(info.width(), 720, "{caps}");
    let display = f64::from(info.width()) * 64.0 / 45.0 / f64::from(info.height());
    assert!((display - 9.0 / 16.0).abs() < 1e-3, "{caps}");
}

/// A blur harness given 64×36 RGB caps, an `image-orientation` tag of
/// `orientation`, then one frame: the harness, the input's info and the frame.
fn one_frame_after_orientation_tag(
    orientation: &str,
) -> (gst_check::Harness, gst_video::VideoInfo, gst::Buffer) {
    let mut h = harness(BLUR);
    h.play();
    let in_info = video_info("RGB", 64, 36);
    h.set_src_caps(in_info.to_caps().unwrap());
    let mut tags = gst::TagList::new();
    tags.get_mut()
        .unwrap()
        .add::<gst::tags::ImageOrientation>(&orientation, gst::TagMergeMode::Replace);
    assert!(h.push_event(gst::event::Tag::new(tags)));
    let input = make_frame(&in_info, 0, 0);
    assert_eq!(h.push(input.clone()), Ok(gst::FlowSuccess::Ok));
    (h, in_info, input)
}

#[test]
fn test_a_rotate_90_tag_turns_the_frames_upright_and_leaves_as_rotate_0() {
    let (mut h, in_info, input) = one_frame_after_orientation_tag("rotate-90");
    assert!(h.push_event(gst::event::Eos::new()));
    let output = pull_within(&mut h, std::time::Duration::from_secs(30)).expect("a frame");
    let events = events_until_eos(&mut h, std::time::Duration::from_secs(30));
    let orientation: Vec<String> = events
        .iter()
        .filter_map(|event| match event.view() {
            gst::EventView::Tag(tag) => tag
                .tag()
                .get::<gst::tags::ImageOrientation>()
                .map(|o| o.get().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(orientation, ["rotate-0"]);
    // Upright the 64×36 frame is 36×64, already 9:16: the whole output.
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let out_info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((out_info.width(), out_info.height()), (36, 64), "{caps}");
    let src = input.map_readable().unwrap();
    let out = gst_video::VideoFrameRef::from_buffer_ref_readable(&output, &out_info).unwrap();
    let (stride, data) = (out.plane_stride()[0] as usize, out.plane_data(0).unwrap());
    let in_stride = in_info.stride()[0] as usize;
    // Clockwise: stored (x, y) lands at upright (35 - y, x), sample for sample.
    for (x, y) in [(0, 0), (63, 0), (0, 35), (20, 10)] {
        let (ux, uy) = (35 - y, x);
        assert_eq!(
            data[uy * stride + ux * 3..uy * stride + ux * 3 + 3],
            src[y * in_stride + x * 3..y * in_stride + x * 3 + 3],
            "stored ({x}, {y})"
        );
    }
}

#[test]
fn test_a_rotate_0_tag_leaves_the_frames_as_they_are() {
    let (mut h, in_info, input) = one_frame_after_orientation_tag("rotate-0");
    let output = pull_within(&mut h, std::time::Duration::from_secs(30)).expect("a frame");
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let out_info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((out_info.width(), out_info.height()), (64, 114), "{caps}");
    let at = locate_source(&in_info, &input, &out_info, &output).expect("the source as it is");
    assert!(source_is_exact(&in_info, &input, &out_info, &output, at));
}
