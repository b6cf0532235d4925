// SPDX-License-Identifier: MPL-2.0
//! Files in, files out: an H.264 + AAC MP4 made with GStreamer's own encoders
//! is reframed by `m3ddm-reframe` (two ratios in one run with blur and with
//! outpaint by the tiny model, MKV output, margins with --expand); each output
//! must decode to the same number of video frames at the asked aspect, with an
//! audio track of the same duration (±1 frame); --strides 5,3,1 gives the
//! same frames in two passes and in one, and says it ran at them. Bad inputs
//! must give a sentence and a non-zero exit, and the README's first pipeline
//! must run as written on a file made here.

// Only some of the shared media helpers are used here.
#[allow(dead_code)]
mod media;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use media::{
    Decoded, FPS, REFRAME, decode, make_audio_only_mp4, make_mp4, make_mp4_with_cut, reframe,
};
/// 2 s at 30 fps: long enough for two lookahead chunks of 16 frames and more.
const FRAMES: u64 = 60;
/// One video frame, the tolerance on the audio duration.
const FRAME: Duration = Duration::from_nanos(1_000_000_000 / FPS);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tiny_model() -> PathBuf {
    repo().join("models/tiny")
}

/// A fresh directory for one test's files.
fn scratch(tag: &str) -> PathBuf {
    media::scratch("reframe_files", tag)
}

/// The clip made once for the tests that only read it.
fn shared_input() -> &'static Path {
    static INPUT: OnceLock<PathBuf> = OnceLock::new();
    INPUT.get_or_init(|| {
        let path = scratch("input").join("in.mp4");
        make_mp4(&path, FRAMES, true);
        path
    })
}

/// Checks every frame and the frame size: the source keeps its size, the
/// other side grows to the aspect (rounded to an even size).
fn assert_video_reframed(input: &Decoded, output: &Decoded, aspect: (i32, i32)) {
    assert_eq!(output.video_frames, input.video_frames, "video frames");
    let (w, h) = (output.width, output.height);
    assert!(
        (w == input.width && h >= input.height) || (h == input.height && w >= input.width),
        "{w}x{h} from {}x{}",
        input.width,
        input.height
    );
    let error = (w * aspect.1 - h * aspect.0).abs();
    assert!(
        error <= 2 * aspect.0.max(aspect.1),
        "{w}x{h} is not {aspect:?}"
    );
}

/// Checks an output against its input: every frame, the aspect, the audio.
fn assert_reframed(input: &Decoded, output: &Decoded, aspect: (i32, i32)) {
    assert_video_reframed(input, output, aspect);
    let (Some(a), Some(b)) = (input.audio, output.audio) else {
        panic!("audio: input {:?}, output {:?}", input.audio, output.audio);
    };
    assert!(a.abs_diff(b) <= FRAME, "audio {a:?} in, {b:?} out");
}

/// `dir/out.mp4` and an aspect's tag → `dir/out-9x16.mp4`, the name a run with several ratios writes.
fn tagged(output: &Path, tag: &str) -> PathBuf {
    output.with_file_name(format!(
        "{}-{tag}.mp4",
        output.file_stem().unwrap().to_str().unwrap()
    ))
}

