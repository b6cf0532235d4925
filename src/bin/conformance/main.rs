// SPDX-License-Identifier: MPL-2.0
//! `m3ddm-conformance DIR`: runs every case directory (one with a `case.json`)
//! in DIR and prints `PASS name max_abs_err=…` or `FAIL name: …` per case, then
//! `N passed, M failed`. A `clip` case runs both ways, whole and in two
//! passes, each on a line of its own (`PASS clip-x two-pass …`). Exits non-zero when a case fails, a kind is unknown,
//! or no case ran.

mod clip_cases;
mod golden;
mod model_cases;
mod numeric_cases;

use std::path::PathBuf;
use std::process::ExitCode;

use golden::{Case, Pass};

/// The case's results: one, or for a `clip` case one per way of running it
/// (the label follows the case's name on its line).
fn run_case(
    case: &Case,
    models: &mut model_cases::ModelCache,
) -> Vec<(&'static str, Result<Pass, String>)> {
    let one = |result: Result<Pass, String>| vec![("", result)];
    match case.kind.as_str() {
        "scheduler" => one(numeric_cases::scheduler(case).map(Pass::from)),
        "geometry" => one(numeric_cases::geometry(case).map(Pass::from)),
        "plan" => one(numeric_cases::plan(case).map(Pass::from)),
        "manifest" => one(model_cases::manifest(case, models).map(Pass::from)),
        "unet" => one(model_cases::unet(case, models).map(Pass::from)),
        "vae" => one(model_cases::vae(case, models).map(Pass::from)),
        "window" => one(model_cases::window(case, models)),
        "clip" => vec![
            ("", clip_cases::clip(case, models)),
            (" two-pass", clip_cases::clip_two_pass(case, models)),
        ],
        other => one(Err(format!("unknown case kind `{other}`"))),
    }
}

fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/golden".into()),
    );
    let cases = match golden::list_cases(&dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot read the cases in {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let mut models = model_cases::ModelCache::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for case_dir in cases {
        let name = case_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let results = match Case::load(&case_dir) {
            Ok(case) => run_case(&case, &mut models),
            Err(why) => vec![("", Err(why))],
        };
        for (label, result) in results {
            match result {
                Ok(pass) => {
                    passed += 1;
                    println!("PASS {name}{label} {}", pass.describe());
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL {name}{label}: {why}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
