#!/usr/bin/env bash
# `make demo`: a round trip through a file, as a user would do it. GStreamer's own
# encoders first write a 16:9 H.264 + AAC MP4 (a test pattern and a tone); then
# m3ddm-reframe reframes that file to 9:16 with the bundled tiny random-weight
# model, copies its audio, and writes demo-out/demo-9x16.mp4; one frame of the
# result, decoded back, becomes demo-out/demo-frame.png.
# The tiny model has random weights: the generated area is structured noise, not
# a picture. Export the published checkpoint (models/README.md) and pass its
# directory as MODEL=... for real outpainting.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/tiny}
FRAMES=${FRAMES:-60}
STEPS=${STEPS:-10}
out=demo-out
source_clip="$out/demo-source.mp4"
mkdir -p "$out"
rm -f "$out"/frame-*.png

describe() {
  gst-discoverer-1.0 "$1" | grep -E "container #|video #|audio #|Duration|Width|Height|Frame rate|Sample rate|Channels" \
    | sed -e 's/^ */  /'
}

echo "Writing $source_clip: $FRAMES frames of 640x360 (16:9) H.264 with an AAC tone, by GStreamer's encoders..."
gst-launch-1.0 -q \
  videotestsrc num-buffers="$FRAMES" pattern=ball motion=sweep \
  ! video/x-raw,width=640,height=360,framerate=30/1,format=I420 ! timeoverlay font-desc="Sans 24" \
  ! x264enc ! queue ! mp4mux name=mux ! filesink location="$source_clip" \
  audiotestsrc num-buffers="$FRAMES" samplesperbuffer=1470 freq=440 volume=0.3 \
  ! audio/x-raw,rate=44100,channels=2 ! avenc_aac ! queue ! mux.
echo "Read:"
describe "$source_clip"

echo "Reframing it to 9:16 with $MODEL ($STEPS steps)..."
start=$(date +%s)
target/release/m3ddm-reframe "$source_clip" "$out/demo-9x16.mp4" --aspect 9/16 --model "$MODEL" --steps "$STEPS"
echo "Wrote $out/demo-9x16.mp4 in $(( $(date +%s) - start )) s:"
describe "$out/demo-9x16.mp4"

# One frame per second of the result, decoded back from the file.
gst-launch-1.0 -q filesrc location="$out/demo-9x16.mp4" ! decodebin ! videoconvert \
  ! videorate drop-only=true ! video/x-raw,framerate=1/1 ! pngenc ! multifilesink location="$out/frame-%02d.png"
cp "$out/frame-01.png" "$out/demo-frame.png" 2>/dev/null || cp "$out/frame-00.png" "$out/demo-frame.png"
echo "Wrote $out/demo-frame.png."
case "$MODEL" in models/tiny*) echo "Note: the bundled tiny model has random weights, so the new area is noise. See models/README.md to export the published M3DDM checkpoint.";; esac