#[test]
fn blur_with_two_ratios_writes_two_files_with_every_frame_and_the_audio() {
    let input = shared_input();
    let source = decode(input);
    assert_eq!(source.video_frames, FRAMES);
    // The decoded AAC track is the tone plus the encoder's priming and the
    // padding of its last frame (mp4mux writes no edit list for them).
    let clip = Duration::from_nanos(FRAMES * 1_000_000_000 / FPS);
    let aac_frame = Duration::from_nanos(1024 * 1_000_000_000 / 44_100);
    let audio = source.audio.expect("the test file has audio");
    assert!(
        audio >= clip && audio <= clip + 2 * aac_frame,
        "{audio:?} of audio in a {clip:?} clip"
    );
    let output = scratch("blur").join("out.mp4");
    let run = reframe(
        &[
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--fill",
            "blur",
            "--aspect",
            "9/16",
            "--aspect",
            "1:1",
        ],
        &[],
    );
    assert!(run.success, "{}", run.stderr);
    assert!(!output.exists(), "several ratios write tagged files only");
    for (tag, aspect, size) in [("9x16", (9, 16), "160×284"), ("1x1", (1, 1), "160×160")] {
        let written = tagged(&output, tag);
        let line = format!(
            "wrote {}: {size} H.264, audio MPEG-4 AAC copied",
            written.display()
        );
        assert!(run.stderr.contains(&line), "{line}: {}", run.stderr);
        let result = decode(&written);
        assert_eq!(result.container, "ISO MP4/M4A");
        assert_reframed(&source, &result, aspect);
    }
    // stderr is a pipe: plain progress lines, the last one at every frame.
    let last = format!("{FRAMES}/{FRAMES} frames (100.0 %)");
    assert!(run.stderr.contains(&last), "{last}: {}", run.stderr);
}

#[test]
fn outpaint_with_two_ratios_and_a_scene_cut_from_one_generation() {
    let dir = scratch("outpaint");
    let input = dir.join("cut.mp4");
    make_mp4_with_cut(&input, FRAMES, true, Some(FRAMES / 2));
    let source = decode(&input);
    let output = dir.join("out.mp4");
    let run = reframe(
        &[
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--fill",
            "outpaint",
            "--model",
            tiny_model().to_str().unwrap(),
            "--steps",
            "1",
            "--lookahead",
            "16",
            "--aspect",
            "9/16",
            "--aspect",
            "4/3",
            "--scene-threshold",
            "0.3",
        ],
        &[],
    );
    assert!(run.success, "{}", run.stderr);
    assert!(run.stderr.contains("1 scene cut found"), "{}", run.stderr);
    let last = format!("{FRAMES}/{FRAMES} frames (100.0 %), ");
    assert!(
        run.stderr.contains(&last) && run.stderr.contains(" windows"),
        "{}",
        run.stderr
    );
    for (tag, aspect) in [("9x16", (9, 16)), ("4x3", (4, 3))] {
        assert_reframed(&source, &decode(&tagged(&output, tag)), aspect);
    }
}

#[test]
fn expand_grows_the_frame_by_margins() {
    let input = shared_input();
    let output = scratch("expand").join("wide.mp4");
    let run = reframe(
        &[
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--fill",
            "color",
            "--expand",
            "0,0.5",
        ],
        &[],
    );
    assert!(run.success, "{}", run.stderr);
    let (source, result) = (decode(input), decode(&output));
    // Half the width more on the left and on the right, the height as it is.
    assert_eq!(
        (result.width, result.height),
        (2 * source.width, source.height)
    );
    assert_reframed(&source, &result, (32, 9));
}

#[test]
fn matroska_output_by_extension() {
    let input = shared_input();
    let output = scratch("mkv").join("out-1x1.mkv");
    let run = reframe(
        &[
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--fill",
            "color",
            "--aspect",
            "1:1",
        ],
        &[],
    );
    assert!(run.success, "{}", run.stderr);
    let result = decode(&output);
    assert_eq!(result.container, "Matroska");
    assert_reframed(&decode(input), &result, (1, 1));
}

