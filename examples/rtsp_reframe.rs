// SPDX-License-Identifier: MPL-2.0
//! An RTSP server (gstreamer-rtsp-server) that serves live streams reframed by
//! `m3ddmoutpaint`: the way to embed the element in a media server.
//!
//! ```text
//! cargo run --release --example rtsp_reframe -- --model models/tiny --steps 1 \
//!     --stream 'cam=9/16=videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=180,framerate=30/1'
//! ```
//!
//! Each `--stream NAME=ASPECT=SOURCE` (SOURCE a gst-launch fragment that gives
//! live video: `v4l2src`, `rtspsrc location=… ! decodebin`, `videotestsrc
//! is-live=true`) is served at `rtsp://ADDRESS:PORT/NAME` as H.264, reframed to
//! ASPECT. `max-latency` bounds how long a frame stays in the element (a frame
//! whose generated area is late leaves on time with the blur fill), so every
//! client gets frames at the source's rate. A stream's media is shared by its
//! clients and made again when a client comes after the last one left. All
//! streams run in this process and share one loaded model (the element's
//! models are shared per directory and settings); its ONNX Runtime sessions
//! take the windows of the streams in turn, call by call, in the order they
//! asked (a fair lock), so that no stream starves. The server prints one line
//! `serving rtsp://…` per stream once it listens.

use clap::Parser;
use gst::glib;
use gst_rtsp_server::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Serve live video reframed by m3ddmoutpaint over RTSP")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// Port to listen on (0: any free port, printed).
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// A stream: NAME=ASPECT=SOURCE (repeat for several).
    #[arg(long = "stream", required = true)]
    streams: Vec<String>,
    /// The model directory (fill outpaint).
    #[arg(long)]
    model: Option<String>,
    /// outpaint, blur or color.
    #[arg(long, default_value = "outpaint")]
    fill: String,
    /// Denoising steps per window.
    #[arg(long, default_value_t = 50)]
    steps: u32,
    /// Frames per chunk (a live stream wants a short one).
    #[arg(long, default_value_t = 16)]
    lookahead: u32,
    /// The longest a frame stays in the element, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    max_latency_ms: u64,
    /// The element's execution-provider.
    #[arg(long, default_value = "auto")]
    provider: String,
}

/// One `--stream`: its mount name, aspect and source fragment.
struct Stream {
    name: String,
    aspect: String,
    source: String,
}

fn parse_stream(text: &str) -> Result<Stream, String> {
    let mut parts = text.splitn(3, '=');
    let (Some(name), Some(aspect), Some(source)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "--stream `{text}` is not NAME=ASPECT=SOURCE (e.g. cam=9/16=videotestsrc is-live=true)"
        ));
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(format!(
            "--stream `{text}`: the name `{name}` must be letters, digits, - or _"
        ));
    }
    Ok(Stream {
        name: name.to_owned(),
        aspect: aspect.trim().to_owned(),
        source: source.trim().to_owned(),
    })
}

/// The media's launch line: the source, the element, an H.264 payloader.
fn launch_line(args: &Args, stream: &Stream) -> String {
    let model = args
        .model
        .as_ref()
        .map(|dir| format!("model-path=\"{dir}\""))
        .unwrap_or_default();
    format!(
        "( {source} ! videoconvert ! video/x-raw,format=I420 \
         ! m3ddmoutpaint name=reframe fill-mode={fill} {model} aspect={aspect} steps={steps} \
           lookahead={lookahead} max-latency={max_latency} execution-provider={provider} \
         ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
        source = stream.source,
        fill = args.fill,
        aspect = stream.aspect,
        steps = args.steps,
        lookahead = args.lookahead,
        max_latency = args.max_latency_ms * 1_000_000,
        provider = args.provider,
    )
}

fn run(args: Args) -> Result<(), String> {
    gst::init().map_err(|err| format!("GStreamer does not start: {err}"))?;
    gstm3ddm::plugin_register_static()
        .map_err(|err| format!("the m3ddm plugin does not register: {err}"))?;
    let streams = args
        .streams
        .iter()
        .map(|s| parse_stream(s))
        .collect::<Result<Vec<_>, _>>()?;
    let main_loop = glib::MainLoop::new(None, false);
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address(&args.address);
    server.set_service(&args.port.to_string());
    let mounts = server
        .mount_points()
        .ok_or("the RTSP server has no mount points")?;
    for stream in &streams {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        let launch = launch_line(&args, stream);
        // Checked here, so that a bad source or aspect is one sentence at start.
        gst::parse::launch(&launch.replace(['(', ')'], ""))
            .map_err(|err| format!("stream {}: {err}", stream.name))?;
        factory.set_launch(&launch);
        factory.set_shared(true);
        mounts.add_factory(&format!("/{}", stream.name), factory);
    }
    let _source = server
        .attach(None)
        .map_err(|err| format!("cannot listen on {}:{}: {err}", args.address, args.port))?;
    let port = server.bound_port();
    for stream in &streams {
        println!("serving rtsp://{}:{port}/{}", args.address, stream.name);
    }
    main_loop.run();
    Ok(())
}

fn main() {
    if let Err(err) = run(Args::parse()) {
        eprintln!("{err}");
        std::process::exit(1);
    }
}
