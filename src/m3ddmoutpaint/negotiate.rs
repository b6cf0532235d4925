// SPDX-License-Identifier: MPL-2.0
//! Negotiation of one input caps over the element's outputs: each output
//! pad's shape, the frame (size and pixel-aspect-ratio) its downstream fixes
//! if it refuses the full-resolution one, and its peer's acceptance of the
//! caps that follow.

use gst::prelude::*;

use super::config::{OutputRequest, OutputShape, StreamConfig, display_ratio, pixel_aspect};
use super::fixate::{Natural, downstream_frame};
use super::formats::size_alignment;
use super::state::Configured;

/// Why a configuration failed.
#[derive(Debug)]
pub enum Refusal {
    /// The input caps (or an output's shape) cannot be handled.
    Format(String),
    /// A downstream element refuses its output's caps.
    Downstream(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (Refusal::Format(why) | Refusal::Downstream(why)) = self;
        f.write_str(why)
    }
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
    let par = pixel_aspect(config.in_info.par());
    let align = size_alignment(config.in_info.format());
    let sized = outputs
        .iter()
        .zip(&config.outputs)
        .zip(&natural)
        .map(|(((pad, shape), output), request)| {
            let (width, height) = (output.output.width, output.output.height);
            let display = match shape {
                OutputShape::Aspect(aspect) => *aspect,
                OutputShape::Expand(_) => {
                    display_ratio(width, height, par).map_err(Refusal::Format)?
                }
            };
            let natural = Natural {
                caps: &output.out_caps,
                size: (width, height),
                par,
                display,
                align,
            };
            let size = pad
                .peer()
                .and_then(|peer| downstream_frame(&peer.query_caps(None), &natural));
            Ok(OutputRequest { size, ..*request })
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
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
                "downstream of {} does not accept the output caps {} (it takes {})",
                pad.name(),
                output.out_caps,
                peer.query_caps(None)
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
