// SPDX-License-Identifier: MPL-2.0
//! Negotiation of one input caps over the element's outputs: each output
//! pad's shape, the frame size its downstream fixes (if it refuses the
//! full-resolution one), and its peer's acceptance of the caps that follow.

use gst::prelude::*;

use super::caps::downstream_size;
use super::config::{OutputRequest, OutputShape, StreamConfig};
use super::state::Configured;

/// Why a configuration failed.
#[derive(Debug)]
pub enum Refusal {
    /// The input caps (or an output's shape) cannot be handled.
    Format(String),
    /// A downstream element refuses its output's caps.
    Downstream(String),
}

/// The configuration of `in_caps` for `outputs` (a pad and its shape each, in
/// the order of the outputs) on a `canvas` square.
pub fn configure(
    in_caps: &gst::Caps,
    outputs: &[(gst::Pad, OutputShape)],
    canvas: u32,
) -> Result<Configured, Refusal> {
    let natural: Vec<OutputRequest> = outputs
        .iter()
        .map(|(_, shape)| OutputRequest {
            shape: *shape,
            size: None,
        })
        .collect();
    let config = StreamConfig::new(in_caps, &natural, canvas).map_err(Refusal::Format)?;
    let sized: Vec<OutputRequest> = outputs
        .iter()
        .zip(&config.outputs)
        .zip(&natural)
        .map(|(((pad, _), output), request)| {
            let size = pad
                .peer()
                .and_then(|peer| downstream_size(&peer.query_caps(None), &output.out_caps));
            OutputRequest { size, ..*request }
        })
        .collect();
    let config = if sized == natural {
        config
    } else {
        StreamConfig::new(in_caps, &sized, canvas).map_err(Refusal::Format)?
    };
    for ((pad, _), output) in outputs.iter().zip(&config.outputs) {
        if let Some(peer) = pad.peer()
            && !peer.query_accept_caps(&output.out_caps)
        {
            return Err(Refusal::Downstream(format!(
                "downstream of {} does not accept the output caps {}",
                pad.name(),
                output.out_caps
            )));
        }
    }
    Ok(Configured {
        config,
        pads: outputs.iter().map(|(pad, _)| pad.clone()).collect(),
        in_caps: in_caps.clone(),
        shapes: outputs.iter().map(|(_, shape)| *shape).collect(),
    })
}
