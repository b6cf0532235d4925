// SPDX-License-Identifier: MPL-2.0
//! Bad input stays a sentence (issue 12): model directories that cannot work
//! (shapes the engine cannot use, a graph of another model part, fp16 graphs
//! on the CPU provider), a lookahead whose frames would not fit in memory, and
//! caps whose output would be larger than 16384 pixels on a side. Each is an
//! error message at READY or at the caps, and the test reads its sentence.

mod common;

use std::path::Path;

use common::*;

/// The tiny model's outpaint properties with `model-path` set to `model`.
fn outpaint_with(model: &Path, lookahead: u32) -> Vec<(&'static str, String)> {
    let mut properties = outpaint_properties(lookahead);
    for (name, value) in &mut properties {
        if *name == "model-path" {
            *value = model.display().to_string();
        }
    }
    properties
}

fn ready_error_with(model: &Path, lookahead: u32) -> gst::glib::Error {
    let err = ready_error(&as_refs(&outpaint_with(model, lookahead)));
    eprintln!("{err}");
    err
}

#[test]
fn test_a_manifest_with_wrong_shapes_is_refused_at_ready() {
    let model = model_copy("shapes");
    edit_manifest(&model, |manifest| {
        manifest["graphs"]["vae_decoder"]["outputs"][0]["shape"] =
            serde_json::json!(["batch", 4, "image_height", "image_width"]);
    });
    let err = ready_error_with(&model, 16);
    let _ = std::fs::remove_dir_all(&model);
    assert!(
        err.message().contains(
            "graph `vae_decoder`: `images` has shape [?,4,?,?] where the engine needs [N,3,H,W]"
        ),
        "{err}"
    );
    assert!(err.matches(gst::ResourceError::NotFound), "{err}");
}

#[test]
fn test_the_vae_where_the_unet_belongs_is_refused_at_ready() {
    let model = model_with_vae_as_unet("vae-as-unet");
    let err = ready_error_with(&model, 16);
    let _ = std::fs::remove_dir_all(&model);
    assert!(
        err.message().contains(
            "unet.onnx has the inputs of the VAE decoder graph ([\"latents\"]), not those of the U-Net"
        ),
        "{err}"
    );
}

#[test]
fn test_an_fp16_model_on_the_cpu_provider_is_refused_at_ready() {
    let model = model_copy("fp16");
    run_fixture("fp16_model.py", &model);
    let err = ready_error_with(&model, 16);
    let _ = std::fs::remove_dir_all(&model);
    assert!(
        err.message().contains(&format!(
            "{} holds fp16 graphs, which the CPU execution provider cannot run",
            model.display()
        )) && err.message().contains("execution-provider=cuda"),
        "{err}"
    );
    assert!(err.matches(gst::LibraryError::Init), "{err}");
}

/// What the refusal of a lookahead says about its memory.
fn assert_memory_refusal(err: &gst::glib::Error, lookahead: u32) {
    let message = err.message();
    assert!(
        message.contains(&format!("lookahead {lookahead} holds about "))
            && message.contains("GB of memory available: use a lookahead of at most"),
        "{err}"
    );
    assert!(err.matches(gst::ResourceError::NoSpaceLeft), "{err}");
}

#[test]
fn test_a_lookahead_larger_than_memory_is_refused_at_ready() {
    // At a 2048 canvas, 10,000 frames hold about 514 GB before any source frame.
    let model = model_copy("big-canvas");
    edit_manifest(&model, |manifest| manifest["canvas"] = 2048.into());
    let err = ready_error_with(&model, 10_000);
    let _ = std::fs::remove_dir_all(&model);
    assert_memory_refusal(&err, 10_000);
    assert!(err.message().contains("10000 frames of 51.4 MB"), "{err}");
}

#[test]
fn test_a_lookahead_larger_than_memory_for_the_caps_is_refused() {
    // The tiny model's canvas holds 0.2 MB a frame: what does not fit is 10,000 8K frames.
    let properties = outpaint_with(&tiny_model(), 10_000);
    let err = caps_error(
        &as_refs(&properties),
        "video/x-raw,format=RGBA,width=7680,height=4320,framerate=30/1",
    );
    eprintln!("{err}");
    assert_memory_refusal(&err, 10_000);
    assert!(err.message().contains("10000 frames of 132.9 MB"), "{err}");
}

#[test]
fn test_caps_whose_output_exceeds_16384_pixels_are_refused() {
    // 16000×9000 to 9:16 needs 16000×28444.
    let err = caps_error(
        &[("fill-mode", "blur")],
        "video/x-raw,format=RGB,width=16000,height=9000,framerate=30/1",
    );
    eprintln!("{err}");
    assert!(
        err.message()
            .contains("16000x9000 source would give a 16000x28444 output")
            && err.message().contains("more than 16384 pixels on a side"),
        "{err}"
    );
    assert!(err.matches(gst::StreamError::Format), "{err}");
}
