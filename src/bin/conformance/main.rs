// SPDX-License-Identifier: MPL-2.0
//! `m3ddm-conformance DIR`: runs every case directory (one with a `case.json`)
//! in DIR and prints `PASS name max_abs_err=…` or `FAIL name: …` per case, then
//! `N passed, M failed`. Exits non-zero when a case fails, a kind is unknown,
//! or no case ran.

mod golden;
mod model_cases;
mod numeric_cases;

use std::path::PathBuf;
use std::process::ExitCode;

use golden::{Case, Pass};

fn run_case(case: &Case, models: &mut model_cases::ModelCache) -> Result<Pass, String> {
    match case.kind.as_str() {
        "scheduler" => numeric_cases::scheduler(case).map(Pass::from),
        "geometry" => numeric_cases::geometry(case).map(Pass::from),
        "plan" => numeric_cases::plan(case).map(Pass::from),
        "manifest" => model_cases::manifest(case, models).map(Pass::from),
        "unet" => model_cases::unet(case, models).map(Pass::from),
        "vae" => model_cases::vae(case, models).map(Pass::from),
        "window" => model_cases::window(case, models),
        "clip" => model_cases::clip(case, models),
        other => Err(format!("unknown case kind `{other}`")),
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
        let result = Case::load(&case_dir).and_then(|case| run_case(&case, &mut models));
        match result {
            Ok(pass) => {
                passed += 1;
                println!("PASS {name} {}", pass.describe());
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
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
