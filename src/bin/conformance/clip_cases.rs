// SPDX-License-Identifier: MPL-2.0
//! `clip` cases, both ways: the whole-clip run (`clip::run_clip` over the
//! planner's official plan, checked against the case's), and the two passes
//! (`twopass`: the keyframe pass, its plan written to a file and read back,
//! then the streaming pass fed the frames in order). Each way is compared
//! with the case's `frame_latents` and `images` at the pipeline tolerance.

use std::sync::Arc;

use gstm3ddm::engine::clip::{self, ClipFrames, ClipInput, FrameImage};
use gstm3ddm::engine::geometry::{Ratio, canvas_layout};
use gstm3ddm::engine::model::Model;
use gstm3ddm::engine::pixels::tensor::unit_from_u8;
use gstm3ddm::engine::pixels::{CanvasInputs, RgbImage};
use gstm3ddm::engine::planner;
use gstm3ddm::engine::twopass::{self, PlannedStream, Produced};
use gstm3ddm::engine::window::WindowConstants;

use crate::golden::{Case, Pass, Tensor, compare};
use crate::model_cases::{
    ModelCache, PIPELINE_TOLERANCE, canvas_of, case_params, channels_last, denoiser, engine,
};

/// A clip case's per-frame u8 canvases.
struct CaseFrames<'a> {
    init: &'a Tensor,
    masked: &'a Tensor,
    stretched: &'a Tensor,
}

impl ClipFrames for CaseFrames<'_> {
    fn len(&self) -> usize {
        self.init.shape[0]
    }
    fn write(
        &self,
        frame: usize,
        image: FrameImage,
        out: &mut [f32],
    ) -> gstm3ddm::engine::Result<()> {
        let tensor = match image {
            FrameImage::Init => self.init,
            FrameImage::Masked => self.masked,
            FrameImage::Stretched => self.stretched,
        };
        let source = &tensor.data[frame * out.len()..(frame + 1) * out.len()];
        for (o, &v) in out.iter_mut().zip(source) {
            *o = unit_from_u8(v as u8);
        }
        Ok(())
    }
}

impl CaseFrames<'_> {
    /// Frame `f`'s canvas inputs (the stretched canvas stands for the content:
    /// it is already at the canvas size, so it is the stretched image itself).
    fn inputs(&self, f: usize, canvas: usize) -> CanvasInputs {
        let rgb = |t: &Tensor| {
            let plane = canvas * canvas;
            let frame = &t.data[f * 3 * plane..(f + 1) * 3 * plane];
            let data = (0..3 * plane)
                .map(|k| frame[(k % 3) * plane + k / 3] as u8)
                .collect();
            RgbImage {
                width: canvas as u32,
                height: canvas as u32,
                data,
            }
        };
        CanvasInputs {
            masked: rgb(self.masked),
            init: rgb(self.init),
            content: Arc::new(rgb(self.stretched)),
        }
    }
}

/// What both ways of a clip case share.
struct ClipCase<'a> {
    model: Arc<Model>,
    total: usize,
    canvas: usize,
    frames: CaseFrames<'a>,
    mask: &'a Tensor,
    noise: &'a [f32],
    fps: f64,
}