/// Runs a bad invocation: it must fail with a sentence containing `expected`
/// and leave no output file behind.
fn assert_refused(args: &[&str], env: &[(&str, &str)], expected: &str) {
    let run = reframe(args, env);
    assert!(!run.success, "{args:?} succeeded");
    assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn bad_inputs_are_refused_with_a_sentence() {
    let dir = scratch("bad");
    let input = shared_input().to_str().unwrap();
    let out = dir.join("out.mp4");
    let out = out.to_str().unwrap();
    let blur = ["--fill", "blur"];
    let with = |first: &[&str]| -> Vec<String> {
        first.iter().chain(&blur).map(|s| s.to_string()).collect()
    };
    let refused = |args: Vec<String>, expected: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&args, &[], expected);
    };

    refused(
        with(&["/no/such/file.mp4", out]),
        "/no/such/file.mp4: no such file",
    );
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a video\n".repeat(100)).unwrap();
    refused(with(&[text.to_str().unwrap(), out]), "is not a video file");
    let audio_only = dir.join("audio.m4a");
    make_audio_only_mp4(&audio_only);
    refused(
        with(&[audio_only.to_str().unwrap(), out]),
        "has no video stream (it has audio MPEG-4 AAC)",
    );
    refused(
        with(&[input, out, "--aspect", "9x16"]),
        "is not an aspect ratio like 9/16",
    );
    let absent = dir.join("absent.plan");
    refused(
        vec![
            input.into(),
            out.into(),
            "--model".into(),
            tiny_model().to_str().unwrap().into(),
            "--output-pass-plan".into(),
            absent.to_str().unwrap().into(),
            "--output-pass-cuts".into(),
            "0".into(),
        ],
        "cannot open the plan file",
    );
    refused(
        with(&[input, out, "--aspect", "0/16"]),
        "is not an aspect ratio like 9/16",
    );
    refused(
        with(&[input, out, "--aspect", "200/1"]),
        "outside the range 1/100 to 100/1",
    );
    refused(
        with(&[
            input, out, "--aspect", "9/16", "--aspect", "1/1", "--aspect", "9:16",
        ]),
        "--aspect 9/16 is given twice",
    );
    refused(
        with(&[input, out, "--aspect", "1/1", "--aspect", "2/2"]),
        "--aspect 2/2 is the same ratio as --aspect 1/1",
    );
    let nine: Vec<String> = (1..=9).map(|h| format!("{h}/10")).collect();
    let mut many = vec![input, out];
    many.extend(nine.iter().flat_map(|a| ["--aspect", a.as_str()]));
    refused(with(&many), "one run writes at most 8 files");
    refused(
        with(&[input, out, "--expand", "0.25", "--aspect", "1/1"]),
        "--expand 0.25 and --aspect 1/1 cannot be used together",
    );
    refused(
        with(&[
            input, out, "--expand", "0.25", "--aspect", "1/1", "--aspect", "9/16",
        ]),
        "--expand 0.25 makes one output and cannot be combined with several --aspect values (1/1, 9/16)",
    );
    refused(
        with(&[input, out, "--expand", "0.1,0.2,0.3"]),
        "expand `0.1,0.2,0.3` needs 1, 2 or 4 values (top, right, bottom, left)",
    );
    refused(
        with(&[input, out, "--strides", "4,2"]),
        "the stride list 4,2 does not end in 1",
    );
    refused(
        with(&[input, out, "--scene-threshold", "1.5"]),
        "`1.5` is not a scene threshold from 0 to 1",
    );
    refused(
        with(&[input, out, "--scene-threshold", "0.3"]),
        "--scene-threshold 0.3 needs --fill outpaint",
    );
    // The second file cannot be created: the first one is removed again.
    let taken = dir.join("taken.mp4");
    std::fs::create_dir(tagged(&taken, "1x1")).unwrap();
    refused(
        with(&[
            input,
            taken.to_str().unwrap(),
            "--aspect",
            "9/16",
            "--aspect",
            "1/1",
        ]),
        &format!(
            "cannot write {}: it is a directory",
            tagged(&taken, "1x1").display()
        ),
    );
    assert!(
        !tagged(&taken, "9x16").exists(),
        "a failed run removes the files it created"
    );
    refused(
        with(&[input, "/no/such/dir/out.mp4"]),
        "cannot write /no/such/dir/out.mp4: its directory does not exist",
    );
    refused(
        with(&[input, dir.to_str().unwrap()]),
        "name it .mp4, .m4v, .mov or .mkv",
    );
    refused(with(&[input, input]), "is the input file");
    refused(
        vec![input.into(), out.into()],
        "--fill outpaint needs --model DIR",
    );
    refused(
        vec![
            input.into(),
            out.into(),
            "--model".into(),
            "/no/such/model".into(),
        ],
        "--model /no/such/model: no such directory",
    );
    // A decoder nobody installed: the H.264 decoders ranked out of autoplugging.
    assert_refused(
        &[
            input, out, "--fill", "blur", "--aspect", "9/16", "--aspect", "1/1",
        ],
        &[(
            "GST_PLUGIN_FEATURE_RANK",
            "avdec_h264:NONE,openh264dec:NONE",
        )],
        "a GStreamer plugin is missing, H.264 (High Profile) decoder: \
         install the Debian package gstreamer1.0-libav",
    );
    for file in [
        out.into(),
        tagged(Path::new(out), "9x16"),
        tagged(Path::new(out), "1x1"),
    ] {
        assert!(
            !file.exists(),
            "a failed run leaves no output file ({})",
            file.display()
        );
    }
}

