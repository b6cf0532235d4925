// SPDX-License-Identifier: MPL-2.0
//! Pipelines with several outputs: `appsrc ! m3ddmoutpaint` with request pads
//! `src_%u` at given aspects, an `appsink` on each linked output, the element
//! messages posted on the way, and the element's stats at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::{FRAME_NS, element};

/// How to run a stream through the element.
pub struct OutputsSetup<'a> {
    pub properties: &'a [(&'a str, &'a str)],
    /// The aspect of each request pad (`src_0`, `src_1`, ...).
    pub requests: &'a [&'a str],
    /// The output pads with an appsink.
    pub linked: &'a [&'a str],
    /// Release this request pad after this many frames were pushed.
    pub release: Option<(&'a str, usize)>,
    /// Whether upstream answers the duration query (for progress messages).
    pub with_duration: bool,
}

/// What came out.
pub struct OutputsRun {
    pub buffers: BTreeMap<String, Vec<gst::Buffer>>,
    pub caps: BTreeMap<String, gst::Caps>,
    /// Element messages (progress, scene cuts), in order.
    pub messages: Vec<gst::Structure>,
    pub stats: gst::Structure,
}

type Collected = Arc<Mutex<(Vec<gst::Buffer>, Option<gst::Caps>)>>;

/// Pushes `frames` of `info` through the element as `setup` says and waits for EOS.
pub fn run_outputs(
    setup: &OutputsSetup<'_>,
    info: &gst_video::VideoInfo,
    frames: &[gst::Buffer],
) -> OutputsRun {
    let pipeline = gst::Pipeline::new();
    let appsrc = gst_app::AppSrc::builder()
        .caps(&info.to_caps().unwrap())
        .format(gst::Format::Time)
        .build();
    if setup.with_duration {
        appsrc.set_duration(gst::ClockTime::from_nseconds(
            frames.len() as u64 * FRAME_NS,
        ));
    }
    let outpaint = element(setup.properties);
    pipeline.add_many([appsrc.upcast_ref(), &outpaint]).unwrap();
    appsrc.link(&outpaint).unwrap();
    let mut requested = Vec::new();
    for aspect in setup.requests {
        let pad = outpaint.request_pad_simple("src_%u").unwrap();
        pad.set_property_from_str("aspect", aspect);
        requested.push(pad);
    }
    let mut collected: BTreeMap<String, Collected> = BTreeMap::new();
    let mut sinks = BTreeMap::new();
    for name in setup.linked {
        // A queue on each branch, as after a tee: the outputs are pushed from
        // one thread, and one sink waiting for preroll would hold the others.
        let queue = gst::ElementFactory::make("queue").build().unwrap();
        let sink = gst_app::AppSink::builder().sync(false).build();
        sinks.insert(name.to_string(), (queue.clone(), sink.clone()));
        pipeline.add_many([&queue, sink.upcast_ref()]).unwrap();
        queue.link(&sink).unwrap();
        outpaint
            .static_pad(name)
            .unwrap_or_else(|| panic!("no pad {name}"))
            .link(&queue.static_pad("sink").unwrap())
            .unwrap();
        let store: Collected = Default::default();
        let into = store.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut into = into.lock().unwrap();
                    into.0.push(sample.buffer_owned().unwrap());
                    into.1 = sample.caps_owned();
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        collected.insert(name.to_string(), store);
    }
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for (k, frame) in frames.iter().enumerate() {
        if let Some((name, after)) = setup.release
            && k == after
        {
            // Once `after` frames came out of every output (through its queue:
            // a branch set to NULL drops what its queue still holds), the
            // output and its branch go.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while collected
                .values()
                .any(|store| store.lock().unwrap().0.len() < after)
            {
                assert!(std::time::Instant::now() < deadline, "no frame came out");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let pad = outpaint.static_pad(name).unwrap();
            outpaint.release_request_pad(&pad);
            let (queue, sink) = &sinks[name];
            for branch in [queue, sink.upcast_ref()] {
                branch.set_state(gst::State::Null).unwrap();
                pipeline.remove(branch).unwrap();
            }
        }
        appsrc.push_buffer(frame.clone()).unwrap();
    }
    appsrc.end_of_stream().unwrap();
    let mut messages = Vec::new();
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(300))
            .expect("EOS within 300 s");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => panic!("pipeline error: {err:?}"),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    messages.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    let stats = outpaint.property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).unwrap();
    let mut buffers = BTreeMap::new();
    let mut caps = BTreeMap::new();
    for (name, store) in collected {
        let (got, got_caps) = std::mem::take(&mut *store.lock().unwrap());
        buffers.insert(name.clone(), got);
        if let Some(c) = got_caps {
            caps.insert(name, c);
        }
    }
    OutputsRun {
        buffers,
        caps,
        messages,
        stats,
    }
}
