// SPDX-License-Identifier: MPL-2.0
//! Property-based fuzzing of the two parsers of files users hand over: a
//! model directory's `manifest.json` (read and its graph files checked, its
//! scheduler settings read) and a keyframe plan file. Valid files are
//! mutated (truncated, bytes changed or inserted, JSON values replaced by
//! hostile ones: huge or negative sizes, paths out of the directory, wrong
//! types; a plan's header re-encoded so that its checksum still holds) and
//! each must give a value or an error sentence naming the file, never a
//! panic, with at most [`MAX_PARSE_BYTES`] allocated at once (counted on the
//! parsing thread by this binary's allocator). Explicit cases: a graph path
//! that leaves the directory (`..`, absolute, a link out) and plans that
//! announce more frames, keyframes or larger latents than they hold.
//! Case count: `M3DDM_FUZZ_CASES_PARSERS` (default 300 per parser).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gstm3ddm::engine::SchedulerKind;
use gstm3ddm::engine::error::EngineError;
use gstm3ddm::engine::geometry::{CanvasLayout, Rect};
use gstm3ddm::engine::manifest::{Manifest, check_graph_files};
use gstm3ddm::engine::planner::Strides;
use gstm3ddm::engine::scheduler::SchedulerConfig;
use gstm3ddm::engine::twopass::{KeyframePlan, PassSplit, PlanLatents, ShotPlans};
use gstm3ddm::engine::twopass::{read_plan, write_plan};
use gstm3ddm::engine::window::DenoiseParams;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use super::common::{model_copy, tiny_model};

/// The most a parser may hold at once on one of these small files.
const MAX_PARSE_BYTES: isize = 32 << 20;

/// The system allocator, counting the bytes live on each thread and their peak.
struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + delta);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: every call is forwarded to `System`; the counting touches only
// const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        count(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `parse`, returning its result and the most bytes it held at once.
fn peak_of<T>(parse: impl FnOnce() -> T) -> (T, isize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let result = parse();
    (result, PEAK.with(Cell::get) - base)
}

/// One change to a file.
#[derive(Debug, Clone)]
enum Mutation {
    /// Cut the file at this fraction of its length.
    Truncate(f64),
    /// Set the byte at this fraction of the length.
    SetByte(f64, u8),
    /// Insert bytes at this fraction of the length.
    Insert(f64, Vec<u8>),
    /// Replace the JSON value at this fraction of the list of paths by a hostile one.
    ReplaceJson(f64, Value),
}

fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(u64::MAX)),
        Just(Value::from(1_000_000_000_000u64)),
        Just(Value::from(1u64 << 40)),
        Just(Value::from(-1)),
        Just(Value::from(0)),
        Just(Value::from(7)),
        Just(Value::from(1.0e300)),
        Just(Value::from("../unet.onnx")),
        Just(Value::from("/etc/passwd")),
        Just(Value::from("..")),
        Just(Value::from("")),
        Just(Value::from("sub/unet.onnx")),
        Just(Value::Null),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([u64::MAX, 0, -5])),
        any::<i64>().prop_map(Value::from),
        "[a-z./]{0,12}".prop_map(Value::from),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (0.0..1.0f64).prop_map(Mutation::Truncate),
        1 => (0.0..1.0f64, any::<u8>()).prop_map(|(at, b)| Mutation::SetByte(at, b)),
        1 => (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        3 => (0.0..1.0f64, hostile_value()).prop_map(|(at, v)| Mutation::ReplaceJson(at, v)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 0..4)
}

fn index_at(fraction: f64, len: usize) -> usize {
    ((fraction * len as f64) as usize).min(len.saturating_sub(1))
}

/// JSON pointers of every value in `json`.
fn pointers(json: &Value, at: String, all: &mut Vec<String>) {
    match json {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| pointers(v, format!("{at}/{k}"), all)),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), all)),
        _ => {}
    }
    all.push(at);
}

/// `json` with one of its values replaced.
fn replace_json(json: &mut Value, fraction: f64, value: &Value) {
    let mut all = Vec::new();
    pointers(json, String::new(), &mut all);
    let at = &all[index_at(fraction, all.len())];
    if let Some(slot) = json.pointer_mut(at) {
        *slot = value.clone();
    }
}