/// The first `gst-launch-1.0` command of README.md, its lines joined.
fn readme_first_pipeline() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("gst-launch-1.0 ")
        .expect("README.md shows a pipeline");
    let block = &readme[start..readme[start..].find("```").unwrap() + start];
    block.replace("\\\n", " ").trim().to_string()
}

#[test]
fn the_readme_first_pipeline_runs_as_written() {
    let command = readme_first_pipeline();
    assert!(command.contains("location=in.mp4") && command.contains("location=out.mp4"));
    // The README's relative paths: in.mp4, out.mp4 and models/ of the repository; its
    // model-path=m3ddm (what `make model` makes) is the tiny model installed under that name.
    let dir = scratch("readme");
    make_mp4(&dir.join("in.mp4"), 16, true);
    std::os::unix::fs::symlink(repo().join("models"), dir.join("models")).unwrap();
    let named = dir.join("named-models");
    std::fs::create_dir_all(&named).unwrap();
    std::os::unix::fs::symlink(tiny_model(), named.join("m3ddm")).unwrap();
    // The plugin cargo built with this test sits next to the test (deps/);
    // `cargo build` copies it up to target/release.
    let test_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let plugin_dir = [test_dir.as_path(), Path::new(REFRAME).parent().unwrap()]
        .into_iter()
        .find(|dir| dir.join("libgstm3ddm.so").is_file())
        .expect("the plugin libgstm3ddm.so is built (cargo build --release)");
    let started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &command])
        .current_dir(&dir)
        .env("GST_PLUGIN_PATH", plugin_dir)
        .env("M3DDM_MODELS_DIR", &named)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    eprintln!("{command}: {:?}", started.elapsed());
    assert!(status.success(), "{command} failed");
    let source = decode(&dir.join("in.mp4"));
    let result = decode(&dir.join("out.mp4"));
    assert_video_reframed(&source, &result, (9, 16));
}

/// Outpaints `input` into `output` with the tiny model at 1 step and `extra`
/// arguments; the run must succeed.
fn outpaint_tiny(input: &Path, output: &Path, extra: &[&str], env: &[(&str, &str)]) -> media::Run {
    let model = tiny_model();
    let mut args = vec![
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "1",
    ];
    args.extend_from_slice(extra);
    let run = reframe(&args, env);
    assert!(run.success, "{}", run.stderr);
    run
}

/// The decoded video of `path`, every frame's bytes one after the other.
fn raw_video(path: &Path) -> Vec<u8> {
    let raw = path.with_extension("raw");
    media::play(&format!(
        "filesrc location={} ! decodebin ! video/x-raw ! filesink location={}",
        path.display(),
        raw.display()
    ))
    .unwrap();
    std::fs::read(raw).unwrap()
}

