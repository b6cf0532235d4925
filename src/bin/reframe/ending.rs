// SPDX-License-Identifier: MPL-2.0
//! Ending a run early and cleanly (the first Ctrl-C): every output keeps the
//! frames the element gave it so far. Each of the element's output pads has a
//! [`Gate`] that counts the frames going out and, once closed, drops what
//! comes after; EOS is then sent into the branch behind it, so that the
//! encoder gives out the frames it holds and the muxer finishes the file.
//! The other streams of the input (audio, left-out streams) are ended the same
//! way where they leave the demuxer. The element itself is not ended: a plan's
//! output pass would refuse a stream shorter than its plan, and the frames it
//! still holds are not waited for; the pipeline goes to NULL after the files
//! are finished.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gst::prelude::*;

use crate::pipeline::{DEMUX_NAME, Reframe, VIDEO_QUEUE_NAME};

/// The way out of one of the element's output pads.
#[derive(Debug, Default)]
pub struct Gate {
    frames: AtomicU64,
    closed: AtomicBool,
}

impl Gate {
    /// A gate on `pad`, open.
    pub fn install(pad: &gst::Pad) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        let on_pad = gate.clone();
        let kinds = gst::PadProbeType::BUFFER
            | gst::PadProbeType::BUFFER_LIST
            | gst::PadProbeType::EVENT_DOWNSTREAM;
        pad.add_probe(kinds, move |_, info| {
            if on_pad.closed.load(Ordering::SeqCst) {
                return gst::PadProbeReturn::Drop;
            }
            let frames = match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => 1,
                Some(gst::PadProbeData::BufferList(list)) => list.len() as u64,
                _ => 0,
            };
            on_pad.frames.fetch_add(frames, Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
        gate
    }

    /// The frames that went through.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::SeqCst)
    }
}

/// Ends every output where it is: closes the gates, sends EOS into each
/// output branch and into every stream of the demuxer but the video one.
/// The pipeline then reaches EOS once the files are finished.
pub fn end_outputs_here(reframe: &Reframe) {
    for branch in &reframe.outputs {
        branch.gate.closed.store(true, Ordering::SeqCst);
        // A frame that passed the gate before it closed holds the branch's
        // stream lock: the EOS comes after it.
        if let Some(peer) = branch.pad.peer() {
            peer.send_event(gst::event::Eos::new());
        }
    }
    let Some(demux) = reframe.pipeline.by_name(DEMUX_NAME) else {
        return;
    };
    for pad in demux.src_pads() {
        let Some(peer) = pad.peer() else { continue };
        let is_video = peer
            .parent_element()
            .is_some_and(|element| element.name() == VIDEO_QUEUE_NAME);
        if is_video {
            continue;
        }
        pad.add_probe(gst::PadProbeType::DATA_DOWNSTREAM, |_, _| {
            gst::PadProbeReturn::Drop
        });
        peer.send_event(gst::event::Eos::new());
    }
}