/// Applies the byte mutations to `bytes` (the JSON ones are applied before).
fn mutate_bytes(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        match m {
            Mutation::Truncate(at) => bytes.truncate(index_at(*at, bytes.len())),
            Mutation::SetByte(at, b) if !bytes.is_empty() => {
                let i = index_at(*at, bytes.len());
                bytes[i] = *b;
            }
            Mutation::Insert(at, more) => {
                let i = index_at(*at, bytes.len() + 1);
                bytes.splice(i..i, more.iter().copied());
            }
            _ => {}
        }
    }
}

fn env_cases() -> u32 {
    match std::env::var("M3DDM_FUZZ_CASES_PARSERS") {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("M3DDM_FUZZ_CASES_PARSERS={value} is not a number")),
        Err(_) => 300,
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: env_cases(),
        failure_persistence: None,
        rng_seed: super::seed(),
        ..Config::default()
    })
}

/// A refusal must be a sentence that names the file.
fn check_refusal(err: &EngineError, name: &str) -> Result<(), TestCaseError> {
    let text = err.to_string();
    prop_assert!(
        text.contains(name) && text.len() > name.len() + 10,
        "the refusal does not name {name}: {text}"
    );
    Ok(())
}

fn manifest(dir: &Path) -> Manifest {
    Manifest::read(dir).unwrap()
}

/// What a manifest leads to: the model's structure, its files, the schedulers' tables.
fn use_manifest(dir: &Path) -> Result<(), EngineError> {
    let manifest = Manifest::read(dir)?;
    check_graph_files(dir, &manifest)?;
    for kind in [
        SchedulerKind::Pndm,
        SchedulerKind::Ddim,
        SchedulerKind::DpmSolverPp,
    ] {
        SchedulerConfig::from_json(kind, &manifest.scheduler_config)?.alphas_cumprod()?;
    }
    Ok(())
}

#[test]
fn fuzz_manifest_parser() {
    let dir = model_copy("fuzz-manifest");
    let original: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let (accepted, refused) = (Cell::new(0), Cell::new(0));
    let result = runner().run(&mutations(), |mutations| {
        let mut json = original.clone();
        for m in &mutations {
            if let Mutation::ReplaceJson(at, value) = m {
                replace_json(&mut json, *at, value);
            }
        }
        let mut bytes = serde_json::to_vec_pretty(&json).unwrap();
        mutate_bytes(&mut bytes, &mutations);
        std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
        let (outcome, peak) = peak_of(|| use_manifest(&dir));
        prop_assert!(peak < MAX_PARSE_BYTES, "the manifest took {peak} bytes");
        match outcome {
            Ok(()) => accepted.set(accepted.get() + 1),
            Err(err) => {
                refused.set(refused.get() + 1);
                // The model's refusals name its directory; the scheduler's (read
                // when a stream starts) are sentences about its settings.
                if Manifest::read(&dir).is_err()
                    || check_graph_files(&dir, &manifest(&dir)).is_err()
                {
                    check_refusal(&err, &dir.display().to_string())?;
                } else {
                    let text = err.to_string();
                    prop_assert!(text.split(' ').count() > 4, "not a sentence: {text}");
                }
            }
        }
        Ok(())
    });
    eprintln!(
        "fuzz manifest: {} accepted, {} refused",
        accepted.get(),
        refused.get()
    );
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("fuzz manifest failed: {e}");
    }
}

/// The latent values of a canvas of 16 (2×2 latents of 4 channels).
const CANVAS: u32 = 16;
const LATENT_LEN: usize = 16;

