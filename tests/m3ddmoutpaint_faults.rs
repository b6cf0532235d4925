// SPDX-License-Identifier: MPL-2.0
//! Faults while running (issue 12): an ONNX Runtime failure in the middle of a
//! chunk, from a copy of the tiny model whose U-Net fails at its second call of
//! the second chunk (`tests/fixtures/faulty_unet.py`), must give an error
//! naming the graph and stop the stream cleanly: no hang, no panic, every
//! frame out before it exactly once. A model directory removed or replaced
//! while the element runs leaves the stream alone, and the next READY checks it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;

const LOOKAHEAD: u32 = 16;
/// What the error of the failing U-Net says.
const FAULT: &str = "the U-Net graph (unet.onnx) failed at run time";

/// A copy of the tiny model whose U-Net fails at run time (see the module notes).
fn faulty_model(tag: &str) -> PathBuf {
    let dir = model_copy(tag);
    run_fixture("faulty_unet.py", &dir);
    dir
}

fn properties(model: &Path) -> Vec<(&'static str, String)> {
    let mut properties = outpaint_properties(LOOKAHEAD);
    for (name, value) in &mut properties {
        if *name == "model-path" {
            *value = model.display().to_string();
        }
    }
    properties
}

/// Runs `change` on another thread and fails the test if it takes over a minute.
fn within_a_minute<T: Send + 'static>(
    what: &str,
    change: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(change());
    });
    receiver
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// A playing harness on `model` with 96×54 RGB caps, its element posting to its own bus.
fn playing_harness(
    model: &Path,
) -> (
    gst_check::Harness,
    gst::Element,
    gst::Bus,
    gst_video::VideoInfo,
) {
    let properties = properties(model);
    let mut h = harness(&as_refs(&properties));
    let element = h.element().unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let info = video_info("RGB", 96, 54);
    h.play();
    h.set_src_caps(info.to_caps().unwrap());
    (h, element, bus, info)
}

#[test]
fn test_a_graph_failing_mid_chunk_stops_the_harness_stream_cleanly() {
    let model = faulty_model("harness");
    let (mut h, element, bus, info) = playing_harness(&model);
    // The first chunk's frames leave; the second chunk fails; upstream learns it.
    let mut refused = None;
    for index in 0..3 * u64::from(LOOKAHEAD) {
        if let Err(flow) = h.push(make_frame(&info, index, 0)) {
            refused = Some((index, flow));
            break;
        }
    }
    let (index, flow) = refused.expect("a push refused after the failure");
    assert_eq!(flow, gst::FlowError::Error);
    assert!(
        index >= 2 * u64::from(LOOKAHEAD) - 1,
        "refused at frame {index}"
    );
    let err = error_of(
        &bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Error])
            .expect("an error message"),
    );
    eprintln!("{err}");
    assert!(err.message().contains(FAULT), "{err}");
    assert!(err.message().contains("Reshape"), "{err}");
    assert!(err.matches(gst::LibraryError::Failed), "{err}");
    let mut pts = Vec::new();
    while let Some(buffer) = h.try_pull() {
        pts.push(buffer.pts().unwrap().nseconds() / FRAME_NS);
    }
    let first_chunk: Vec<u64> = (0..u64::from(LOOKAHEAD)).collect();
    assert_eq!(
        pts, first_chunk,
        "each frame of the first chunk once, in order"
    );
    within_a_minute("NULL after the failure", move || {
        element.set_state(gst::State::Null)
    })
    .expect("NULL after the failure");
    let _ = std::fs::remove_dir_all(&model);
}

