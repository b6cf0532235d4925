// SPDX-License-Identifier: MPL-2.0
//! Sources a broadcaster or a phone gives `m3ddm-reframe` (issue 23): an
//! interlaced H.264 file (made here with `interlace` and x264's interlaced
//! coding) is deinterlaced by the tool itself and comes out progressive at the
//! asked aspect; a phone clip stored sideways with a rotate-90 tag comes out
//! upright (its marker where the rotation puts it) at the asked aspect, with
//! no rotation left in its tags.

// Only some of the shared media helpers are used here.
#[allow(dead_code)]
mod media;

use media::{decode, first_rgb_frame, make_rotated_mp4, orientation_of, play, reframe, scratch};

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

#[test]
fn a_file_tagged_rotate_90_is_made_upright_then_reframed() {
    let dir = scratch("reframe_sources", "rotated");
    let input = dir.join("rotated.mp4");
    let output = dir.join("out.mp4");
    make_rotated_mp4(&input, 10, 90);
    assert_eq!(orientation_of(&input).as_deref(), Some("rotate-90"));
    let run = reframe(
        &[
            "--fill",
            "color",
            "--aspect",
            "16/9",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
        ],
        &[],
    );
    assert!(run.success, "{}", run.stderr);
    // Upright the 160×96 storage is 96×160; grown to 16:9 it is 284×160.
    let (width, height, rgb) = first_rgb_frame(&output);
    assert_eq!((width, height), (284, 160));
    assert!(
        orientation_of(&output).is_none_or(|o| o == "rotate-0"),
        "{:?}",
        orientation_of(&output)
    );
    let red = |x: u32, y: u32| {
        let at = (y * width + x) as usize * 3;
        let (r, g, b) = (rgb[at], rgb[at + 1], rgb[at + 2]);
        r > 180 && g < 80 && b < 80
    };
    // The stored top-left corner turns clockwise to the upright top-right: the
    // source spans x 94..190 (centred), so the marker is at its right edge.
    let (left, right) = ((284 - 96) / 2, (284 - 96) / 2 + 96);
    assert!(
        red(right - 10, 10),
        "the marker is at the upright top-right"
    );
    assert!(!red(left + 10, 10), "nothing red at the top-left");
    assert!(!red(right - 10, 150), "nothing red at the bottom-right");
}