/// A valid plan of two shots (64 frames with keyframes, then 20 without).
fn valid_plan() -> ShotPlans {
    let shot = |frames: usize, seed: f32| {
        let split = PassSplit::new(frames, &Strides::official()).unwrap();
        let keyframes: BTreeMap<usize, Vec<f32>> = split
            .keyframes()
            .into_iter()
            .map(|f| (f, vec![seed + f as f32; LATENT_LEN]))
            .collect();
        KeyframePlan {
            total_frames: frames,
            fps: 25.0,
            layout: CanvasLayout {
                canvas: CANVAS,
                content: Rect {
                    x0: 0,
                    y0: 4,
                    x1: 16,
                    y1: 12,
                },
                output_crop: Rect {
                    x0: 4,
                    y0: 0,
                    x1: 12,
                    y1: 16,
                },
            },
            params: DenoiseParams::default(),
            model_identity: "fuzz".into(),
            strides: Strides::official(),
            latents: PlanLatents::held(vec![seed; 16 * LATENT_LEN], keyframes),
        }
    };
    ShotPlans::new(vec![shot(64, 1.0), shot(20, 2.0)]).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m3ddm-fuzz-parsers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A plan file's parts: magic line, header JSON, data.
fn plan_parts(bytes: &[u8]) -> (Vec<u8>, Value, Vec<u8>) {
    let magic_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let len = u32::from_le_bytes(bytes[magic_len..magic_len + 4].try_into().unwrap()) as usize;
    let header = &bytes[magic_len + 4..magic_len + 4 + len];
    (
        bytes[..magic_len].to_vec(),
        serde_json::from_slice(header).unwrap(),
        bytes[magic_len + 4 + len..].to_vec(),
    )
}

fn plan_bytes(magic: &[u8], header: &Value, data: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut bytes = magic.to_vec();
    bytes.extend((json.len() as u32).to_le_bytes());
    bytes.extend(json);
    bytes.extend(data);
    bytes
}

/// A valid plan file's parts, written once.
fn valid_plan_parts() -> &'static (Vec<u8>, Value, Vec<u8>) {
    static PARTS: OnceLock<(Vec<u8>, Value, Vec<u8>)> = OnceLock::new();
    PARTS.get_or_init(|| {
        let path = scratch("valid.plan");
        write_plan(&path, &valid_plan()).unwrap();
        let parts = plan_parts(&std::fs::read(&path).unwrap());
        assert_eq!(read_plan(&path).unwrap(), valid_plan());
        parts
    })
}

/// Writes a plan whose header is `edit`ed (its length re-encoded, the data
/// and so its checksum unchanged), reads it, and returns the outcome and peak.
fn read_edited_plan(
    name: &str,
    edit: impl FnOnce(&mut Value),
) -> (Result<ShotPlans, EngineError>, isize, PathBuf) {
    let (magic, header, data) = valid_plan_parts();
    let mut header = header.clone();
    edit(&mut header);
    let path = scratch(name);
    std::fs::write(&path, plan_bytes(magic, &header, data)).unwrap();
    let (outcome, peak) = peak_of(|| read_plan(&path));
    (outcome, peak, path)
}

#[test]
fn fuzz_plan_file_parser() {
    let (magic, header, data) = valid_plan_parts();
    let path = scratch("fuzzed.plan");
    let (accepted, refused) = (Cell::new(0), Cell::new(0));
    let result = runner().run(&mutations(), |mutations| {
        let mut header = header.clone();
        for m in &mutations {
            if let Mutation::ReplaceJson(at, value) = m {
                replace_json(&mut header, *at, value);
            }
        }
        let mut bytes = plan_bytes(magic, &header, data);
        mutate_bytes(&mut bytes, &mutations);
        std::fs::write(&path, &bytes).unwrap();
        let (outcome, peak) = peak_of(|| {
            read_plan(&path).and_then(|plans| {
                // What the streaming pass asks of a plan read.
                for shot in &plans.shots {
                    shot.streaming_hold();
                    shot.latents.global()?;
                }
                Ok(plans)
            })
        });
        prop_assert!(peak < MAX_PARSE_BYTES, "the plan took {peak} bytes");
        match outcome {
            Ok(_) => accepted.set(accepted.get() + 1),
            Err(err) => {
                refused.set(refused.get() + 1);
                check_refusal(&err, &path.display().to_string())?;
            }
        }
        Ok(())
    });
    eprintln!(
        "fuzz plan file: {} accepted, {} refused",
        accepted.get(),
        refused.get()
    );
    if let Err(e) = result {
        panic!("fuzz plan file failed: {e}");
    }
}

/// A plan refused with bounded memory, by a sentence naming the file and `why`.
fn assert_refused(outcome: (Result<ShotPlans, EngineError>, isize, PathBuf), why: &str) {
    let (result, peak, path) = outcome;
    let err = result.expect_err("a hostile plan was accepted").to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains(why), "{err}");
    assert!(peak < 1 << 20, "refusing the plan took {peak} bytes: {err}");
}

