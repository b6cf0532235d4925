// SPDX-License-Identifier: MPL-2.0
//! The one mapping from engine failures to GStreamer error messages, used at
//! state changes and while streaming alike, and the error posted for a flow
//! return that stops the stream (with a `flow-return` details structure, as
//! livesync does).

use crate::engine::EngineError;

/// The error message of an engine failure: its domain says what failed, its
/// text is the engine's sentence.
pub fn engine_error_message(err: &EngineError) -> gst::ErrorMessage {
    match err {
        EngineError::Model(msg) => gst::error_msg!(gst::ResourceError::NotFound, ("{msg}")),
        EngineError::Runtime(msg) => gst::error_msg!(gst::LibraryError::Init, ("{msg}")),
        EngineError::InvalidInput(msg) => gst::error_msg!(gst::LibraryError::Settings, ("{msg}")),
        EngineError::Inference(msg) => gst::error_msg!(gst::LibraryError::Failed, ("{msg}")),
        EngineError::Cancelled => gst::error_msg!(gst::CoreError::Failed, ("cancelled")),
    }
}

/// Posts the error of a flow return that stopped the stream.
pub fn post_flow_error(element: &gst::Element, flow: gst::FlowError) {
    gst::element_error!(
        element,
        gst::StreamError::Failed,
        ("Internal data flow error."),
        ["streaming stopped, reason {flow:?}"],
        details: gst::Structure::builder("details")
            .field("flow-return", gst::FlowReturn::from(flow))
            .build()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_error_keeps_its_sentence() {
        gst::init().unwrap();
        for err in [
            EngineError::Model("the unet graph is missing".into()),
            EngineError::Runtime("no library".into()),
            EngineError::InvalidInput("bad steps".into()),
            EngineError::Inference("the vae_decoder graph failed".into()),
        ] {
            let message = engine_error_message(&err);
            let sentence = err.to_string();
            let text = sentence
                .split_once(": ")
                .map_or(sentence.as_str(), |(_, t)| t);
            assert!(format!("{message:?}").contains(text), "{message:?}");
        }
        let model = format!(
            "{:?}",
            engine_error_message(&EngineError::Model("x".into()))
        );
        assert!(model.contains("resource"), "{model}");
    }
}
