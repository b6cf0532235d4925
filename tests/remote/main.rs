// SPDX-License-Identifier: MPL-2.0
//! The element with `inference-server=`, against real Open Inference Protocol
//! servers (the project's Triton test server on loopback, serving the tiny
//! model): the same frames as in process, on two servers that both take
//! calls; a stream that loses one of two servers completes; losing the only
//! server, or its hanging, is an error naming it within the deadline; READY
//! refuses a server whose model differs from the manifest, an unreachable
//! server and a malformed URL; `security.rs`: TLS, mutual TLS and headers. Without `.venv-serving` the server tests say
//! so and pass (`make test` creates it).
//!
//! Two servers are shared by the tests that kill none (started once; the end
//! of this process ends them, through `--stop-on-eof`); a test that kills or
//! stops a server starts its own, killed when dropped. In-process reference
//! runs are made once per frame count.

#[path = "../common/mod.rs"]
mod common;
mod security;
mod server;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstm3ddm::engine::{
    ExecutionProvider, Model, ModelOptions, RemoteOptions, ServerStats, SessionConfig,
};
use server::{ServerHandle, TestServer, free_ports, serving_python};

const LOOKAHEAD: u32 = 16;
const DEFAULT_TIMEOUT_MS: u32 = 60_000;

/// Test servers of the tiny model, one per entry of `extra_args` (more
/// options of the server), or `None` (and why, printed) without the serving venv.
fn start_servers(extra_args: &[&[&str]]) -> Option<Vec<TestServer>> {
    match serving_python() {
        Ok(python) => Some(TestServer::start(&python, &tiny_model(), extra_args)),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// The two servers shared by the tests that leave them running. The second
/// takes batches of 2 at most, so the VAE's calls of up to 8 images go in parts.
fn shared_servers() -> Option<&'static [TestServer]> {
    static SHARED: OnceLock<Option<Vec<TestServer>>> = OnceLock::new();
    SHARED
        .get_or_init(|| start_servers(&[&[], &["--max-batch", "2"]]))
        .as_deref()
}

fn urls(servers: &[TestServer]) -> Vec<String> {
    servers.iter().map(|s| s.url.clone()).collect()
}

/// The element's properties: the tiny model, 2 steps, on these servers.
fn remote_properties(urls: &[String], timeout_ms: u32) -> Vec<(&'static str, String)> {
    let mut properties = outpaint_properties(LOOKAHEAD);
    properties.push(("inference-server", urls.join(",")));
    properties.push(("inference-timeout", timeout_ms.to_string()));
    properties
}

/// The model the element loads with these properties: held here, the element
/// gets this very one (`Model::shared`), so its per-server counters can be read.
fn shared_model(urls: &[String], timeout_ms: u32) -> Arc<Model> {
    Model::shared(&ModelOptions {
        model_dir: tiny_model(),
        session: SessionConfig {
            provider: ExecutionProvider::Cpu,
            ..SessionConfig::default()
        },
        remote: RemoteOptions {
            servers: urls.to_vec(),
            timeout: Duration::from_millis(timeout_ms.into()),
            ..RemoteOptions::default()
        },
    })
    .unwrap()
}

fn server_stats(model: &Model) -> Vec<ServerStats> {
    model
        .server_stats()
        .expect("a remote model has server stats")
}

/// Pushes `frames` patterned 64×36 RGB frames from a non-live `appsrc` through
/// the element into an `appsink` and collects every output. A non-live source,
/// so that every frame waits for its generated area (a Harness answers the
/// latency query as live, and late frames would leave with the blur fill);
/// checked: every frame generated, none degraded, the source's pixels exact.
fn stream(properties: &[(&'static str, String)], frames: u64) -> StreamRun {
    let started = Instant::now();
    let element = element(&as_refs(properties));
    let in_info = video_info("RGB", 64, 36);
    let src = gst_app::AppSrc::builder()
        .caps(&in_info.to_caps().unwrap())
        .format(gst::Format::Time)
        .is_live(false)
        .build();
    let sink = gst_app::AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    let chain = [src.upcast_ref(), &element, sink.upcast_ref()];
    pipeline.add_many(chain).unwrap();
    gst::Element::link_many(chain).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let inputs: Vec<gst::Buffer> = (0..frames).map(|i| make_frame(&in_info, i, 0)).collect();
    for buffer in &inputs {
        src.push_buffer(buffer.clone()).unwrap();
    }
    src.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut outputs = Vec::new();
    while !sink.is_eos() {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(20)) {
            outputs.push(sample.buffer_owned().unwrap());
        } else if let Some(error) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("the stream failed: {error:?}");
        } else {
            assert!(
                Instant::now() < deadline,
                "no EOS after {} frames",
                outputs.len()
            );
        }
    }
    let stats = element.property::<gst::Structure>("stats");
    let caps = sink.static_pad("sink").unwrap().current_caps().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(stats.get::<u64>("frames-degraded").unwrap(), 0, "{stats:?}");
    assert_eq!(
        stats.get::<u64>("frames-generated").unwrap(),
        frames,
        "{stats:?}"
    );
    let run = StreamRun {
        in_info,
        inputs,
        outputs,
        out_info: gst_video::VideoInfo::from_caps(&caps).unwrap(),
        elapsed: started.elapsed(),
        stats,
    };
    check_stream(&run, (9, 16));
    run
}

/// The output frames of a run (bytes), and how long it took.
type Frames = (Arc<Vec<Vec<u8>>>, Duration);

/// The output frames of `frames` frames through the element in process, and how long that took.
fn in_process_frames(frames: u64) -> Frames {
    static REFERENCE: LazyLock<Mutex<HashMap<u64, Frames>>> = LazyLock::new(Default::default);
    let mut reference = REFERENCE.lock().unwrap();
    let (outputs, elapsed) = reference.entry(frames).or_insert_with(|| {
        let run = stream(&outpaint_properties(LOOKAHEAD), frames);
        (Arc::new(frame_bytes(&run)), run.elapsed)
    });
    (outputs.clone(), *elapsed)
}

fn frame_bytes(run: &StreamRun) -> Vec<Vec<u8>> {
    run.outputs
        .iter()
        .map(|b| b.map_readable().unwrap().to_vec())
        .collect()
}

/// Every output frame of `remote` equal to the in-process one, byte for byte.
fn assert_same_frames(local: &[Vec<u8>], remote: &StreamRun) {
    assert_eq!(local.len(), remote.outputs.len());
    for (i, (a, b)) in local.iter().zip(frame_bytes(remote)).enumerate() {
        let differ = a.iter().zip(b.iter()).filter(|(x, y)| x != y).count();
        let largest = a.iter().zip(b.iter()).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(
            differ == 0 && a.len() == b.len(),
            "frame {i}: {differ} of {} bytes differ (largest difference {largest:?})",
            a.len()
        );
    }
}

/// Calls `interrupt` on another thread once server `index` of `model` has
/// answered `calls` calls; the thread returns when that was.
fn interrupt_after(
    model: &Arc<Model>,
    index: usize,
    calls: u64,
    interrupt: impl FnOnce() + Send + 'static,
) -> std::thread::JoinHandle<Option<Instant>> {
    let model = model.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(600);
        while server_stats(&model)[index].calls < calls {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        interrupt();
        Some(Instant::now())
    })
}

