// SPDX-License-Identifier: MPL-2.0
//! Sources a broadcaster or a phone gives `m3ddm-reframe` (issue 23): an
//! interlaced H.264 file (made here with `interlace` and x264's interlaced
//! coding) is deinterlaced by the tool itself and comes out progressive at the
//! asked aspect.

// Only some of the shared media helpers are used here.
#[allow(dead_code)]
mod media;

use media::{decode, play, reframe, scratch};

#[test]
fn an_interlaced_file_is_deinterlaced_and_reframed() {
    let dir = scratch("reframe_sources", "interlaced");
    let input = dir.join("interlaced.mp4");
    let output = dir.join("out.mp4");
    play(&format!(
        "videotestsrc num-buffers=30 pattern=ball \
         ! video/x-raw,width=160,height=96,framerate=30/1,format=I420 \
         ! interlace ! x264enc interlaced=true ! mp4mux ! filesink location={}",
        input.display()
    ))
    .expect("GStreamer's encoders make the interlaced file");
    let source = decode(&input);
    assert!(
        source.interlaced_frames > 0,
        "the test file must decode to interlaced frames: {source:?}"
    );
    let run = reframe(
        &[
            "--fill",
            "blur",
            "--aspect",
            "9/16",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
        ],
        &[],
    );
    assert!(run.success, "{}", run.stderr);
    let out = decode(&output);
    assert_eq!(out.interlaced_frames, 0, "{out:?}");
    // One frame per field for the interlaced frames (deinterlace's default).
    assert!(
        out.video_frames >= source.video_frames,
        "{out:?} from {source:?}"
    );
    assert_eq!((out.width, out.height), (160, 284), "{out:?}");
}
