// SPDX-License-Identifier: MPL-2.0
//! The property specs of the two passes (`planned.rs` runs them; the values
//! live in `Settings`).

use gst::glib;
use gst::prelude::*;

/// The properties of the two passes (READY-mutable).
pub fn plan_properties() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("plan-file")
            .nick("Keyframe plan")
            .blurb("A keyframe plan of the whole stream (write-plan, or m3ddm-reframe's first pass): the \
                    element then runs only the stride-5 and stride-1 windows of the official plan of the \
                    whole stream, holding about 80 frames; checked at READY (version, model, steps, \
                    scheduler, scales, seed) and against the stream (layout, framerate, frame count)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("write-plan")
            .nick("Write a keyframe plan")
            .blurb("Keyframe pass: collect the frames it reads, run it (per shot of plan-cuts) when frame plan-frames arrives and \
                    write the plan to this file (the output is then a flat fill, not meant to be kept)")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt64::builder("plan-frames")
            .nick("Frames of the planned stream")
            .blurb("The stream's exact frame count, for write-plan")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("plan-cuts")
            .nick("Scene cuts of the planned stream")
            .blurb("For write-plan: the first frame of each shot after the first (frame numbers from 0, \
                    separated by commas, e.g. from the scene-cut messages of a reading with \
                    scene-threshold); each shot gets a plan of its own")
            .mutable_ready()
            .build(),
    ]
}
