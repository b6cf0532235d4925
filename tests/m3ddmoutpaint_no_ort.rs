// SPDX-License-Identifier: MPL-2.0
//! `m3ddmoutpaint` when the ONNX Runtime library cannot be found: going to
//! READY fails with an error message that says so. A test binary of its own,
//! because ONNX Runtime is loaded once per process.

mod common;

use common::*;
use gst::prelude::*;

#[test]
fn test_missing_onnx_runtime_is_an_error() {
    // SAFETY: this binary's only test sets the variable before any other thread
    // (GStreamer's included) exists to read the environment.
    unsafe { std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1") };
    let model = tiny_model();
    let element = element(&[
        ("model-path", model.to_str().unwrap()),
        ("execution-provider", "cpu"),
    ]);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(element.set_state(gst::State::Ready).is_err());
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let err = err.error();
    assert!(err.matches(gst::LibraryError::Init), "{err}");
    assert!(
        err.message().contains("/nonexistent/libonnxruntime.so.1"),
        "{err}"
    );
    element.set_state(gst::State::Null).unwrap();
}