#[test]
fn outpaint_reads_the_file_twice_and_gives_the_whole_clip_plan() {
    let dir = scratch("two-pass");
    let input = dir.join("in.mp4");
    let frames = 64; // strides 15, 5 and 1
    make_mp4(&input, frames, true);
    let source = decode(&input);
    // The keyframe pass's plan lives in TMPDIR until the output pass (a fresh
    // image of the program) has used it.
    let temp = dir.join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    let run_to = |output: &Path, extra: &[&str]| {
        let mut args = vec!["--aspect", "9/16", "--aspect", "1/1"];
        args.extend_from_slice(extra);
        outpaint_tiny(&input, output, &args, &[("TMPDIR", temp.to_str().unwrap())])
    };
    let two = dir.join("two.mp4");
    let run = run_to(&two, &[]);
    for pass in ["pass 1 of 2: keyframes of 64 frames", "pass 2 of 2"] {
        assert!(run.stderr.contains(pass), "{}", run.stderr);
    }
    let plans: Vec<_> = std::fs::read_dir(&temp)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "plan"))
        .collect();
    assert!(plans.is_empty(), "the run left {plans:?}");
    // One read with a lookahead over the whole file runs the same official plan.
    let one = dir.join("one.mp4");
    let run = run_to(&one, &["--one-pass", "--lookahead", "64"]);
    assert!(!run.stderr.contains("pass 1 of 2"), "{}", run.stderr);
    for (tag, aspect) in [("9x16", (9, 16)), ("1x1", (1, 1))] {
        let (two, one) = (tagged(&two, tag), tagged(&one, tag));
        assert_reframed(&source, &decode(&two), aspect);
        assert!(
            raw_video(&two) == raw_video(&one),
            "{tag}: the passes differ"
        );
    }
}

#[test]
fn a_scene_cut_with_two_passes_gives_a_plan_per_shot_and_every_frame() {
    let dir = scratch("two-pass-cut");
    let input = dir.join("cut.mp4");
    make_mp4_with_cut(&input, FRAMES, false, Some(FRAMES / 2));
    let output = dir.join("out.mp4");
    let run = reframe(
        &[
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--model",
            tiny_model().to_str().unwrap(),
            "--steps",
            "1",
            "--scene-threshold",
            "0.3",
        ],
        &[],
    );
    assert!(run.success, "{}", run.stderr);
    for pass in ["pass 1 of 2", "pass 2 of 2", "1 scene cut found"] {
        assert!(run.stderr.contains(pass), "{pass}: {}", run.stderr);
    }
    assert_eq!(decode(&output).video_frames, FRAMES, "frames out");
}

#[test]
fn strides_5_3_1_run_both_ways_over_every_frame_and_say_so() {
    // 60 frames: over the 50 a plan needs for strides other than 1.
    let input = shared_input();
    let source = decode(input);
    let dir = scratch("strides");
    let run_to = |name: &str, extra: &[&str]| {
        let output = dir.join(name);
        let mut args = vec!["--strides", "5,3,1"];
        args.extend_from_slice(extra);
        let run = outpaint_tiny(input, &output, &args, &[]);
        let said = "outpainted with the plan at strides 5,3,1";
        assert!(run.stderr.contains(said), "{said}: {}", run.stderr);
        assert_reframed(&source, &decode(&output), (9, 16));
        (output, run.stderr)
    };
    let (two, stderr) = run_to("two.mp4", &[]);
    assert!(
        stderr.contains("pass 1 of 2: keyframes of 60 frames"),
        "{stderr}"
    );
    // One read with the whole clip in its lookahead runs the same plan.
    let (one, stderr) = run_to("one.mp4", &["--one-pass", "--lookahead", "60"]);
    assert!(!stderr.contains("pass 1 of 2"), "{stderr}");
    assert!(raw_video(&two) == raw_video(&one), "the passes differ");
}
