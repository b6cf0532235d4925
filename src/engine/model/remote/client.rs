// SPDX-License-Identifier: MPL-2.0
//! The gRPC side of the remote backend: the `inference` client generated at
//! build time from `proto/grpc_service.proto`, the process's one small tokio
//! runtime (the engine's calls stay synchronous and block on it from their own
//! thread), server URLs, and one server's channel (plain, or TLS for
//! `grpcs://`: `security.rs`) with its request headers, its counters and its
//! "recently failed" mark.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use crate::engine::error::{EngineError, Result};
use crate::engine::model::ServerStats;

use super::security::{ServerSecurity, metadata, tls_config};

/// The Open Inference Protocol messages and client (generated; not our style).
#[allow(clippy::all, clippy::pedantic, dead_code)]
pub(super) mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_client::GrpcInferenceServiceClient;

/// Largest message either way: a batch of 8 VAE images at canvas 1024 is 100 MB in fp32.
const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// Worker threads of the client runtime: they only move bytes.
const RUNTIME_THREADS: usize = 2;
/// How long a server that failed is passed over while another one answers.
const FAILED_SERVER_PAUSE: Duration = Duration::from_secs(5);
/// Longest wait for a TCP connection (the call's deadline still applies when shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on a connection, so that a silent peer is noticed.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// The process's gRPC runtime, started on first use.
pub(super) fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_THREADS)
                .thread_name("m3ddm-grpc")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Runtime(format!("cannot start the gRPC client: {e}")))
}

/// Checks an inference server's URL, `grpc://host:port` (plain text) or
/// `grpcs://host:port` (TLS; `https://` is the same), and returns it in
/// one of those two canonical forms.
pub fn parse_server_url(text: &str) -> Result<String> {
    let text = text.trim();
    let refuse = |why: &str| {
        EngineError::InvalidInput(format!(
            "inference server `{text}` {why}: write grpc://host:port, or grpcs://host:port for TLS"
        ))
    };
    let uri: Uri = text.parse().map_err(|_| refuse("is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("grpc") => "grpc",
        Some("grpcs" | "https") => "grpcs",
        _ => return Err(refuse("does not start with grpc:// or grpcs://")),
    };
    let authority = uri.authority().ok_or_else(|| refuse("has no host"))?;
    if authority.port_u16().is_none() || authority.host().is_empty() {
        return Err(refuse("has no port"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || authority.as_str().contains('@')
    {
        return Err(refuse("has more than a host and a port"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The host of a canonical server URL, and whether it asks for TLS.
pub fn server_host(url: &str) -> (&str, bool) {
    let (tls, rest) = match url.strip_prefix("grpcs://") {
        Some(rest) => (true, rest),
        None => (false, url.trim_start_matches("grpc://")),
    };
    let host = rest.rsplit_once(':').map_or(rest, |(host, _)| host);
    (host, tls)
}

/// One inference server: its channel (connected on first use, reconnected
/// after a failure), its counters, and until when it is passed over.
pub(super) struct Server {
    pub url: String,
    client: GrpcInferenceServiceClient<Channel>,
    /// Sent with every call (values marked sensitive).
    headers: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    /// TLS without a client certificate: a server asking for one closes the connection.
    tls_without_identity: bool,
    calls: AtomicU64,
    failures: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    /// Calls sent and not yet answered.
    in_flight: AtomicUsize,
    failed_until: Mutex<Option<Instant>>,
}

/// Counts a call as in flight on its server while it lives.
pub(super) struct InFlight<'a>(&'a Server);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Server {
    /// A server at `url` (canonical, from [`parse_server_url`]), with TLS
    /// for `grpcs://`; nothing is sent yet.
    pub fn new(url: &str, security: &ServerSecurity) -> Result<Server> {
        let bad = |why: String| EngineError::InvalidInput(format!("inference server {url}: {why}"));
        let (host, tls) = server_host(url);
        let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
            .map_err(|e| bad(e.to_string()))?;
        if tls {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            endpoint = endpoint
                .tls_config(tls_config(security, host)?)
                .map_err(|e| bad(format!("TLS: {e}")))?;
        }
        let headers = security
            .headers
            .iter()
            .map(|header| metadata(header).map_err(&bad))
            .collect::<Result<Vec<_>>>()?;
        let endpoint = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_while_idle(true);
        // The lazy channel starts its worker on the runtime.
        let _context = runtime()?.enter();
        let client = GrpcInferenceServiceClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Server {
            url: url.to_owned(),
            client,
            headers,
            tls_without_identity: tls && security.cert.is_none(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            failed_until: Mutex::new(None),
        })
    }

    /// A handle for one call (clients share the channel).
    pub fn client(&self) -> GrpcInferenceServiceClient<Channel> {
        self.client.clone()
    }

    /// Calls it has not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Marks a call in flight until the returned guard drops.
    pub fn start_call(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// False while the server is passed over after a failure.
    pub fn is_healthy(&self) -> bool {
        let until = *self.failed_until.lock().unwrap();
        until.is_none_or(|until| Instant::now() >= until)
    }

    pub fn record_success(&self, sent: usize, received: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(received as u64, Ordering::Relaxed);
        *self.failed_until.lock().unwrap() = None;
    }

    /// Counts a failed call; an unreachable server is passed over for a while.
    pub fn record_failure(&self, unreachable: bool) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if unreachable {
            *self.failed_until.lock().unwrap() = Some(Instant::now() + FAILED_SERVER_PAUSE);
        }
    }

    pub fn stats(&self) -> ServerStats {
        ServerStats {
            url: self.url.clone(),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }
}

impl Server {
    /// What may explain a connection that failed: a TLS server that asks for a
    /// client certificate (mutual TLS) closes it without saying why.
    pub fn connection_hint(&self, status: &Status) -> &'static str {
        if self.tls_without_identity && is_unreachable(status) {
            " (a TLS server that requires a client certificate closes the connection like this: \
             set inference-tls-cert and inference-tls-key)"
        } else {
            ""
        }
    }

    /// A request with the server's headers and the protocol's timeout header,
    /// so the server can give up too.
    pub fn request<T>(&self, message: T, deadline: Instant) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let metadata = request.metadata_mut();
        for (key, value) in &self.headers {
            metadata.insert(key.clone(), value.clone());
        }
        request
    }
}

/// Awaits `call` until `deadline` (then DEADLINE_EXCEEDED, whatever the server does).
pub(super) async fn until<T>(
    deadline: Instant,
    call: impl Future<Output = std::result::Result<tonic::Response<T>, Status>>,
) -> std::result::Result<T, Status> {
    match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded("no answer before the deadline")),
    }
}

/// Whether another server (or the same one later) may succeed where this failed:
/// no connection, a connection lost, a server shutting down.
pub(super) fn is_unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

/// A status as a sentence: its message and, for transport errors, their
/// causes (without tonic's bare "transport error" links).
pub(super) fn describe(status: &Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut add = |text: String| {
        if !text.is_empty() && text != "transport error" && !parts.iter().any(|p| p.contains(&text))
        {
            parts.push(text);
        }
    };
    add(status.message().to_owned());
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        add(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        return format!("{:?}", status.code());
    }
    parts.join(": ")
}
