// SPDX-License-Identifier: MPL-2.0
//! Property-based fuzzing of `m3ddmoutpaint`: random scripts of frames, caps
//! (in and outside the template, 1×1 to 7680×4320), events, flushes, seeks,
//! EOS, property and state changes, run on a Harness with a deadline per step
//! and checked against a model of the element (`model.rs`): no panic, no
//! stall, every frame once and in order or dropped by a flush, its source
//! pixels bit-exact. proptest shrinks a failing script to a minimal one and
//! keeps its seed in `regressions-*.txt`; each bug found also has an explicit
//! test in `regressions.rs`.
//!
//! Case counts: `M3DDM_FUZZ_CASES_BLUR` (default 300) and
//! `M3DDM_FUZZ_CASES_OUTPAINT` (default 24); `M3DDM_FUZZ_SEED` a number or
//! `random` (default a fixed seed, so that `make test` runs the same cases).
//! The parsers of manifests and plan files are fuzzed in `parsers.rs`.

#[path = "../common/mod.rs"]
mod common;
mod model;
mod parsers;
mod regressions;
mod runner;
mod script;
mod workers;

use std::cell::Cell;
use std::time::Instant;

use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};

use script::Mode;

const DEFAULT_SEED: u64 = 0x6d33_6464_6d66_757a;

fn env_u32(name: &str, default: u32) -> u32 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number of cases")),
        Err(_) => default,
    }
}

fn seed() -> RngSeed {
    match std::env::var("M3DDM_FUZZ_SEED").as_deref() {
        Ok("random") => RngSeed::Random,
        Ok(value) => RngSeed::Fixed(value.parse().unwrap_or_else(|_| {
            panic!("M3DDM_FUZZ_SEED={value} is neither a number nor `random`")
        })),
        Err(_) => RngSeed::Fixed(DEFAULT_SEED),
    }
}

/// Runs `cases` random scripts of `mode`, failed seeds kept in `regressions`.
fn fuzz(mode: Mode, cases: u32, regressions: &'static str) {
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        rng_seed: seed(),
        max_shrink_iters: 400,
        max_shrink_time: 30 * 60 * 1000,
        ..Config::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let run = Cell::new(0u32);
    let frames = Cell::new(0u64);
    let result = runner.run(&script::script(mode), |script| {
        run.set(run.get() + 1);
        let outcome = runner::run_case(mode, &script).map_err(TestCaseError::fail)?;
        frames.set(frames.get() + outcome.frames_out);
        Ok(())
    });
    let (run, frames) = (run.get(), frames.get());
    eprintln!(
        "fuzz {mode:?}: {run} scripts run ({cases} cases asked, seed {}), {frames} frames out, in {:.1} s",
        seed(),
        started.elapsed().as_secs_f64()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, script)) => {
            panic!("fuzz {mode:?} failed: {reason}\nminimal script: {script:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("fuzz {mode:?} aborted: {reason}"),
    }
}

#[test]
fn fuzz_blur() {
    let regressions = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/regressions-blur.txt"
    );
    fuzz(
        Mode::Blur,
        env_u32("M3DDM_FUZZ_CASES_BLUR", 300),
        regressions,
    );
}

#[test]
fn fuzz_outpaint() {
    let regressions = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/regressions-outpaint.txt"
    );
    fuzz(
        Mode::Outpaint,
        env_u32("M3DDM_FUZZ_CASES_OUTPAINT", 24),
        regressions,
    );
}