#[test]
fn plan_announcing_a_trillion_frames_is_refused_in_bounded_memory() {
    let outcome = read_edited_plan("trillion.plan", |h| {
        h["shots"][0]["total_frames"] = Value::from(1_000_000_000_000u64)
    });
    assert_refused(outcome, "announces 1000000000000 frames");
}

#[test]
fn plan_announcing_more_keyframes_than_it_holds_is_refused_in_bounded_memory() {
    let outcome = read_edited_plan("keyframes.plan", |h| {
        let many: Vec<u64> = (0..10_000).map(|f| f * 15).collect();
        h["shots"][0]["keyframes"] = Value::from(many);
        h["shots"][0]["total_frames"] = Value::from(150_000);
    });
    assert_refused(outcome, "announces 10000 keyframe latents");
}

#[test]
fn plan_announcing_huge_latents_is_refused_in_bounded_memory() {
    let outcome = read_edited_plan("huge-latents.plan", |h| {
        h["shots"][0]["canvas"] = Value::from(1u64 << 31);
        h["shots"][0]["latent_len"] = Value::from(1u64 << 58);
    });
    assert_refused(outcome, "announces");
    let outcome = read_edited_plan("huge-canvas.plan", |h| {
        h["shots"][0]["canvas"] = Value::from(8192);
    });
    assert_refused(outcome, "do not fit its 8192 canvas");
}

#[test]
fn plan_announcing_more_data_than_it_holds_is_refused_in_bounded_memory() {
    let outcome = read_edited_plan("data.plan", |h| h["data_bytes"] = Value::from(u64::MAX));
    assert_refused(outcome, "announces 18446744073709551615 bytes of data");
    // A header length past the end of the file.
    let (magic, _, _) = valid_plan_parts();
    let path = scratch("header-length.plan");
    let mut bytes = magic.clone();
    bytes.extend((60u32 << 20).to_le_bytes());
    bytes.extend(b"{}");
    std::fs::write(&path, &bytes).unwrap();
    let (outcome, peak) = peak_of(|| read_plan(&path));
    assert_refused((outcome, peak, path), "the header announces 62914560 bytes");
}

/// The model directory `dir` refused by name because of the unet's `file`.
fn assert_model_refused(dir: &Path, why: &str) {
    let (outcome, peak) = peak_of(|| use_manifest(dir));
    let err = outcome.expect_err("a graph outside the model directory was accepted");
    let text = err.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains(why), "{text}");
    assert!(
        peak < 1 << 20,
        "refusing the model took {peak} bytes: {text}"
    );
}

#[test]
fn manifest_graph_paths_out_of_the_model_directory_are_refused() {
    let dir = model_copy("escape");
    let set_unet_file = |file: &str| {
        super::common::edit_manifest(&dir, |m| m["graphs"]["unet"]["file"] = Value::from(file))
    };
    let outside = tiny_model().join("unet.onnx").canonicalize().unwrap();
    for file in [
        "../unet.onnx",
        "..",
        outside.to_str().unwrap(),
        "sub/../unet.onnx",
    ] {
        set_unet_file(file);
        assert_model_refused(&dir, "is not a plain file name inside the model directory");
    }
    // A link out of the directory, to a file with the very hash the manifest records.
    std::fs::remove_file(dir.join("unet.onnx")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("unet.onnx")).unwrap();
    set_unet_file("unet.onnx");
    assert_model_refused(&dir, "outside the model directory");
    // A link inside the directory is followed.
    std::fs::remove_file(dir.join("unet.onnx")).unwrap();
    std::fs::copy(&outside, dir.join("unet-weights.onnx")).unwrap();
    std::os::unix::fs::symlink("unet-weights.onnx", dir.join("unet.onnx")).unwrap();
    use_manifest(&dir).expect("a link inside the model directory is refused");
    // A manifest that is a link to a device is refused, not read forever.
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("manifest.json")).unwrap();
    assert_model_refused(&dir, "not a regular file");
    let _ = std::fs::remove_dir_all(&dir);
}