#[test]
fn test_a_graph_failing_mid_chunk_stops_a_pipeline_with_an_error() {
    init();
    let model = faulty_model("pipeline");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={} ! video/x-raw,format=I420,width=96,height=54,framerate=30/1 \
         ! m3ddmoutpaint name=m lookahead={LOOKAHEAD} steps=2 execution-provider=cpu model-path={} \
         ! fakesink name=out sync=false",
        4 * LOOKAHEAD,
        model.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    pipeline
        .by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                record
                    .lock()
                    .unwrap()
                    .push(buffer.pts().unwrap().nseconds());
            }
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("an error within 300 s");
    let err = error_of(&message);
    eprintln!("{err}");
    assert!(err.message().contains(FAULT), "{err}");
    assert_eq!(
        message.src().map(|s| s.name().to_string()).as_deref(),
        Some("m"),
        "the element posts it"
    );
    let result = within_a_minute("the pipeline to NULL", move || {
        let result = pipeline.set_state(gst::State::Null);
        (result, pipeline.state(gst::ClockTime::ZERO).1)
    });
    assert_eq!(
        result,
        (Ok(gst::StateChangeSuccess::Success), gst::State::Null)
    );
    let seen = seen.lock().unwrap();
    let expected: Vec<u64> = (0..u64::from(LOOKAHEAD))
        .map(|k| gst::ClockTime::SECOND.nseconds() * k / 30)
        .collect();
    assert_eq!(
        *seen, expected,
        "the first chunk's frames, each once, in order"
    );
    let _ = std::fs::remove_dir_all(&model);
}

/// Replaces `dir` by a copy of the tiny model whose `unet.onnx` is its VAE decoder.
fn replace_with_wrong_unet(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(model_with_vae_as_unet("staged"), dir).unwrap();
}

#[test]
fn test_a_model_directory_changed_while_running_is_checked_at_the_next_ready() {
    let model = model_copy("replaced");
    let (mut h, element, bus, info) = playing_harness(&model);
    let loads = || gstm3ddm::engine::model::loads_of(&model);
    assert_eq!(loads(), 1);
    let frames = 2 * u64::from(LOOKAHEAD) + 4;
    for index in 0..frames {
        if index == 4 {
            std::fs::remove_dir_all(&model).unwrap();
        }
        if index == u64::from(LOOKAHEAD) + 4 {
            replace_with_wrong_unet(&model);
        }
        assert_eq!(
            h.push(make_frame(&info, index, 0)),
            Ok(gst::FlowSuccess::Ok)
        );
    }
    assert!(h.push_event(gst::event::Eos::new()));
    for index in 0..frames {
        let buffer = pull_within(&mut h, Duration::from_secs(300))
            .unwrap_or_else(|| panic!("frame {index} out"));
        assert_eq!(buffer.pts().unwrap().nseconds(), index * FRAME_NS);
    }
    assert!(bus.pop_filtered(&[gst::MessageType::Error]).is_none());
    // The next READY→PAUSED and NULL→READY check the directory again.
    let wrong = "unet.onnx has the inputs of the VAE decoder graph";
    element.set_state(gst::State::Ready).unwrap();
    assert!(element.set_state(gst::State::Paused).is_err());
    let err = error_of(&bus.pop_filtered(&[gst::MessageType::Error]).unwrap());
    eprintln!("{err}");
    assert!(err.message().contains(wrong), "{err}");
    element.set_state(gst::State::Null).unwrap();
    assert!(element.set_state(gst::State::Ready).is_err());
    let err = error_of(&bus.pop_filtered(&[gst::MessageType::Error]).unwrap());
    assert!(err.message().contains(wrong), "{err}");
    // Put right, it loads again.
    std::fs::remove_dir_all(&model).unwrap();
    std::fs::rename(model_copy("restored"), &model).unwrap();
    element.set_state(gst::State::Null).unwrap();
    element.set_state(gst::State::Ready).unwrap();
    assert_eq!(loads(), 2);
    // Unchanged, it is checked but not loaded again.
    element.set_state(gst::State::Paused).unwrap();
    element.set_state(gst::State::Ready).unwrap();
    element.set_state(gst::State::Paused).unwrap();
    assert_eq!(loads(), 2);
    element.set_state(gst::State::Null).unwrap();
    let _ = std::fs::remove_dir_all(&model);
}
