// SPDX-License-Identifier: MPL-2.0
//! Renegotiation of the outputs mid-stream: a RECONFIGURE from downstream (a
//! capsfilter or a sink that now fixes another frame size or
//! pixel-aspect-ratio) is honoured from the next frame on. Each output is
//! negotiated again from the input caps and its shape; an output whose caps
//! change is refitted to them on its own crop of the shared canvas (the same
//! picture, stored at another size or pixel-aspect-ratio) and gets them sent,
//! a compositor and downstream's pool anew. The canvas, the generator and the
//! frames it holds are left as they are, so no frame is lost or generated
//! twice, and the source keeps its place (bit-exact at the natural size).
//! Caps that only another canvas could fill (another display aspect), or
//! that downstream refuses, are not followed: the output keeps its caps and
//! one WARNING on the bus says why and what to do (once per caps asked for).

use std::sync::Arc;

use gst::prelude::*;

use super::CAT;
use super::config::{FixedFrame, OutputConfig, OutputShape, StreamConfig, pixel_aspect};
use super::frames::Compositor;
use super::negotiate;
use super::pools::downstream_pool;
use super::state::{Configured, OutputSink, Shared};

/// Whether downstream of any of `pads` asked for a reconfiguration (every
/// pad's flag is read and cleared).
pub fn requested(pads: &[gst::Pad]) -> bool {
    pads.iter().filter(|pad| pad.check_reconfigure()).count() > 0
}

/// What a renegotiation runs with, read from the state.
struct Current {
    configured: Arc<Configured>,
    canvas: u32,
    feather: u32,
    threads: u32,
}

/// Negotiates the outputs of the current configuration again and applies
/// what changed; an output whose new caps cannot be followed keeps its caps
/// (and a WARNING says so).
pub fn renegotiate(element: &gst::Element, shared: &Shared) {
    let current = {
        let state = shared.lock();
        let (Some(configured), Some(run)) = (state.configured.clone(), state.run.clone()) else {
            return;
        };
        Current {
            configured,
            canvas: run.canvas(),
            feather: run.settings.feather,
            threads: run.converter_threads(),
        }
    };
    let configured = &current.configured;
    let outputs: Vec<(gst::Pad, OutputShape)> = configured
        .pads
        .iter()
        .cloned()
        .zip(configured.shapes.iter().copied())
        .collect();
    let asked = match negotiate::configure(&configured.in_caps, &outputs, current.canvas) {
        Ok(asked) => asked,
        Err(refusal) if first_refusal(shared, &configured.pads, &refusal.to_string()) => {
            gst::element_warning!(
                element,
                gst::CoreError::Negotiation,
                ("Downstream asked for new output caps mid-stream, which cannot be followed: \
                     {refusal}; the outputs keep their caps. Put videoconvertscale between the \
                     element and that downstream, which then gets caps it takes.")
            );
            return;
        }
        Err(refusal) => {
            gst::debug!(
                CAT,
                obj = element,
                "the outputs still keep their caps: {refusal}"
            );
            return;
        }
    };
    let mut now = configured.config.outputs.clone();
    let mut changed = Vec::new();
    for ((pad, output), wanted) in configured
        .pads
        .iter()
        .zip(&mut now)
        .zip(&asked.config.outputs)
    {
        if output.out_caps == wanted.out_caps {
            continue;
        }
        match follow(&current, pad, output, wanted) {
            Ok((refitted, sink)) => {
                gst::info!(CAT, obj = pad, "renegotiated to {}", refitted.out_caps);
                *output = refitted;
                changed.push(sink);
            }
            Err(why)
                if first_refusal(
                    shared,
                    std::slice::from_ref(pad),
                    &wanted.out_caps.to_string(),
                ) =>
            {
                gst::element_warning!(
                    element,
                    gst::CoreError::Negotiation,
                    (
                        "Output pad {} keeps its caps {}: downstream now asks for {}, which cannot \
                     be followed mid-stream: {why}.",
                        pad.name(),
                        output.out_caps,
                        wanted.out_caps
                    )
                )
            }
            Err(why) => gst::debug!(CAT, obj = pad, "still keeps its caps: {why}"),
        }
    }
    if changed.is_empty() {
        return;
    }
    let mut state = shared.lock();
    for output in changed {
        if let Some(slot) = state.outputs.iter_mut().find(|o| o.pad == output.pad) {
            *slot = output;
        }
    }
    state.configured = Some(Arc::new(Configured {
        config: StreamConfig {
            in_info: configured.config.in_info.clone(),
            canvas: configured.config.canvas,
            outputs: now,
        },
        pads: configured.pads.clone(),
        in_caps: configured.in_caps.clone(),
        shapes: configured.shapes.clone(),
    }));
}

/// `output` (of `pad`) refitted to the frame of `wanted` on its crop of the
/// canvas, its compositor built and its caps sent; or why not, with the remedy.
fn follow(
    current: &Current,
    pad: &gst::Pad,
    output: &OutputConfig,
    wanted: &OutputConfig,
) -> Result<(OutputConfig, OutputSink), String> {
    let in_info = &current.configured.config.in_info;
    let frame = FixedFrame {
        width: wanted.out_info.width(),
        height: wanted.out_info.height(),
        par: pixel_aspect(wanted.out_info.par()),
    };
    let refitted = output.refit(in_info, frame).map_err(|why| {
        format!(
            "{why}, and the canvas shared by the outputs is laid out once per stream. Let \
             downstream choose the size or the pixel-aspect-ratio (or put videoconvertscale \
             before it) so that a frame of this output's display aspect fits, or restart the \
             stream to lay the canvas out again"
        )
    })?;
    let compositor = Compositor::new(in_info, &refitted, current.feather, current.threads)
        .map_err(|err| format!("{err}; keep the outputs' caps fixed while streaming"))?;
    if !pad.push_event(gst::event::Caps::new(&refitted.out_caps)) {
        return Err(
            "downstream refused them when they were sent; give it caps it takes as a whole \
             (size and pixel-aspect-ratio)"
                .into(),
        );
    }
    let sink = OutputSink {
        pad: pad.clone(),
        out_caps: refitted.out_caps.clone(),
        compositor: Arc::new(compositor),
        caps_pending: false,
        pool: downstream_pool(pad, &refitted.out_caps),
        unfollowed: None,
    };
    Ok((refitted, sink))
}

/// Whether `asked` (what downstream asked for, which cannot be followed) is
/// new to any of `pads`; it is remembered as the last such of each.
fn first_refusal(shared: &Shared, pads: &[gst::Pad], asked: &str) -> bool {
    let mut state = shared.lock();
    let mut outputs = state
        .outputs
        .iter_mut()
        .filter(|o| pads.contains(&o.pad))
        .peekable();
    let mut first = outputs.peek().is_none();
    for output in outputs {
        first |= output.unfollowed.as_deref() != Some(asked);
        output.unfollowed = Some(asked.to_string());
    }
    first
}
