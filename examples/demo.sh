#!/usr/bin/env bash
# `make demo`: a generated 16:9 clip reframed to 9:16 by m3ddmoutpaint with the
# bundled tiny random-weight model, written as demo-out/demo-9x16.mp4, plus one
# output frame as demo-out/demo-frame.png.
# The tiny model has random weights: the generated area is structured noise, not
# a picture. Export the published checkpoint (models/README.md) and pass its
# directory as MODEL=... for real outpainting.
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
MODEL=${MODEL:-models/tiny}
FRAMES=${FRAMES:-60}
STEPS=${STEPS:-10}
out=demo-out
mkdir -p "$out"
src="videotestsrc num-buffers=$FRAMES pattern=ball motion=sweep ! video/x-raw,width=640,height=360,framerate=30/1"
echo "Reframing a generated 640x360 (16:9) clip of $FRAMES frames to 9:16 with $MODEL ($STEPS steps)..."
start=$(date +%s)
# The element releases a whole chunk at once: unbounded queues keep one tee branch
# from blocking the other while the sinks preroll.
unbounded="max-size-buffers=0 max-size-bytes=0 max-size-time=0"
gst-launch-1.0 -q $src ! timeoverlay font-desc="Sans 24" ! videoconvert ! video/x-raw,format=I420 \
  ! m3ddmoutpaint aspect=9/16 model-path="$MODEL" steps="$STEPS" \
  ! tee name=t \
  t. ! queue $unbounded ! videoconvert ! x264enc speed-preset=veryfast tune=zerolatency ! mp4mux ! filesink location="$out/demo-9x16.mp4" \
  t. ! queue $unbounded ! videorate drop-only=true ! video/x-raw,framerate=1/1 ! videoconvert ! pngenc \
     ! multifilesink location="$out/frame-%02d.png"
cp "$out/frame-01.png" "$out/demo-frame.png" 2>/dev/null || cp "$out/frame-00.png" "$out/demo-frame.png"
echo "Wrote $out/demo-9x16.mp4 and $out/demo-frame.png in $(( $(date +%s) - start )) s."
gst-discoverer-1.0 "$out/demo-9x16.mp4" 2>/dev/null | grep -E "Duration|video #|Width|Height" || true
case "$MODEL" in models/tiny*) echo "Note: the bundled tiny model has random weights, so the new area is noise. See models/README.md to export the published M3DDM checkpoint.";; esac
