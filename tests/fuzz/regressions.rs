// SPDX-License-Identifier: MPL-2.0
//! Fixed scripts: one that walks through every kind of step (a check of the
//! runner and model themselves), and the minimal script of every bug the fuzz
//! test found, kept as a regression test.

use super::runner::run_case;
use super::script::{CapsSpec, Mode, PropChange, Script, StateTrip, Step};

const RGB_64X36: CapsSpec = CapsSpec {
    format: "RGB",
    width: 64,
    height: 36,
    par: (1, 1),
    fps: (30, 1),
};

fn push(count: u8) -> Step {
    Step::Push {
        count,
        pts: true,
        detach: false,
    }
}

fn run(mode: Mode, script: Script) {
    if let Err(err) = run_case(mode, &script) {
        panic!("{err}\nscript: {script:#?}");
    }
}

/// Every kind of step once, in blur mode.
#[test]
fn every_step_in_blur_mode() {
    let i420 = CapsSpec {
        format: "I420",
        width: 63,
        height: 35,
        par: (4, 3),
        fps: (0, 1),
    };
    let gray8 = CapsSpec {
        format: "GRAY8",
        ..RGB_64X36
    };
    let thin = CapsSpec {
        width: 1,
        ..RGB_64X36
    };
    run(
        Mode::Blur,
        Script {
            properties: vec![],
            caps: Some(RGB_64X36),
            steps: vec![
                push(3),
                Step::Marker,
                Step::Gap,
                Step::Push {
                    count: 2,
                    pts: false,
                    detach: true,
                },
                Step::Caps(i420),
                push(2),
                Step::Caps(gray8),
                Step::Caps(thin),
                push(1),
                Step::Drain,
                Step::Segment,
                Step::Push {
                    count: 1,
                    pts: true,
                    detach: true,
                },
                Step::FlushStart,
                push(1),
                Step::FlushStop,
                push(2),
                Step::Seek { to: 100 },
                push(2),
                Step::ReadStats,
                Step::Property(PropChange {
                    name: "aspect",
                    value: "1/1",
                }),
                Step::State(StateTrip::Pause),
                push(1),
                Step::State(StateTrip::Play),
                Step::State(StateTrip::ViaReady),
                push(2),
                Step::Eos,
                push(1),
                Step::StreamStart,
                push(2),
                Step::State(StateTrip::ViaNull),
                push(1),
            ],
        },
    );
}

/// Pushes around the lookahead, a flush during a chunk, EOS, with the tiny model.
#[test]
fn every_step_in_outpaint_mode() {
    run(
        Mode::Outpaint,
        Script {
            properties: vec![PropChange {
                name: "lookahead",
                value: "3",
            }],
            caps: Some(RGB_64X36),
            steps: vec![
                push(2),
                Step::Marker,
                Step::Push {
                    count: 2,
                    pts: true,
                    detach: true,
                },
                Step::FlushStart,
                Step::FlushStop,
                push(4),
                Step::Drain,
                Step::Eos,
                Step::StreamStart,
                push(1),
            ],
        },
    );
}

/// Found by the fuzz test: a new stream right after EOS, while the frames
/// before that EOS still waited for their chunk. The STREAM_START came before
/// the EOS had left, so the new stream's first frame got EOS back; the element
/// now lets that EOS leave first, then takes the new stream.
#[test]
fn new_stream_while_the_eos_before_it_waits_for_a_chunk() {
    run(
        Mode::Outpaint,
        Script {
            properties: vec![PropChange {
                name: "lookahead",
                value: "8",
            }],
            caps: Some(RGB_64X36),
            steps: vec![push(2), Step::Eos, Step::StreamStart, push(1)],
        },
    );
}
