// SPDX-License-Identifier: MPL-2.0
//! Renegotiation of the outputs mid-stream: a RECONFIGURE from downstream (a
//! capsfilter or a sink that now fixes another frame size) is honoured from
//! the next frame on. Each output is negotiated again from the input caps
//! and its shape; an output whose caps change gets them sent, a compositor
//! and downstream's pool anew. The shared canvas, the generator and the
//! frames it holds are left as they are, so no frame is lost or generated
//! twice, and the source keeps its place (bit-exact at the natural size).

use std::sync::Arc;

use gst::prelude::*;

use super::CAT;
use super::config::OutputShape;
use super::frames::Compositor;
use super::negotiate;
use super::pools::downstream_pool;
use super::state::{OutputSink, Shared};

/// Whether downstream of any of `pads` asked for a reconfiguration (every
/// pad's flag is read and cleared).
pub fn requested(pads: &[gst::Pad]) -> bool {
    pads.iter().filter(|pad| pad.check_reconfigure()).count() > 0
}

/// Negotiates the outputs of the current configuration again and applies
/// what changed; on a refusal the outputs keep their caps (and a warning
/// goes to the debug log).
pub fn renegotiate(element: &gst::Element, shared: &Shared) {
    let (configured, canvas, feather, threads) = {
        let state = shared.lock();
        let (Some(configured), Some(run)) = (state.configured.clone(), state.run.clone()) else {
            return;
        };
        let (feather, threads) = (run.settings.feather, run.converter_threads());
        (configured, run.canvas(), feather, threads)
    };
    let outputs: Vec<(gst::Pad, OutputShape)> = configured
        .pads
        .iter()
        .cloned()
        .zip(configured.shapes.iter().copied())
        .collect();
    let fresh = match negotiate::configure(&configured.in_caps, &outputs, canvas) {
        Ok(fresh) => fresh,
        Err(refusal) => {
            gst::warning!(CAT, obj = element, "outputs keep their caps: {refusal:?}");
            return;
        }
    };
    if fresh.config.canvas != configured.config.canvas {
        gst::warning!(
            CAT,
            obj = element,
            "a renegotiation would move the canvas: ignored"
        );
        return;
    }
    let mut changed = Vec::new();
    let before = configured.config.outputs.iter();
    for ((pad, old), new) in configured
        .pads
        .iter()
        .zip(before)
        .zip(&fresh.config.outputs)
    {
        if old.out_caps == new.out_caps {
            continue;
        }
        let compositor = match Compositor::new(&fresh.config.in_info, new, feather, threads) {
            Ok(compositor) => compositor,
            Err(err) => {
                gst::warning!(CAT, obj = pad, "keeps its caps: {err}");
                return;
            }
        };
        if !pad.push_event(gst::event::Caps::new(&new.out_caps)) {
            gst::warning!(CAT, obj = pad, "downstream refuses {}", new.out_caps);
            return;
        }
        gst::info!(CAT, obj = pad, "renegotiated to {}", new.out_caps);
        changed.push(OutputSink {
            pad: pad.clone(),
            out_caps: new.out_caps.clone(),
            compositor: Arc::new(compositor),
            caps_pending: false,
            pool: downstream_pool(pad, &new.out_caps),
        });
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
    state.configured = Some(Arc::new(fresh));
}
