// SPDX-License-Identifier: MPL-2.0
//! Every default and limit of a run, in one place: the engine checks against
//! these, the element's properties take their ranges and defaults from them,
//! and `gst-inspect-1.0` (the documentation) shows what the properties say.

/// Denoising steps per window: the official M3DDM runs 50.
pub const DEFAULT_STEPS: u32 = 50;
pub const MIN_STEPS: u32 = 1;
pub const MAX_STEPS: u32 = 1000;
/// Classifier-free guidance on the masked condition (official: 2).
pub const DEFAULT_GUIDANCE_SCALE: f64 = 2.0;
/// Guidance on the global context (official: 4).
pub const DEFAULT_GLOBAL_GUIDANCE_SCALE: f64 = 4.0;
pub const MAX_GUIDANCE_SCALE: f64 = 50.0;
/// Frames per streaming chunk: one stride-15 window of the official plan spans 15 × 15 + 1.
pub const DEFAULT_LOOKAHEAD: u32 = 226;
/// Chunks shorter than a window are padded by the planner, so one frame is enough.
pub const MIN_LOOKAHEAD: u32 = 1;
pub const MAX_LOOKAHEAD: u32 = 10_000;
pub const DEFAULT_SEED: u64 = 0;
pub const DEFAULT_DEVICE_ID: i32 = 0;
pub const MAX_DEVICE_ID: i32 = 255;
/// ONNX Runtime intra-op threads; 0 = the process's shared pool over every core.
pub const DEFAULT_THREADS: u32 = 0;
pub const MAX_THREADS: u32 = 1024;
/// Deadline of one remote model call (retries included), in milliseconds: generous,
/// since one U-Net call of the published model on a CPU server takes tens of seconds.
pub const DEFAULT_INFERENCE_TIMEOUT_MS: u32 = 60_000;
pub const MIN_INFERENCE_TIMEOUT_MS: u32 = 100;
pub const MAX_INFERENCE_TIMEOUT_MS: u32 = 3_600_000;
/// Retries of a remote call that found its server unavailable, each on the next server.
pub const INFERENCE_RETRIES: u32 = 3;
/// Width of the seam blend, in output pixels.
pub const DEFAULT_FEATHER: u32 = 16;
pub const MAX_FEATHER: u32 = 256;
/// The output's default display aspect ratio, 9:16.
pub const DEFAULT_ASPECT: (u32, u32) = (9, 16);
/// The largest term of an aspect ratio either way (100:1 and 1:100).
pub const MAX_ASPECT_TERM: u32 = 100;
/// Opaque black, as ARGB.
pub const DEFAULT_FILL_COLOR: u32 = 0xFF00_0000;
/// The canvas of the model-free fills (blur, color): the official one.
pub const FLAT_CANVAS: u32 = 256;
/// The frame rate assumed where a stream has none (0/1, variable).
pub const FALLBACK_FPS: f64 = 30.0;
/// Frames smaller than this on either side are refused.
pub const MIN_FRAME_SIDE: u32 = 2;
/// Output frames larger than this on either side are refused (16K).
pub const MAX_OUTPUT_SIDE: u32 = 16_384;
/// The VAE's factor: canvas sides are multiples of it.
pub const LATENT_FACTOR: u32 = 8;

/// Checks a canvas side: a positive multiple of the VAE's factor.
pub fn check_canvas_side(side: usize) -> super::Result<()> {
    if side == 0 || !side.is_multiple_of(LATENT_FACTOR as usize) {
        return Err(super::EngineError::InvalidInput(format!(
            "the canvas side must be a positive multiple of {LATENT_FACTOR} (the VAE's factor), got {side}"
        )));
    }
    Ok(())
}

/// Checks a step count against [`MIN_STEPS`]..=[`MAX_STEPS`].
pub fn check_steps(steps: u32) -> super::Result<()> {
    if !(MIN_STEPS..=MAX_STEPS).contains(&steps) {
        return Err(super::EngineError::InvalidInput(format!(
            "{steps} denoising steps: use {MIN_STEPS} to {MAX_STEPS}"
        )));
    }
    Ok(())
}

/// Memory that `lookahead` held frames take in outpaint mode: each holds its
/// source frame (`source_frame_bytes`; 0 when not known yet) and, at the
/// model's `canvas`, its content, masked and initial images and its generated
/// canvas (RGB bytes) and its latent (f32).
pub fn held_frames_bytes(lookahead: u32, canvas: u32, source_frame_bytes: u64) -> u64 {
    let side = u64::from(canvas);
    let images = 4 * side * side * 3;
    let latent = 4 * (side / u64::from(LATENT_FACTOR)).pow(2) * 4;
    u64::from(lookahead) * (source_frame_bytes + images + latent)
}

/// The memory available to new allocations (`MemAvailable` of /proc/meminfo), if known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a lookahead whose held frames ([`held_frames_bytes`]) would not fit in
/// `available` bytes, with the estimate and the largest lookahead that fits.
pub fn check_held_memory(
    lookahead: u32,
    canvas: u32,
    source_frame_bytes: u64,
    available: u64,
) -> super::Result<()> {
    let needed = held_frames_bytes(lookahead, canvas, source_frame_bytes);
    if needed <= available {
        return Ok(());
    }
    let per_frame = held_frames_bytes(1, canvas, source_frame_bytes);
    let gb = |bytes: u64| bytes as f64 / 1e9;
    Err(super::EngineError::InvalidInput(format!(
        "lookahead {lookahead} holds about {:.1} GB ({lookahead} frames of {:.1} MB: the source \
         frame and the canvas-{canvas} images and latent), more than the {:.1} GB of memory \
         available: use a lookahead of at most {}",
        gb(needed),
        per_frame as f64 / 1e6,
        gb(available),
        available / per_frame
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_frames_are_refused_beyond_the_available_memory() {
        // Canvas 256: 4 RGB images of 196,608 bytes and a 16,384-byte latent (4 × 32² f32) per frame.
        let per_frame = 786_432 + 16_384;
        assert_eq!(held_frames_bytes(1, 256, 0), per_frame);
        assert_eq!(held_frames_bytes(10, 256, 1000), 10 * (per_frame + 1000));
        assert!(check_held_memory(100, 256, 0, 100 * per_frame).is_ok());
        let err = check_held_memory(100, 256, 0, 100 * per_frame - 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lookahead 100 holds about 0.1 GB (100 frames of 0.8 MB")
                && err.contains("use a lookahead of at most 99"),
            "{err}"
        );
        assert!(available_memory().is_some_and(|bytes| bytes > 0));
    }

    #[test]
    fn canvas_sides_are_positive_multiples_of_eight() {
        assert!(check_canvas_side(128).is_ok());
        assert!(check_canvas_side(256).is_ok());
        for bad in [0, 4, 100, 129] {
            let err = check_canvas_side(bad).unwrap_err().to_string();
            assert!(err.contains(&bad.to_string()), "{err}");
        }
    }

    #[test]
    fn steps_are_checked_against_the_limits() {
        assert!(check_steps(MIN_STEPS).is_ok() && check_steps(MAX_STEPS).is_ok());
        assert!(check_steps(0).is_err() && check_steps(MAX_STEPS + 1).is_err());
    }
}
