// SPDX-License-Identifier: MPL-2.0
//! Cases that need no model: `scheduler` (timesteps exact, latents at the
//! case's tolerance), `geometry` (canvas layouts and output crops, exact) and
//! `plan` (the official window order and global frames, exact).

use gstm3ddm::engine::geometry::{self, Ratio, Rect};
use gstm3ddm::engine::planner::{self, ClipPlan};
use gstm3ddm::engine::scheduler::{Scheduler, SchedulerKind};
use serde_json::Value;

use crate::golden::{Case, CaseResult, compare_slices};

/// The scheduler tolerance of the golden README, unless the case gives one.
const SCHEDULER_TOLERANCE: f64 = 1e-4;

/// `x_init = add_noise(x0, noise, add_noise_timestep)`, then
/// `x_i = step(eps_i, timesteps_run[i], x_{i-1})` on our own previous sample.
pub fn scheduler(case: &Case) -> CaseResult {
    let kind = SchedulerKind::from_name(case.str("scheduler")?).map_err(|e| e.to_string())?;
    let steps = case.u64("steps")? as usize;
    let tol = case.json["tolerance"]
        .as_f64()
        .unwrap_or(SCHEDULER_TOLERANCE);
    let mut sched = match case.json.get("config") {
        Some(config) => Scheduler::from_json(kind, steps, config),
        None => Scheduler::new(kind, steps),
    }
    .map_err(|e| e.to_string())?;

    same_integers(
        "timesteps_all",
        sched.timesteps(),
        &case.tensor("timesteps_all")?.data,
    )?;
    let (noise_t, run) = sched.run_timesteps();
    same_integers("timesteps_run", &run, &case.tensor("timesteps_run")?.data)?;
    let want_noise_t = case.json["add_noise_timestep"]
        .as_i64()
        .ok_or("case.json has no integer `add_noise_timestep`")?;
    if noise_t != want_noise_t {
        return Err(format!(
            "add_noise_timestep {noise_t}, expected {want_noise_t}"
        ));
    }
    if let Some(count) = case.json["num_run_steps"].as_u64()
        && run.len() as u64 != count
    {
        return Err(format!("{} run steps, expected {count}", run.len()));
    }

    let x0 = &case.tensor("x0")?.data;
    let noise = &case.tensor("noise")?.data;
    let mut x = sched
        .add_noise(x0, noise, noise_t)
        .map_err(|e| e.to_string())?;
    let mut worst = compare_slices("x_init", &x, &case.tensor("x_init")?.data, tol)?;
    for (i, &t) in run.iter().enumerate() {
        let eps = &case.tensor(&format!("eps_{i:03}"))?.data;
        x = sched
            .step(eps, t, &x)
            .map_err(|e| format!("step {i}: {e}"))?;
        let name = format!("x_{i:03}");
        worst = worst.max(compare_slices(&name, &x, &case.tensor(&name)?.data, tol)?);
    }
    Ok(worst)
}

fn same_integers(name: &str, got: &[i64], want: &[f32]) -> Result<(), String> {
    let want: Vec<i64> = want.iter().map(|&v| v as i64).collect();
    if got == want.as_slice() {
        Ok(())
    } else {
        Err(format!("{name} {got:?}, expected {want:?}"))
    }
}

/// Every `layouts` entry: the canvas and content box of the official layout;
/// every `output_crops` entry: the official output crop of its ratio.
pub fn geometry(case: &Case) -> CaseResult {
    let layouts = case.json["layouts"]
        .as_array()
        .ok_or("case.json has no list `layouts`")?;
    let mut canvases = Vec::new();
    for entry in layouts {
        let (src_w, src_h) = (field_u32(entry, "src_w")?, field_u32(entry, "src_h")?);
        let canvas = square_canvas(entry)?;
        canvases.push(canvas);
        let ratio_text = entry["ratio"].as_str().ok_or("a layout has no `ratio`")?;
        let ratios = parse_ratios(ratio_text)?;
        let label = format!("{src_w}x{src_h} to {ratio_text} on {canvas}");
        let layout = geometry::canvas_layout_for_ratios(
            src_w,
            src_h,
            Ratio { num: 1, den: 1 },
            &ratios,
            canvas,
        )
        .map_err(|e| format!("{label}: {e}"))?;
        let want = Rect {
            x0: field_u32(entry, "content_x0")?,
            y0: field_u32(entry, "content_y0")?,
            x1: field_u32(entry, "content_x1")?,
            y1: field_u32(entry, "content_y1")?,
        };
        if layout.content != want {
            return Err(format!(
                "{label}: content {:?}, expected {want:?}",
                layout.content
            ));
        }
    }
    for crop in case.json["output_crops"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let ratio_text = crop["ratio"]
            .as_str()
            .ok_or("an output crop has no `ratio`")?;
        let ratio = parse_ratios(ratio_text)?[0];
        let canvas = match crop.get("canvas") {
            Some(_) => square_canvas(crop)?,
            None => shared_canvas(&canvases)?,
        };
        let got = geometry::output_crop(ratio, canvas);
        let want = Rect::at(
            field_u32(crop, "x0")?,
            field_u32(crop, "y0")?,
            field_u32(crop, "w")?,
            field_u32(crop, "h")?,
        );
        if got != want {
            return Err(format!(
                "output crop {ratio_text} on {canvas}: {got:?}, expected {want:?}"
            ));
        }
    }
    Ok(0.0)
}