#[test]
fn remote_frames_match_in_process_on_two_servers() {
    let Some(servers) = shared_servers() else {
        return;
    };
    let urls = urls(servers);
    let model = shared_model(&urls, DEFAULT_TIMEOUT_MS);
    assert_eq!(model.provider_in_use(), "remote");
    assert_eq!(
        model.placement().label(),
        format!("remote:{}", urls.join(","))
    );
    for frames in [1, 17, 60] {
        let (local, local_time) = in_process_frames(frames);
        let remote = stream(&remote_properties(&urls, DEFAULT_TIMEOUT_MS), frames);
        assert_same_frames(&local, &remote);
        eprintln!(
            "{frames} frames: bit-exact; in process {:.1} s, on the servers {:.1} s",
            local_time.as_secs_f64(),
            remote.elapsed.as_secs_f64()
        );
    }
    let stats = server_stats(&model);
    eprintln!("{stats:?}");
    for server in &stats {
        assert!(server.calls > 0, "{} took no calls: {stats:?}", server.url);
        assert!(
            server.bytes_sent > 0 && server.bytes_received > 0,
            "{stats:?}"
        );
        assert_eq!(server.failures, 0, "{stats:?}");
    }
}

#[test]
fn remote_stream_survives_losing_one_of_two_servers() {
    // One shared server and one of this test's own, which it kills.
    let (Some(shared), Some(own)) = (shared_servers(), start_servers(&[&[]])) else {
        return;
    };
    let urls = vec![shared[0].url.clone(), own[0].url.clone()];
    let model = shared_model(&urls, DEFAULT_TIMEOUT_MS);
    let (local, _) = in_process_frames(17);
    let victim = own[0].handle();
    let killer = interrupt_after(&model, 1, 4, move || victim.signal("KILL"));
    let remote = stream(&remote_properties(&urls, DEFAULT_TIMEOUT_MS), 17);
    assert!(
        killer.join().unwrap().is_some(),
        "the second server took no 4 calls"
    );
    assert_same_frames(&local, &remote);
    let stats = server_stats(&model);
    eprintln!("{stats:?}");
    assert!(
        stats[1].failures >= 1,
        "the killed server was not tried again: {stats:?}"
    );
    assert!(stats[0].calls > stats[1].calls, "{stats:?}");
}

