// SPDX-License-Identifier: MPL-2.0
//! The element's side of new input caps (the CAPS event): the caps turned
//! upright, each output's shape (`src` and the request pads), the caps
//! negotiated downstream and checked (format, memory), the content scaler and
//! the stream's length for progress made, and the configuration queued as a
//! drain point so that the task drains the frames of the old caps first.

use std::sync::Arc;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::M3ddmOutpaint;
use crate::m3ddmoutpaint::CAT;
use crate::m3ddmoutpaint::config::OutputShape;
use crate::m3ddmoutpaint::formats;
use crate::m3ddmoutpaint::frames::ContentScaler;
use crate::m3ddmoutpaint::negotiate::{self, Refusal};
use crate::m3ddmoutpaint::outputpad::{OutputPad, pad_number};
use crate::m3ddmoutpaint::progress::Progress;
use crate::m3ddmoutpaint::state::{DrainPoint, Item, RunContext};

impl M3ddmOutpaint {
    /// New input caps: checked, then queued so the task drains the old frames first.
    pub(super) fn sink_caps(&self, caps: &gst::Caps) -> bool {
        let caps = &match self.upright_caps(caps) {
            Ok(caps) => caps,
            Err(err) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{err}"));
                return false;
            }
        };
        let Some(run) = self.shared.lock().run.clone() else {
            gst::warning!(CAT, imp = self, "caps {caps} arrived while stopped");
            return false;
        };
        let outputs = match self.output_shapes(&run) {
            Ok(outputs) => outputs,
            Err(err) => {
                gst::element_imp_error!(self, gst::LibraryError::Settings, ("{err}"));
                return false;
            }
        };
        let configured = match negotiate::configure(caps, &outputs, run.canvas()) {
            Ok(configured) => Arc::new(configured),
            Err(Refusal::Format(err)) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{err}"));
                return false;
            }
            Err(Refusal::Downstream(err)) => {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{err}"));
                return false;
            }
        };
        let config = &configured.config;
        if let Err(err) = run.check_memory(config.in_info.size()) {
            gst::element_imp_error!(self, gst::ResourceError::NoSpaceLeft, ("{err}"));
            return false;
        }
        let scaler = match ContentScaler::new(config, run.detects_cuts(), run.converter_threads()) {
            Ok(scaler) => scaler,
            Err(err) => {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{err}"));
                return false;
            }
        };
        for (pad, output) in configured.pads.iter().zip(&config.outputs) {
            gst::info!(
                CAT,
                imp = self,
                "input {caps} gives {} {}",
                pad.name(),
                output.out_caps
            );
        }
        let live = self.upstream_is_live();
        let total = self.stream_length(config.fps(), live);
        let hdr = formats::hdr_transfer(&config.in_info);
        let tell_hdr = {
            let mut state = self.shared.lock();
            let tell = hdr.filter(|_| !state.told_sdr_canvas);
            state.told_sdr_canvas |= tell.is_some();
            state.fps = config.fps();
            state.scaler = Some(Arc::new(scaler));
            state.progress = Progress::new(total);
            state.refresh_deadline();
            tell
        };
        if let Some(transfer) = tell_hdr {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ("the input's transfer is {transfer}: the fill is made from an 8-bit RGB canvas of its coded values, as if SDR; the source keeps its depth")
            );
        }
        self.enqueue(Item::Drain(DrainPoint::Caps(configured)))
    }

    /// The outputs: `src` with the element's shape, then the request pads by
    /// the number in their names, each at its own aspect.
    fn output_shapes(&self, run: &RunContext) -> Result<Vec<(gst::Pad, OutputShape)>, String> {
        let mut requested: Vec<OutputPad> = self
            .obj()
            .src_pads()
            .into_iter()
            .filter_map(|pad| pad.downcast::<OutputPad>().ok())
            .collect();
        requested.sort_by_key(|pad| pad_number(&pad.name()));
        let shape = run.settings.output_shape()?;
        if matches!(shape, OutputShape::Expand(_)) && !requested.is_empty() {
            return Err(format!(
                "expand cannot be combined with the request pads ({}): use aspect on every output",
                requested
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut outputs = vec![(self.srcpad.clone(), shape)];
        for pad in requested {
            let aspect = pad.aspect()?;
            outputs.push((pad.upcast(), OutputShape::Aspect(aspect)));
        }
        Ok(outputs)
    }

    /// Whether upstream is live.
    fn upstream_is_live(&self) -> bool {
        let mut latency = gst::query::Latency::new();
        self.sinkpad.peer_query(&mut latency) && latency.result().0
    }

    /// Frames in the stream, for a non-live upstream that knows its duration.
    fn stream_length(&self, fps: Option<f64>, live: bool) -> Option<u64> {
        if live {
            return None;
        }
        let duration = self.sinkpad.peer_query_duration::<gst::ClockTime>()?;
        Some((duration.nseconds() as f64 / 1e9 * fps?).round() as u64)
    }
}
