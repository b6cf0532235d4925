// SPDX-License-Identifier: MPL-2.0
//! Named models in `m3ddm-reframe --model NAME`: a missing one is refused with the
//! command that makes it, before any file is read; one that `make model` put in the
//! well-known place ($M3DDM_MODELS_DIR here, holding the bundled tiny model under the
//! name m3ddm-plus) reframes a file.

#[allow(dead_code)]
mod media;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use media::{decode, make_mp4};

const REFRAME: &str = env!("CARGO_BIN_EXE_m3ddm-reframe");

fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("reframe_named_models")
        .join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn reframe(args: &[&str], models_dir: &Path) -> Output {
    let output = Command::new(REFRAME)
        .args(args)
        .env("M3DDM_MODELS_DIR", models_dir)
        .output()
        .expect("m3ddm-reframe starts");
    eprintln!(
        "m3ddm-reframe {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn a_missing_named_model_prints_the_command_that_makes_it() {
    let models = scratch("empty");
    for name in ["m3ddm", "m3ddm-plus"] {
        let run = reframe(&["no-such-input.mp4", "out.mp4", "--model", name], &models);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(
            stderr.contains(&format!("make model MODEL={name}")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&models.join(name).display().to_string()),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_named_model_in_the_models_directory_reframes_a_file() {
    let dir = scratch("installed");
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    std::os::unix::fs::symlink(tiny, models.join("m3ddm-plus")).unwrap();
    let input = dir.join("in.mp4");
    make_mp4(&input, 20, false);
    let output = dir.join("out.mp4");
    let run = reframe(
        &[
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--aspect",
            "1/1",
            "--model",
            "m3ddm-plus",
            "--steps",
            "1",
        ],
        &models,
    );
    assert!(run.status.success());
    let decoded = decode(&output);
    assert_eq!(decoded.video_frames, 20);
    assert_eq!(decoded.width, decoded.height);
}
