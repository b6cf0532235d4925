#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# The prepared GPU benchmark (`make gpu-bench`; needs a CUDA device, an NVIDIA driver for
# CUDA 13 and `make gpu-venv`). Never run on the project's CPU machines: no figure here
# comes from anywhere but the card this runs on.
#
#   scripts/gpu-bench.sh FP32_MODEL_DIR FP16_MODEL_DIR [DEVICES]
#
# FP32/FP16_MODEL_DIR: full-size exports (python -m m3ddm_export --unet ... --vae ...
# --precision fp32|fp16). DEVICES: the all-devices list (default: every GPU nvidia-smi lists).
# Per variant (precision x io-binding x cuda-graphs x scheduler) it streams FRAMES test
# frames (GPU_BENCH_FRAMES, default 240) through the element on device 0 and on all devices,
# interleaved over repetitions, and prints the wall seconds per frame with the card's name
# and the peak device memory nvidia-smi saw. Per-call and per-window figures are not
# printed yet (they need a driver that reads the element's stats; see the README).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    echo "usage: scripts/gpu-bench.sh FP32_MODEL_DIR FP16_MODEL_DIR [DEVICES]" >&2
    exit 2
fi
fp32=$1 fp16=$2
command -v nvidia-smi >/dev/null || { echo "gpu-bench: nvidia-smi was not found: no NVIDIA driver here" >&2; exit 1; }
all=${3:-$(nvidia-smi --query-gpu=index --format=csv,noheader | paste -sd, -)}
card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
reps=${GPU_BENCH_REPS:-3}
frames=${GPU_BENCH_FRAMES:-240}
export GST_PLUGIN_PATH=$PWD/target/release
echo "card: $card; devices: $all; repetitions: $reps"

peak_file=$(mktemp)
nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 200 >"$peak_file" &
smi=$!
trap 'kill $smi 2>/dev/null; rm -f "$peak_file"' EXIT

for rep in $(seq 1 "$reps"); do
    for precision in fp32 fp16; do
        model=$fp32; [ $precision = fp16 ] && model=$fp16
        for binding in false true; do
            for graphs in false true; do
                [ $graphs = true ] && [ $binding = false ] && continue   # CUDA graphs need IO binding
                for sched in "pndm 50" "dpmsolver++ 20"; do
                    set -- $sched
                    for devices in 0 "$all"; do
                        echo "== rep $rep $precision io-binding=$binding cuda-graphs=$graphs $1 $2 devices=$devices"
                        start=$(date +%s.%N)
                        gst-launch-1.0 -q videotestsrc num-buffers="$frames" \
                            ! video/x-raw,width=640,height=360,framerate=30/1 \
                            ! m3ddmoutpaint model-path="$model" execution-provider=cuda device-id="$devices" \
                                io-binding=$binding cuda-graphs=$graphs cudnn-algo-search=exhaustive \
                                scheduler="$1" steps="$2" ! fakesink
                        end=$(date +%s.%N)
                        echo "seconds-per-frame: $(echo "($end - $start) / $frames" | bc -l)"
                    done
                done
            done
        done
    done
done
echo "peak device memory (MiB) per device:"
sort -t, -k1,1n -k2,2n "$peak_file" | awk -F', ' '{peak[$1]=$2} END {for (d in peak) print "  device " d ": " peak[d]}'
