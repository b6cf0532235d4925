// SPDX-License-Identifier: MPL-2.0
//! The two passes at M3DDM+'s 5, 3, 1: the keyframe pass runs the stride-5
//! windows, the streaming pass the stride-3 and stride-1 ones and gives what
//! the whole-clip run at 5, 3, 1 gives; the plan file records the strides,
//! still reads a version-2 file (made at 15, 5, 1) and refuses a bad list.

use super::tests::{keyframe_plan_at, streamed};
use super::*;
use crate::engine::cancel::Cancel;
use crate::engine::stream::StreamOutpainter;
use crate::engine::test_support::{
    moving_column_frame as content_frame, one_step_params, portrait_layout as layout, scratch_dir,
    tiny_model,
};

fn plus() -> Strides {
    Strides::parse("5,3,1").unwrap()
}

#[test]
fn two_passes_at_5_3_1_equal_the_whole_clip_run_at_5_3_1() {
    let model = tiny_model();
    let layout = layout(model.canvas());
    let frames = 68;
    let plan = keyframe_plan_at(&model, &layout, frames, &plus());
    // M3DDM+'s stride-5 window over 68 frames: 0, 5, .., 65, padded with 67.
    let mut keyframes: Vec<usize> = (0..frames).step_by(5).collect();
    keyframes.push(frames - 1);
    assert_eq!(plan.latents.keyframes().to_vec(), keyframes);
    assert_eq!(plan.strides, plus());

    let models = std::slice::from_ref(&model);
    let params = one_step_params(11);
    let mut whole = StreamOutpainter::new(models, params, layout, 30.0, frames, plus()).unwrap();
    for k in 0..frames {
        whole.push(content_frame(&layout, k)).unwrap();
    }
    let expected = whole.run_next(true, &Cancel::new()).unwrap();
    let mut stream = PlannedStream::new(models, plan).unwrap();
    let got = streamed(&mut stream, &layout, frames);
    assert_eq!(got, expected);
}

#[test]
fn the_streaming_pass_at_5_3_1_holds_one_stride_three_span() {
    // A stride-3 window spans 46 frames; the hold stays near it however long
    // the clip (at 15, 5, 1 it is near the 76 of a stride-5 window).
    for frames in [300, 3000] {
        let hold = PassSplit::new(frames, &plus()).unwrap().streaming_hold();
        assert!((46..=50).contains(&hold), "{frames} frames: hold {hold}");
    }
}

/// The plan file's header as JSON, and the bytes after it.
fn split_file(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let magic = b"m3ddm-keyframe-plan\n".len();
    let len = u32::from_le_bytes(bytes[magic..magic + 4].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[magic + 4..magic + 4 + len]).unwrap();
    (header, bytes[magic + 4 + len..].to_vec())
}

fn join_file(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut bytes = b"m3ddm-keyframe-plan\n".to_vec();
    bytes.extend((json.len() as u32).to_le_bytes());
    bytes.extend(json);
    bytes.extend(data);
    bytes
}

#[test]
fn the_plan_file_records_the_strides() {
    let model = tiny_model();
    let layout = layout(model.canvas());
    let dir = scratch_dir("plan-strides");
    let path = dir.join("plus.plan");
    let plans = ShotPlans::new(vec![keyframe_plan_at(&model, &layout, 60, &plus())]).unwrap();
    write_plan(&path, &plans).unwrap();
    let read = read_plan(&path).unwrap();
    assert_eq!(read.strides(), &plus());
    assert_eq!(read, plans);

    let (header, data) = split_file(&std::fs::read(&path).unwrap());
    assert_eq!(header["format_version"], 3);
    assert_eq!(header["shots"][0]["strides"], serde_json::json!([5, 3, 1]));

    // A bad list, and a list the keyframes do not fit.
    let mut bad = header.clone();
    bad["shots"][0]["strides"] = serde_json::json!([3, 5, 1]);
    std::fs::write(&path, join_file(&bad, &data)).unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(
        err.contains("shot 0: the stride list 3,5,1 is not strictly decreasing"),
        "{err}"
    );
    bad["shots"][0]["strides"] = serde_json::json!([15, 5, 1]);
    std::fs::write(&path, join_file(&bad, &data)).unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(
        err.contains("keyframes are not those of a clip of 60 frames"),
        "{err}"
    );
    let mut missing = header.clone();
    missing["shots"][0]
        .as_object_mut()
        .unwrap()
        .remove("strides");
    std::fs::write(&path, join_file(&missing, &data)).unwrap();
    let err = read_plan(&path).unwrap_err().to_string();
    assert!(err.contains("shot 0 has no strides"), "{err}");
}

#[test]
fn a_version_2_plan_file_reads_as_15_5_1() {
    let model = tiny_model();
    let layout = layout(model.canvas());
    let path = scratch_dir("plan-v2").join("v2.plan");
    let official = Strides::official();
    let plans = ShotPlans::new(vec![keyframe_plan_at(&model, &layout, 60, &official)]).unwrap();
    write_plan(&path, &plans).unwrap();
    // A version-2 header: the same but for the version and the strides.
    let (mut header, data) = split_file(&std::fs::read(&path).unwrap());
    header["format_version"] = 2.into();
    header["shots"][0]
        .as_object_mut()
        .unwrap()
        .remove("strides");
    std::fs::write(&path, join_file(&header, &data)).unwrap();
    let read = read_plan(&path).unwrap();
    assert_eq!(read.strides(), &official);
    assert_eq!(read, plans);
}