impl<'a> ClipCase<'a> {
    fn load(case: &'a Case, m: &mut ModelCache) -> Result<ClipCase<'a>, String> {
        let model = m.model(case)?;
        let total = case.u64("total_frames")? as usize;
        let mask = case.tensor("mask")?;
        let canvas = canvas_of(mask)?;
        let frames = CaseFrames {
            init: case.tensor("init_u8")?,
            masked: case.tensor("masked_u8")?,
            stretched: case.tensor("stretched_u8")?,
        };
        if [frames.init, frames.masked, frames.stretched]
            .iter()
            .any(|t| t.shape != [total, 3, canvas, canvas])
        {
            return Err(format!(
                "the clip's frames are not [{total},3,{canvas},{canvas}]"
            ));
        }
        Ok(ClipCase {
            model,
            total,
            canvas,
            frames,
            mask,
            noise: &case.tensor("noise")?.data,
            fps: case.f64("fps")?,
        })
    }

    /// Checks that every frame got one image and a latent, and compares them.
    fn compare(
        &self,
        case: &Case,
        latents: &[Option<Vec<f32>>],
        images: &[f32],
        delivered: &[usize],
    ) -> Result<Pass, String> {
        if let Some(f) = delivered.iter().position(|&d| d != 1) {
            return Err(format!(
                "frame {f} was delivered {} times, not once",
                delivered[f]
            ));
        }
        let latents: Vec<f32> = latents
            .iter()
            .enumerate()
            .map(|(f, l)| l.clone().ok_or(format!("frame {f} has no latent")))
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        let latent_err = compare(case, "frame_latents", &latents, PIPELINE_TOLERANCE)?;
        let images = channels_last(images, self.canvas * self.canvas);
        let image_err = compare(case, "images", &images, PIPELINE_TOLERANCE)?;
        Ok(Pass::of_parts(
            vec![("frame_latents", latent_err), ("images", image_err)],
            PIPELINE_TOLERANCE,
        ))
    }
}

/// Each frame's image, and how many times it was delivered.
struct Images {
    data: Vec<f32>,
    delivered: Vec<usize>,
    image_len: usize,
}

impl Images {
    fn new(total: usize, canvas: usize) -> Images {
        let image_len = 3 * canvas * canvas;
        Images {
            data: vec![f32::NAN; total * image_len],
            delivered: vec![0; total],
            image_len,
        }
    }

    fn store(&mut self, f: usize, image: &[f32]) {
        self.data[f * self.image_len..(f + 1) * self.image_len].copy_from_slice(image);
        self.delivered[f] += 1;
    }
}

/// `clip`: the planner's official plan (checked against the case's) run whole.
pub fn clip(case: &Case, m: &mut ModelCache) -> Result<Pass, String> {
    let clip_case = ClipCase::load(case, m)?;
    let ClipCase {
        model,
        total,
        canvas,
        ..
    } = &clip_case;
    let plan = planner::official_plan(*total).map_err(engine)?;
    check_plan(case, &plan)?;
    let cancel = gstm3ddm::engine::Cancel::new();
    let constants =
        WindowConstants::new(model, *canvas, &clip_case.mask.data, &cancel).map_err(engine)?;
    let context = clip::global_context(model, &constants, &plan, &clip_case.frames, &cancel)
        .map_err(engine)?;
    let windows = clip::all_windows(&plan);
    let input = ClipInput {
        plan: &plan,
        windows: &windows,
        frames: &clip_case.frames,
        constants: &constants,
        context: &context,
        noise: clip_case.noise,
        fps: clip_case.fps,
        windows_done: None,
    };
    let mut images = Images::new(*total, *canvas);
    let mut store = |f: usize, image: &[f32]| -> gstm3ddm::engine::Result<()> {
        images.store(f, image);
        Ok(())
    };
    let mut denoiser = denoiser(case, model.clone())?;
    let output = clip::run_clip(
        std::slice::from_mut(&mut denoiser),
        &input,
        vec![None; *total],
        &mut store,
        &cancel,
    )
    .map_err(engine)?;
    clip_case.compare(case, &output.latents, &images.data, &images.delivered)
}

/// `clip`, two-pass: the keyframe pass over the case's frames, its plan
/// through a plan file, then the streaming pass fed one frame at a time.
pub fn clip_two_pass(case: &Case, m: &mut ModelCache) -> Result<Pass, String> {
    let clip_case = ClipCase::load(case, m)?;
    let (total, canvas) = (clip_case.total, clip_case.canvas);
    let [height, width] = [0, 1].map(|k| case.json["source_frame_hw"][k].as_u64().unwrap_or(0));
    let ratio = Ratio::parse(case.str("target_ratio")?).map_err(engine)?;
    let layout =
        canvas_layout(width as u32, height as u32, ratio, canvas as u32).map_err(engine)?;
    let params = case_params(case)?;
    let cancel = gstm3ddm::engine::Cancel::new();
    let mut workers = [denoiser(case, clip_case.model.clone())?];
    let plan = twopass::run_keyframe_pass(
        &mut workers,
        &clip_case.frames,
        &layout,
        &clip_case.mask.data,
        clip_case.noise,
        (clip_case.fps, &params, &planner::Strides::official()),
        &cancel,
    )
    .map_err(engine)?;
    let plan = through_file(case, &plan)?;

    let mut latents: Vec<Option<Vec<f32>>> = vec![None; total];
    for &f in plan.latents.keyframes() {
        latents[f] = plan.latents.keyframe(f).map_err(engine)?;
    }
    let [worker] = workers;
    let mut stream = PlannedStream::from_parts(
        vec![worker],
        plan,
        clip_case.mask.data.clone(),
        clip_case.noise.to_vec(),
    )
    .map_err(engine)?;
    let mut images = Images::new(total, canvas);
    let mut sink = |produced: Produced<'_>| -> gstm3ddm::engine::Result<()> {
        match produced {
            Produced::Image(f, image) => images.store(f, image),
            Produced::Latent(f, latent) => latents[f] = Some(latent.to_vec()),
        }
        Ok(())
    };
    for f in 0..total {
        stream
            .push_inputs(clip_case.frames.inputs(f, canvas))
            .map_err(engine)?;
        while stream.chunk_ready() {
            stream.run_with(false, &mut sink, &cancel).map_err(engine)?;
        }
    }
    stream.run_with(true, &mut sink, &cancel).map_err(engine)?;
    clip_case.compare(case, &latents, &images.data, &images.delivered)
}

