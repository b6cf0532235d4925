// SPDX-License-Identifier: MPL-2.0
//! What a broadcast stream carries besides its pixels (issue 23): interlaced
//! input is refused with a sentence naming `deinterlace` (interleaved, mixed,
//! and alternate fields in the `format:Interlaced` feature, from caps pushed
//! by a harness and from the `interlace` element upstream).

mod common;

use common::*;
use gst::prelude::*;

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
