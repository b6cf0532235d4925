// SPDX-License-Identifier: MPL-2.0
//! Harness tests of the `strides` property (tiny model, 2 steps: at 1 step
//! the tiny model's frames do not depend on the guides): M3DDM+'s
//! 5,3,1 makes every frame and runs the windows M3DDM+'s loop plans; the
//! model's manifest gives the default; a plan records its strides and a run
//! at other strides refuses it; a bad list is refused at READY with a
//! sentence naming `strides`.

mod common;

use std::path::PathBuf;

use common::*;

/// Outpaint properties with 2 steps, the whole clip in one chunk, and these
/// additions (later ones win).
fn properties(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut all = outpaint_properties(226);
    all.extend(extra.iter().cloned());
    all
}

fn strides(list: &str) -> (&'static str, String) {
    ("strides", list.to_string())
}

fn run(props: &[(&'static str, String)], frames: u64) -> StreamRun {
    let run = run_stream(&as_refs(props), "RGB", 64, 36, frames);
    check_stream(&run, (9, 16));
    run
}

fn windows_run(run: &StreamRun) -> u64 {
    run.stats.get::<u64>("windows-run").unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m3ddm-strides-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn test_strides_5_3_1_make_every_frame_with_m3ddm_plus_windows() {
    let frames = 64;
    let plus = run(&properties(&[strides("5,3,1")]), frames);
    assert_eq!(plus.stats.get::<u64>("frames-generated").unwrap(), frames);
    // M3DDM+'s loop over 64 frames: stride 5, `range(0, 64 // 5 - 1, 15)`: 1
    // window; stride 3, `range(0, 20, 15)`: 2; stride 1, `range(0, 63, 15)`: 5.
    assert_eq!(windows_run(&plus), 1 + 2 + 5);
    // The official 15, 5, 1: 1 + 1 + 5 windows, and other frames.
    let official = run(&properties(&[]), frames);
    assert_eq!(windows_run(&official), 1 + 1 + 5);
    for (run, list) in [(&plus, "5,3,1"), (&official, "15,5,1")] {
        assert_eq!(run.stats.get::<String>("strides").unwrap(), list);
    }
    let differs =
        plus.outputs.iter().zip(&official.outputs).any(|(a, b)| {
            a.map_readable().unwrap().as_slice() != b.map_readable().unwrap().as_slice()
        });
    assert!(differs, "5,3,1 gave the frames of 15,5,1");
}

#[test]
fn test_the_manifest_gives_the_default_strides() {
    let model = model_copy("strides-default");
    edit_manifest(&model, |manifest| {
        manifest["strides"] = serde_json::json!([5, 3, 1])
    });
    let on_copy = |extra: &[(&'static str, String)]| {
        let mut props = properties(&[("model-path", model.display().to_string())]);
        props.extend(extra.iter().cloned());
        props
    };
    let frames = 52;
    let by_default = run(&on_copy(&[]), frames);
    let given = run(&properties(&[strides("5,3,1")]), frames);
    assert_same_frames(&by_default.outputs, &given.outputs);
    // The property wins over the manifest; empty means the manifest's.
    let overridden = run(&on_copy(&[strides("15,5,1")]), frames);
    let official = run(&properties(&[]), frames);
    assert_same_frames(&overridden.outputs, &official.outputs);
    let empty = run(&on_copy(&[strides("")]), frames);
    assert_same_frames(&empty.outputs, &given.outputs);
}

#[test]
fn test_a_plan_keeps_its_strides_and_refuses_others() {
    let frames = 64;
    let plan = scratch("plus.plan");
    let _ = std::fs::remove_file(&plan);
    let pass1 = properties(&[
        strides("5,3,1"),
        ("write-plan", plan.display().to_string()),
        ("plan-frames", frames.to_string()),
    ]);
    let written = run_stream(&as_refs(&pass1), "RGB", 64, 36, frames);
    assert_eq!(written.outputs.len(), frames as usize);
    let read = gstm3ddm::engine::twopass::read_plan(&plan).unwrap();
    assert_eq!(read.strides().to_string(), "5,3,1");

    let with_plan =
        |list: &str| properties(&[strides(list), ("plan-file", plan.display().to_string())]);
    let planned = run(&with_plan("5,3,1"), frames);
    let whole = run(&properties(&[strides("5,3,1")]), frames);
    assert_same_frames(&planned.outputs, &whole.outputs);

    // The tiny model's own strides are the official ones.
    for list in ["", "15,5,1"] {
        let err = ready_error(&as_refs(&with_plan(list))).to_string();
        assert!(
            err.contains("strides is 15,5,1, the plan's is 5,3,1"),
            "`{list}`: {err}"
        );
    }
    let err = ready_error(&as_refs(&properties(&[
        strides("1"),
        ("write-plan", scratch("single.plan").display().to_string()),
        ("plan-frames", "64".into()),
    ])))
    .to_string();
    assert!(
        err.contains("write-plan needs two or more strides"),
        "{err}"
    );
}

#[test]
fn test_bad_strides_are_refused_at_ready() {
    for (list, says) in [
        (
            "5,5,1",
            "strides=5,5,1: the stride list 5,5,1 is not strictly decreasing",
        ),
        ("5,3", "does not end in 1"),
        ("16,5,1", "each stride must be 1 to 15"),
        ("five,1", "`five`, not a whole number"),
        ("0", "the stride 0"),
    ] {
        let err = ready_error(&as_refs(&properties(&[strides(list)]))).to_string();
        assert!(err.contains(says), "`{list}`: {err}");
    }
    let model = model_copy("strides-bad-manifest");
    edit_manifest(&model, |manifest| {
        manifest["strides"] = serde_json::json!([3, 5, 1])
    });
    let err = ready_error(&as_refs(&properties(&[(
        "model-path",
        model.display().to_string(),
    )])))
    .to_string();
    assert!(
        err.contains("`strides`") && err.contains("not strictly decreasing"),
        "{err}"
    );
}
