// SPDX-License-Identifier: MPL-2.0
//! The property specs of the plan: its coarse-to-fine `strides`, and the two
//! passes (`planned.rs` runs them). The values live in `Settings`.

use gst::glib;
use gst::prelude::*;

/// The properties of the plan and the two passes (READY-mutable).
pub fn plan_properties() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("strides")
            .nick("Coarse-to-fine strides")
            .blurb("The strides of the plan's passes, comma-separated, coarse to fine, ending in 1 (each 1-15, \
                    strictly decreasing): 15,5,1 is the official M3DDM plan, 5,3,1 the one of M3DDM+'s \
                    evaluation; unset or empty: the model's own (its manifest's `strides`: 5,3,1 for \
                    make model MODEL=m3ddm-plus, else 15,5,1). Clips under 50 frames run at 1 only")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("plan-file")
            .nick("Keyframe plan")
            .blurb("A keyframe plan of the whole stream (write-plan, or m3ddm-reframe's first pass): the \
                    element then runs only the windows of the finer strides (5 and 1 of 15,5,1) of the plan of \
                    the whole stream, holding about 80 frames at 15,5,1; checked at READY (version, model, \
                    steps, scheduler, scales, seed, strides) and against the stream (layout, framerate, \
                    frame count)")
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