/// What a pipeline of `frames` frames through the element with `properties` gave.
struct Failure {
    error: gst::glib::Error,
    /// From the interruption to the error message.
    after: Duration,
    /// How long the pipeline took to stop.
    stop: Duration,
}

/// `videotestsrc ! m3ddmoutpaint ! fakesink` (120 frames), the element set with `properties`.
fn remote_pipeline(properties: &[(&str, String)]) -> gst::Pipeline {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=120 ! video/x-raw,format=RGB,width=64,height=36,framerate=30/1 \
         ! m3ddmoutpaint name=m ! fakesink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let element = pipeline.by_name("m").unwrap();
    for (name, value) in properties {
        element.set_property_from_str(name, value);
    }
    pipeline
}

/// Runs `videotestsrc ! m3ddmoutpaint ! fakesink` until an error, interrupting
/// the only server of `model` once it has answered a few calls.
fn failing_run(
    model: &Arc<Model>,
    properties: &[(&str, String)],
    server: ServerHandle,
    signal: &'static str,
) -> Failure {
    let pipeline = remote_pipeline(properties);
    let interrupter = interrupt_after(model, 0, 4, move || server.signal(signal));
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("an error or EOS");
    let errored_at = Instant::now();
    let gst::MessageView::Error(err) = message.view() else {
        panic!("the stream ended without an error");
    };
    let interrupted_at = interrupter
        .join()
        .unwrap()
        .expect("the server took 4 calls");
    let stopping = Instant::now();
    pipeline.set_state(gst::State::Null).unwrap();
    Failure {
        error: err.error(),
        after: errored_at.saturating_duration_since(interrupted_at),
        stop: stopping.elapsed(),
    }
}

#[test]
fn remote_losing_the_only_server_is_an_error_naming_it() {
    let Some(servers) = start_servers(&[&[]]) else {
        return;
    };
    let urls = urls(&servers);
    let timeout_ms = 5_000;
    let model = shared_model(&urls, timeout_ms);
    let failure = failing_run(
        &model,
        &remote_properties(&urls, timeout_ms),
        servers[0].handle(),
        "KILL",
    );
    eprintln!(
        "error {:.2} s after the kill, stopped in {:.2} s: {}",
        failure.after.as_secs_f64(),
        failure.stop.as_secs_f64(),
        failure.error
    );
    assert!(
        failure.error.message().contains(&urls[0]),
        "{}",
        failure.error
    );
    assert!(
        failure.after < Duration::from_millis(timeout_ms.into()),
        "{:?}",
        failure.after
    );
    assert!(failure.stop < Duration::from_secs(5), "{:?}", failure.stop);
}