/// The plan written to a plan file and read back.
fn through_file(
    case: &Case,
    plan: &twopass::KeyframePlan,
) -> Result<twopass::KeyframePlan, String> {
    let name = case.dir.file_name().unwrap_or_default().to_string_lossy();
    let path = std::env::temp_dir().join(format!(
        "m3ddm-conformance-{name}-{}.plan",
        std::process::id()
    ));
    let result = twopass::ShotPlans::new(vec![plan.clone()])
        .and_then(|plans| twopass::write_plan(&path, &plans))
        .and_then(|()| twopass::read_plan(&path));
    let _ = std::fs::remove_file(&path);
    let mut plans = result.map_err(engine)?;
    match (plans.shots.pop(), plans.shots.is_empty()) {
        (Some(shot), true) => Ok(std::sync::Arc::unwrap_or_clone(shot)),
        _ => Err("the plan file gave back more than the one shot written".into()),
    }
}

/// The plan's window order, global frames and image windows against the case's.
fn check_plan(case: &Case, plan: &planner::ClipPlan) -> Result<(), String> {
    let windows = case.json["windows"]
        .as_array()
        .ok_or("case.json has no `windows` list")?;
    let as_usizes = |v: &serde_json::Value| -> Vec<usize> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64().map(|x| x as usize))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ours: Vec<(usize, Vec<usize>)> = plan
        .windows
        .iter()
        .map(|w| (w.stride, w.frames.to_vec()))
        .collect();
    let theirs: Vec<(usize, Vec<usize>)> = windows
        .iter()
        .map(|w| {
            (
                w["stride"].as_u64().unwrap_or(0) as usize,
                as_usizes(&w["frames"]),
            )
        })
        .collect();
    if ours != theirs {
        return Err(format!(
            "the planner's windows {ours:?} differ from the case's {theirs:?}"
        ));
    }
    if plan.global_frames.to_vec() != as_usizes(&case.json["global_frames"]) {
        return Err(format!(
            "the planner's global frames {:?} differ from the case's",
            plan.global_frames
        ));
    }
    if plan.image_windows() != as_usizes(&case.json["image_window"]) {
        return Err(format!(
            "the planner's image windows {:?} differ from the case's",
            plan.image_windows()
        ));
    }
    Ok(())
}
