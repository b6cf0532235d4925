// SPDX-License-Identifier: MPL-2.0
//! The official whole-clip run over a plan from `planner.rs` (the official
//! `inference.py` loop): each window with the fps input floor(fps/stride) and
//! the same starting noise; a frame's latent is kept from the first window (and
//! position) that produced it and is a guide in every later window; a frame's
//! image is the decode of the last window holding it, and each frame's image is
//! delivered exactly once. Frames are VAE-encoded once per clip (the encoding
//! is deterministic, so this equals the official per-window encoding), and only
//! the frames whose image a window provides are decoded.
//!
//! The window scheduler: a window runs as soon as the latents of its guide
//! frames exist, so the windows of one pass of the coarse-to-fine plan (whose
//! guides all come from earlier passes) can run at once. With one worker the
//! windows run in the plan's order, one by one; with several workers (one
//! `Denoiser` per device or server) each takes the next ready window(s) on a
//! thread of its own. A worker takes up to `Denoiser::windows_per_batch`
//! ready windows of one stride and runs them as one batch. Every window's
//! result is the same whichever worker runs it and whatever it is batched with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::error::{EngineError, Result};
use super::model::Model;
use super::pixels::CanvasInputs;
use super::pixels::tensor::chw_from_rgb;
use super::planner::{ClipPlan, WINDOW_LEN};
use super::window::{
    self, Denoiser, FRAMES, GuidanceContext, LATENT_CHANNELS, WindowConstants, WindowLatents,
};

/// Which canvas image of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameImage {
    /// The canvas with the new area filled by the init fill.
    Init,
    /// The canvas with the new area black (−1).
    Masked,
    /// The whole source stretched to the canvas (global frames).
    Stretched,
}

/// The per-frame canvas images of a clip.
pub trait ClipFrames: Sync {
    /// Frames in the clip.
    fn len(&self) -> usize;
    /// Whether the clip has no frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes one image of `frame` as `[3,C,C]` floats in [-1,1] into `out`.
    fn write(&self, frame: usize, image: FrameImage, out: &mut [f32]) -> Result<()>;
}

/// Writes one image of a frame's canvas inputs as `[3,C,C]` floats in [-1,1].
pub fn write_inputs(
    inputs: &CanvasInputs,
    image: FrameImage,
    canvas: u32,
    out: &mut [f32],
) -> Result<()> {
    match image {
        FrameImage::Init => chw_from_rgb(&inputs.init, out),
        FrameImage::Masked => chw_from_rgb(&inputs.masked, out),
        FrameImage::Stretched => chw_from_rgb(&inputs.stretched(canvas), out),
    }
}

/// Everything a clip run needs besides its workers.
pub struct ClipInput<'a> {
    pub plan: &'a ClipPlan,
    /// The plan's windows to run (indices into `plan.windows`, in plan order).
    pub windows: &'a [usize],
    pub frames: &'a dyn ClipFrames,
    /// The run's constants: canvas side C, zero context, uncond latent, latent mask.
    pub constants: &'a WindowConstants,
    /// The clip's global context (see [`global_context`]).
    pub context: &'a GuidanceContext,
    /// The starting noise `[4,16,C/8,C/8]` of every window.
    pub noise: &'a [f32],
    /// The clip's frame rate (the UNet's fps input is floor(fps/stride)).
    pub fps: f64,
    /// Counts every window as it finishes (for progress reports), if given.
    pub windows_done: Option<&'a AtomicU64>,
}

/// What a clip run produced besides the images.
pub struct ClipOutput {
    /// Per frame, the kept scaled latent `[4,h,w]` (given or produced).
    pub latents: Vec<Option<Vec<f32>>>,
    pub windows_run: usize,
    pub window_time: Duration,
    /// Windows run by each worker, in the order of the workers.
    pub windows_by_worker: Vec<usize>,
}

/// The receiver of each frame's image `[3,C,C]` in [0,1], once per frame.
pub type OnImage<'a> = dyn FnMut(usize, &[f32]) -> Result<()> + Send + 'a;

/// The guidance context of a plan's 16 global frames (their stretched images).
pub fn global_context(
    model: &Model,
    constants: &WindowConstants,
    plan: &ClipPlan,
    frames: &dyn ClipFrames,
    cancel: &Cancel,
) -> Result<GuidanceContext> {
    let latents = global_latents(model, constants, plan, frames, cancel)?;
    GuidanceContext::from_latents(model, constants, &latents, cancel)
}