fn field_u32(entry: &Value, key: &str) -> Result<u32, String> {
    entry[key]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("an entry has no integer `{key}`"))
}

/// A `canvas` given as `[w, h]` (square) or as one number.
fn square_canvas(entry: &Value) -> Result<u32, String> {
    let canvas = &entry["canvas"];
    let sides: Vec<u64> = match canvas.as_array() {
        Some(list) => list.iter().filter_map(Value::as_u64).collect(),
        None => canvas.as_u64().into_iter().collect(),
    };
    match sides.as_slice() {
        [side] | [side, _] if sides.iter().all(|s| s == side) && *side > 0 => Ok(*side as u32),
        _ => Err(format!("canvas {canvas} is not a square size")),
    }
}

fn shared_canvas(canvases: &[u32]) -> Result<u32, String> {
    match canvases.first() {
        Some(&c) if canvases.iter().all(|&o| o == c) => Ok(c),
        _ => Err("output crops without a `canvas` need the layouts to share one canvas".into()),
    }
}

/// `"9:16"` or a comma-separated list (the official `target_ratio_list`).
fn parse_ratios(text: &str) -> Result<Vec<Ratio>, String> {
    text.split(',')
        .map(|r| Ratio::parse(r).map_err(|e| e.to_string()))
        .collect()
}

/// Every `cases` entry: the official plan of `total_frames` frames. For one
/// frame the official code plans nothing; one padded window `[0; 16]` is
/// accepted as well (the element must still output that frame).
pub fn plan(case: &Case) -> CaseResult {
    let entries = case.json["cases"]
        .as_array()
        .ok_or("case.json has no list `cases`")?;
    if entries.is_empty() {
        return Err("case.json lists no plans".into());
    }
    for entry in entries {
        let frames = entry["total_frames"]
            .as_u64()
            .ok_or("a plan has no `total_frames`")? as usize;
        let plan = planner::official_plan(frames).map_err(|e| format!("{frames} frames: {e}"))?;
        let want_globals = index_list(&entry["global_frames"])?;
        if plan.global_frames.as_slice() != want_globals.as_slice() {
            return Err(format!(
                "{frames} frames: global frames {:?}, expected {want_globals:?}",
                plan.global_frames
            ));
        }
        let want = entry["windows"]
            .as_array()
            .ok_or("a plan has no `windows`")?;
        let got = window_list(&plan);
        let want = want
            .iter()
            .map(|w| {
                Ok((
                    w["stride"].as_u64().ok_or("a window has no `stride`")? as usize,
                    index_list(&w["frames"])?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let single_frame_window =
            frames == 1 && want.is_empty() && got == [(1, vec![0; planner::WINDOW_LEN])];
        if got != want && !single_frame_window {
            return Err(format!(
                "{frames} frames: windows {got:?}, expected {want:?}"
            ));
        }
    }
    Ok(0.0)
}

fn window_list(plan: &ClipPlan) -> Vec<(usize, Vec<usize>)> {
    plan.windows
        .iter()
        .map(|w| (w.stride, w.frames.to_vec()))
        .collect()
}

fn index_list(value: &Value) -> Result<Vec<usize>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("{value} is not a list of frame indices"))?;
    list.iter()
        .map(|v| {
            v.as_u64()
                .map(|i| i as usize)
                .ok_or_else(|| format!("{v} is not a frame index"))
        })
        .collect()
}