#[test]
fn remote_hanging_server_is_an_error_at_the_deadline() {
    let Some(servers) = start_servers(&[&[]]) else {
        return;
    };
    let urls = urls(&servers);
    let timeout_ms = 2_000;
    let model = shared_model(&urls, timeout_ms);
    let failure = failing_run(
        &model,
        &remote_properties(&urls, timeout_ms),
        servers[0].handle(),
        "STOP",
    );
    eprintln!(
        "error {:.2} s after the server stopped, pipeline stopped in {:.2} s: {}",
        failure.after.as_secs_f64(),
        failure.stop.as_secs_f64(),
        failure.error
    );
    let message = failure.error.message();
    assert!(
        message.contains(&urls[0]) && message.contains("deadline"),
        "{message}"
    );
    let deadline = Duration::from_millis(timeout_ms.into());
    assert!(
        failure.after <= deadline + Duration::from_secs(2),
        "{:?}",
        failure.after
    );
    assert!(failure.stop < Duration::from_secs(5), "{:?}", failure.stop);
}

#[test]
fn remote_stop_during_a_hanging_call_does_not_wait_for_the_deadline() {
    let Some(servers) = start_servers(&[&[]]) else {
        return;
    };
    let urls = urls(&servers);
    let timeout_ms = 120_000;
    let model = shared_model(&urls, timeout_ms);
    let pipeline = remote_pipeline(&remote_properties(&urls, timeout_ms));
    let server = servers[0].handle();
    let stopped = interrupt_after(&model, 0, 4, move || server.signal("STOP"));
    pipeline.set_state(gst::State::Playing).unwrap();
    stopped.join().unwrap().expect("the server took 4 calls");
    // The next call waits on the stopped server.
    std::thread::sleep(Duration::from_millis(500));
    let calls_before = server_stats(&model)[0].calls;
    let stopping = Instant::now();
    pipeline.set_state(gst::State::Null).unwrap();
    let stop = stopping.elapsed();
    eprintln!("PLAYING→NULL during a call to a stopped server: {stop:?}");
    assert_eq!(
        server_stats(&model)[0].calls,
        calls_before,
        "no call answered while the server was stopped"
    );
    assert!(
        stop < Duration::from_secs(5),
        "the stop waited {stop:?} for a call with a {timeout_ms} ms deadline"
    );
}

/// A copy of the tiny model whose manifest says the U-Net's `sample` is float16.
fn tiny_model_with_fp16_sample(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(tiny_model()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for input in manifest["graphs"]["unet"]["inputs"].as_array_mut().unwrap() {
        if input["name"] == "sample" {
            input["dtype"] = "float16".into();
        }
    }
    std::fs::write(&path, manifest.to_string()).unwrap();
}

#[test]
fn remote_ready_refuses_a_server_whose_model_differs() {
    let Some(servers) = shared_servers() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("m3ddm-remote-fp16-{}", std::process::id()));
    tiny_model_with_fp16_sample(&dir);
    let mut properties = remote_properties(&urls(&servers[..1]), DEFAULT_TIMEOUT_MS);
    properties.retain(|(name, _)| *name != "model-path");
    properties.push(("model-path", dir.display().to_string()));
    let err = ready_error(&as_refs(&properties));
    let _ = std::fs::remove_dir_all(&dir);
    let message = err.message();
    eprintln!("{message}");
    for part in [
        servers[0].url.as_str(),
        "`unet`",
        "`sample`",
        "FP32",
        "float16",
    ] {
        assert!(message.contains(part), "`{part}` is not in: {message}");
    }
}

#[test]
fn remote_ready_refuses_an_unreachable_server() {
    let url = format!("grpc://127.0.0.1:{}", free_ports(1)[0]);
    let started = Instant::now();
    let err = ready_error(&as_refs(&remote_properties(
        std::slice::from_ref(&url),
        DEFAULT_TIMEOUT_MS,
    )));
    eprintln!(
        "{:.2} s: {}",
        started.elapsed().as_secs_f64(),
        err.message()
    );
    assert!(
        err.message().contains(&url) && err.message().contains("`unet`"),
        "{err}"
    );
    assert!(err.matches(gst::ResourceError::NotFound), "{err}");
}

#[test]
fn remote_ready_refuses_a_malformed_server_url() {
    for bad in [
        "http://127.0.0.1:8001",
        "grpc://127.0.0.1",
        "127.0.0.1:8001",
    ] {
        let properties = remote_properties(
            &["grpc://127.0.0.1:1".into(), bad.into()],
            DEFAULT_TIMEOUT_MS,
        );
        let err = ready_error(&as_refs(&properties));
        assert!(err.message().contains(bad), "{bad}: {err}");
    }
}