/// The scaled latents `[16,4,C/8,C/8]` of a plan's 16 global frames (their
/// stretched images), the global encoder's input.
pub fn global_latents(
    model: &Model,
    constants: &WindowConstants,
    plan: &ClipPlan,
    frames: &dyn ClipFrames,
    cancel: &Cancel,
) -> Result<Vec<f32>> {
    let images = read_images(
        frames,
        &plan.global_frames,
        FrameImage::Stretched,
        constants,
    )?;
    let canvas = constants.canvas;
    window::encode_scaled(
        model,
        &images,
        plan.global_frames.len(),
        (canvas, canvas),
        cancel,
    )
}

/// Every window of a plan, in order.
pub fn all_windows(plan: &ClipPlan) -> Vec<usize> {
    (0..plan.windows.len()).collect()
}

/// Runs `input.windows` on `workers`. `known` holds latents given before the
/// run (a carried guide, keyframes), one entry per frame. `on_image(frame,
/// image)` receives the image of each frame whose image comes from a window run
/// here, once, as soon as it is final. Checks `cancel` before every model call.
pub fn run_clip(
    workers: &mut [Denoiser],
    input: &ClipInput<'_>,
    known: Vec<Option<Vec<f32>>>,
    on_image: &mut OnImage<'_>,
    cancel: &Cancel,
) -> Result<ClipOutput> {
    check_input(input, &known)?;
    if workers.is_empty() {
        return Err(EngineError::InvalidInput(
            "a clip needs at least one worker".into(),
        ));
    }
    let run = ClipRun {
        input,
        progress: Mutex::new(Progress::new(input, known, workers.len())),
        changed: Condvar::new(),
        on_image: Mutex::new(on_image),
        cancel,
    };
    if let [worker] = workers {
        run.work(0, worker)?;
    } else {
        std::thread::scope(|scope| {
            let run = &run;
            let threads: Vec<_> = workers
                .iter_mut()
                .enumerate()
                .map(|(index, worker)| scope.spawn(move || run.work(index, worker)))
                .collect();
            threads.into_iter().try_for_each(|thread| {
                thread.join().unwrap_or_else(|_| {
                    Err(EngineError::Inference("a window worker panicked".into()))
                })
            })
        })?;
    }
    let progress = run
        .progress
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(ClipOutput {
        latents: progress.latents,
        windows_run: progress.windows_run,
        window_time: progress.window_time,
        windows_by_worker: progress.windows_by_worker,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Running,
    Done,
}

/// What the workers share, under one lock.
struct Progress {
    /// Per frame, its kept latent.
    latents: Vec<Option<Vec<f32>>>,
    /// Per entry of `input.windows`.
    status: Vec<Status>,
    /// VAE latents of frames, by (frame, image); encoded once per clip.
    encoded: HashMap<(usize, FrameImage), Vec<f32>>,
    failed: bool,
    windows_run: usize,
    window_time: Duration,
    windows_by_worker: Vec<usize>,
}

impl Progress {
    fn new(input: &ClipInput<'_>, known: Vec<Option<Vec<f32>>>, workers: usize) -> Progress {
        Progress {
            latents: known,
            status: vec![Status::Waiting; input.windows.len()],
            encoded: HashMap::new(),
            failed: false,
            windows_run: 0,
            window_time: Duration::ZERO,
            windows_by_worker: vec![0; workers],
        }
    }
}

struct ClipRun<'r, 'a, 'c> {
    input: &'r ClipInput<'a>,
    progress: Mutex<Progress>,
    changed: Condvar,
    on_image: Mutex<&'r mut OnImage<'c>>,
    cancel: &'r Cancel,
}

/// One window to run: its entry in `input.windows` and its guides' latents.
struct Job {
    entry: usize,
    window: usize,
    guides: Vec<Option<Vec<f32>>>,
}

impl ClipRun<'_, '_, '_> {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs ready windows on worker `index` until every window has run (or one failed).
    fn work(&self, index: usize, worker: &mut Denoiser) -> Result<()> {
        let result = (|| {
            while let Some(jobs) = self.next_jobs(worker.windows_per_batch())? {
                self.run_jobs(worker, &jobs)?;
                self.lock().windows_by_worker[index] += jobs.len();
            }
            Ok(())
        })();
        if result.is_err() {
            self.lock().failed = true;
            self.changed.notify_all();
        }
        result
    }

    /// The next windows for a worker, or `None` when every window has run.
    fn next_jobs(&self, max: usize) -> Result<Option<Vec<Job>>> {
        let plan = self.input.plan;
        let mut progress = self.lock();
        loop {
            if progress.failed {
                return Err(EngineError::Cancelled);
            }
            let mut jobs: Vec<Job> = Vec::new();
            for (entry, &window) in self.input.windows.iter().enumerate() {
                if jobs.len() == max.max(1) {
                    break;
                }
                let win = &plan.windows[window];
                let ready = progress.status[entry] == Status::Waiting
                    && jobs
                        .first()
                        .is_none_or(|j| plan.windows[j.window].stride == win.stride)
                    && (0..WINDOW_LEN)
                        .all(|p| !win.guides[p] || progress.latents[win.frames[p]].is_some());
                if ready {
                    let guides = (0..WINDOW_LEN)
                        .map(|p| {
                            win.guides[p]
                                .then(|| progress.latents[win.frames[p]].clone())
                                .flatten()
                        })
                        .collect();
                    jobs.push(Job {
                        entry,
                        window,
                        guides,
                    });
                }
            }
            if !jobs.is_empty() {
                for job in &jobs {
                    progress.status[job.entry] = Status::Running;
                }
                return Ok(Some(jobs));
            }
            if progress.status.iter().all(|s| *s == Status::Done) {
                return Ok(None);
            }
            if !progress.status.contains(&Status::Running) {
                let stuck = progress
                    .status
                    .iter()
                    .position(|s| *s == Status::Waiting)
                    .map_or(0, |entry| self.input.windows[entry]);
                return Err(EngineError::InvalidInput(format!(
                    "window {stuck} uses a frame as a guide before any latent of it exists"
                )));
            }
            progress = self
                .changed
                .wait(progress)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Encodes what the jobs need, denoises them as one batch, decodes and
    /// delivers their frames' images and keeps their latents.
    fn run_jobs(&self, worker: &mut Denoiser, jobs: &[Job]) -> Result<()> {
        let started = Instant::now();
        let plan = self.input.plan;
        let model = worker.model().clone();
        let constants = self.input.constants;
        for job in jobs {
            let win = &plan.windows[job.window];
            let conditioned: Vec<usize> = (0..WINDOW_LEN)
                .filter(|&p| !win.guides[p])
                .map(|p| win.frames[p])
                .collect();
            self.encode(&model, &win.frames, FrameImage::Init)?;
            self.encode(&model, &conditioned, FrameImage::Masked)?;
        }
        // The latents are copied out, so that other workers go on while this one denoises.
        let owned: Vec<OwnedWindow> = {
            let progress = self.lock();
            let latent = |frame: usize, image: FrameImage| -> Vec<f32> {
                progress
                    .encoded
                    .get(&(frame, image))
                    .cloned()
                    .unwrap_or_default()
            };
            jobs.iter()
                .map(|job| {
                    let win = &plan.windows[job.window];
                    OwnedWindow {
                        init: win.frames.map(|f| latent(f, FrameImage::Init)),
                        condition: std::array::from_fn(|p| match &job.guides[p] {
                            Some(guide) => guide.clone(),
                            None => latent(win.frames[p], FrameImage::Masked),
                        }),
                        guide: win.guides,
                    }
                })
                .collect()
        };
        let windows: Vec<WindowLatents<'_>> = owned
            .iter()
            .map(|w| w.latents(&constants.uncond, &constants.mask))
            .collect();
        let side = constants.latent_side();
        let fps = plan.windows[jobs[0].window].fps_input(self.input.fps);
        let final_latents = worker.run_many(
            &windows,
            self.input.context,
            self.input.noise,
            (side, side),
            fps,
            self.cancel,
        )?;
        for (job, latents) in jobs.iter().zip(&final_latents) {
            self.finish(&model, job, latents)?;
        }
        let mut progress = self.lock();
        progress.windows_run += jobs.len();
        progress.window_time += started.elapsed();
        for job in jobs {
            progress.status[job.entry] = Status::Done;
        }
        drop(progress);
        if let Some(counter) = self.input.windows_done {
            counter.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        }
        self.changed.notify_all();
        Ok(())
    }

    /// Keeps the latents a window produced and delivers the images it provides.
    fn finish(&self, model: &Model, job: &Job, final_latents: &[f32]) -> Result<()> {
        let plan = self.input.plan;
        let win = &plan.windows[job.window];
        let side = self.input.constants.latent_side();
        let plane = side * side;
        let finished: Vec<(usize, usize)> = (0..FRAMES)
            .map(|p| (p, win.frames[p]))
            .filter(|&(p, f)| {
                plan.image_source[f].window == job.window && plan.image_source[f].position == p
            })
            .collect();
        let images = if finished.is_empty() {
            Vec::new()
        } else {
            let batch: Vec<f32> = finished
                .iter()
                .flat_map(|&(p, _)| window::gather_frame(final_latents, p, plane))
                .collect();
            window::decode_images(model, &batch, finished.len(), (side, side), self.cancel)?
        };
        {
            let mut progress = self.lock();
            for p in 0..FRAMES {
                if win.keeps[p] {
                    progress.latents[win.frames[p]] =
                        Some(window::gather_frame(final_latents, p, plane));
                }
            }
        }
        let canvas = self.input.constants.canvas;
        let image_len = 3 * canvas * canvas;
        let mut on_image = self.on_image.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, &(_, f)) in finished.iter().enumerate() {
            (*on_image)(f, &images[k * image_len..(k + 1) * image_len])?;
        }
        Ok(())
    }

    /// Encodes the `image` of the frames among `frames` that are not encoded yet.
    fn encode(&self, model: &Model, frames: &[usize], image: FrameImage) -> Result<()> {
        let mut missing: Vec<usize> = Vec::new();
        {
            let progress = self.lock();
            for &f in frames {
                if !progress.encoded.contains_key(&(f, image)) && !missing.contains(&f) {
                    missing.push(f);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.cancel.check()?;
        let constants = self.input.constants;
        let pixels = read_images(self.input.frames, &missing, image, constants)?;
        let canvas = constants.canvas;
        let latents =
            window::encode_scaled(model, &pixels, missing.len(), (canvas, canvas), self.cancel)?;
        let latent_len = latents.len() / missing.len();
        let mut progress = self.lock();
        for (k, &f) in missing.iter().enumerate() {
            progress.encoded.insert(
                (f, image),
                latents[k * latent_len..(k + 1) * latent_len].to_vec(),
            );
        }
        Ok(())
    }
}

/// A window's latents, owned (copied out of the shared progress).
struct OwnedWindow {
    init: [Vec<f32>; FRAMES],
    condition: [Vec<f32>; FRAMES],
    guide: [bool; FRAMES],
}

impl OwnedWindow {
    fn latents<'a>(&'a self, uncond: &'a [f32], mask: &'a [f32]) -> WindowLatents<'a> {
        WindowLatents {
            init: std::array::from_fn(|p| self.init[p].as_slice()),
            condition: std::array::from_fn(|p| self.condition[p].as_slice()),
            guide: self.guide,
            uncond,
            mask,
        }
    }
}

/// The images of `frames` (in order), `[len,3,C,C]`.
fn read_images(
    frames: &dyn ClipFrames,
    list: &[usize],
    image: FrameImage,
    constants: &WindowConstants,
) -> Result<Vec<f32>> {
    let canvas = constants.canvas;
    let image_len = 3 * canvas * canvas;
    let mut out = vec![0.0; list.len() * image_len];
    for (k, &f) in list.iter().enumerate() {
        frames.write(f, image, &mut out[k * image_len..(k + 1) * image_len])?;
    }
    Ok(out)
}

fn check_input(input: &ClipInput<'_>, known: &[Option<Vec<f32>>]) -> Result<()> {
    let plan = input.plan;
    let n = plan.total_frames;
    let canvas = input.constants.canvas;
    let bad = |s: String| Err(EngineError::InvalidInput(s));
    if input.frames.len() != n || known.len() != n {
        return bad(format!(
            "a plan of {n} frames got {} frames and {} known latents",
            input.frames.len(),
            known.len()
        ));
    }
    let latent_len = LATENT_CHANNELS * FRAMES * (canvas / 8) * (canvas / 8);
    if input.noise.len() != latent_len {
        return bad(format!(
            "the noise has {} values where a window needs {latent_len}",
            input.noise.len()
        ));
    }
    if plan.image_source.len() != n
        || plan
            .windows
            .iter()
            .any(|w| w.frames.iter().any(|&f| f >= n))
        || input.windows.iter().any(|&w| w >= plan.windows.len())
    {
        return bad(format!("the plan does not describe a clip of {n} frames"));
    }
    Ok(())
}
