// SPDX-License-Identifier: MPL-2.0
//! The remote backend: the graphs run on Open Inference Protocol (KServe V2)
//! servers over gRPC, e.g. Triton serving the repository that
//! `python -m m3ddm_export triton-repo` writes. One backend holds a list of
//! servers; each call goes to the least busy one that answers (round-robin
//! among equals), with a deadline for the whole call and a few retries, on
//! the next server, when one is unavailable. Loading checks every server (ready, the four models
//! ready, their metadata against the manifest) and names the server and the
//! model in any refusal. A backend with one URL is as valid as one with many,
//! so a scheduler may also keep one model per server.

mod client;
mod security;
mod tensors;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prost::Message;

use super::{GraphBackend, GraphInput, Placement, RemoteOptions, ServerStats};
use crate::engine::cancel::{Cancel, Interrupt};
use crate::engine::error::{EngineError, Result};
use crate::engine::manifest::{DType, Graph, GraphSpec, Manifest};
use client::proto::{
    ModelConfigRequest, ModelInferRequest, ModelInferResponse, ModelMetadataRequest,
    ModelReadyRequest, ServerReadyRequest, model_infer_request,
};
use client::{Server, describe, is_unreachable, runtime, until};
pub use client::{parse_server_url, server_host};
pub use security::{Header, Secret, ServerSecurity, is_loopback, parse_headers};
use tensors::{Encoded, ServedGraph, check_metadata, decode, encode};

/// Longest wait for each check of a server while loading.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// A failure this close to the deadline is the deadline's.
const DEADLINE_SLACK: Duration = Duration::from_millis(20);
/// First pause before a call goes back to a server that already failed it.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A server and how it serves each graph.
struct Remote {
    server: Server,
    /// In [`Graph::ALL`] order.
    graphs: Vec<ServedGraph>,
    /// Its `max_batch_size` per graph, where it says one (0 = not batched).
    max_batch: Vec<Option<usize>>,
}

/// The graphs of a model on a list of inference servers.
pub struct RemoteBackend {
    remotes: Vec<Remote>,
    /// The manifest's dtype of every input, per graph.
    graphs: Vec<GraphSpec>,
    /// The largest batch every server takes, per graph.
    max_batch: Vec<Option<usize>>,
    /// Round-robin cursor.
    next: AtomicUsize,
    timeout: Duration,
    retries: u32,
    placement: Placement,
}

impl RemoteBackend {
    /// Checks every server of `options` against `manifest`: the server ready,
    /// each graph's model ready, its inputs and outputs those of the manifest.
    pub fn connect(options: &RemoteOptions, manifest: &Manifest) -> Result<RemoteBackend> {
        let urls = options
            .servers
            .iter()
            .map(|url| parse_server_url(url))
            .collect::<Result<Vec<_>>>()?;
        if urls.is_empty() {
            return Err(EngineError::InvalidInput(
                "the remote backend needs at least one inference server".into(),
            ));
        }
        let security = &options.security;
        let tls_files = security.ca.is_some() || security.cert.is_some() || security.key.is_some();
        if tls_files && !urls.iter().any(|url| server_host(url).1) {
            return Err(EngineError::InvalidInput(format!(
                "inference-tls-ca, -cert and -key are for grpcs:// servers, and {} uses none",
                urls.join(",")
            )));
        }
        let check_timeout = options.timeout.min(CHECK_TIMEOUT);
        let mut remotes = Vec::new();
        for url in &urls {
            let server = Server::new(url, &options.security)?;
            let (graphs, max_batch) =
                runtime()?.block_on(check_server(&server, manifest, check_timeout))?;
            remotes.push(Remote {
                server,
                graphs,
                max_batch,
            });
        }
        let max_batch = Graph::ALL
            .iter()
            .map(|g| {
                remotes
                    .iter()
                    .filter_map(|r| r.max_batch[g.index()].filter(|&m| m > 0))
                    .min()
            })
            .collect();
        Ok(RemoteBackend {
            remotes,
            graphs: manifest.graphs.clone(),
            max_batch,
            next: AtomicUsize::new(0),
            timeout: options.timeout,
            retries: options.retries,
            placement: Placement {
                provider: "remote",
                device: None,
                note: None,
                label: Some(format!("remote:{}", urls.join(","))),
            },
        })
    }

    /// Server indices for one call: those not passed over before those that
    /// failed lately, the least busy first (so that calls from several
    /// threads spread over the servers), round-robin among equals.
    fn order(&self) -> Vec<usize> {
        let count = self.remotes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let mut order: Vec<usize> = (0..count).map(|k| (start + k) % count).collect();
        order.sort_by_key(|&i| {
            let server = &self.remotes[i].server;
            (!server.is_healthy(), server.in_flight())
        });
        order
    }

    /// One ModelInfer of `graph` on `inputs`, on the first server that
    /// answers; appends the output to `out` and returns its shape.
    /// A cancel request ends the call at once (the request is dropped).
    fn infer(
        &self,
        graph: Graph,
        inputs: &[Encoded],
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<Vec<usize>> {
        let stop = Arc::new(StopSignal::default());
        let _in_flight = cancel.track(stop.clone())?;
        runtime()?.block_on(async {
            tokio::select! {
                answer = self.try_servers(graph, inputs, out) => answer,
                () = stop.0.notified() => Err(EngineError::Cancelled),
            }
        })
    }

    /// The servers in [`RemoteBackend::order`], with bounded retries, until
    /// one answers or the deadline passes.
    async fn try_servers(
        &self,
        graph: Graph,
        inputs: &[Encoded],
        out: &mut Vec<f32>,
    ) -> Result<Vec<usize>> {
        let deadline = Instant::now() + self.timeout;
        let order = self.order();
        let attempts = order.len().max(self.retries as usize + 1);
        let mut failures: Vec<(usize, String)> = Vec::new();
        {
            for attempt in 0..attempts {
                if attempt >= order.len() {
                    // Every server failed once already: give them a moment.
                    let pause = FIRST_BACKOFF * (1 << (attempt - order.len()).min(6));
                    tokio::time::sleep_until((Instant::now() + pause).min(deadline).into()).await;
                }
                let index = order[attempt % order.len()];
                let remote = &self.remotes[index];
                let message = infer_request(graph, &remote.graphs[graph.index()], inputs);
                let sent = message.encoded_len();
                let mut client = remote.server.client();
                let _in_flight = remote.server.start_call();
                let call = client.model_infer(remote.server.request(message, deadline));
                match until(deadline, call).await {
                    Ok(response) => {
                        remote.server.record_success(sent, response.encoded_len());
                        return read_output(&remote.graphs[graph.index()], &response, out).map_err(
                            |why| {
                                EngineError::Inference(format!(
                                    "the inference server {} answered the {} call with {why}",
                                    remote.server.url,
                                    graph.key()
                                ))
                            },
                        );
                    }
                    Err(status) => {
                        let unreachable = is_unreachable(&status);
                        remote.server.record_failure(unreachable);
                        // Past the deadline, tonic's own timer (of the request's
                        // grpc-timeout) may have fired first, as a transport error.
                        let late = Instant::now() + DEADLINE_SLACK >= deadline;
                        let why = if late || status.code() == tonic::Code::DeadlineExceeded {
                            format!(
                                "no answer within the {:.1} s deadline",
                                self.timeout.as_secs_f64()
                            )
                        } else {
                            describe(&status)
                        };
                        failures.push((index, why));
                        if !unreachable || late {
                            break;
                        }
                    }
                }
            }
            Err(self.call_error(graph, &failures))
        }
    }

    /// The sentence of a call that failed on every try: each server and why.
    fn call_error(&self, graph: Graph, failures: &[(usize, String)]) -> EngineError {
        let mut reasons: Vec<(usize, &str, usize)> = Vec::new();
        for (index, why) in failures {
            match reasons.iter_mut().find(|(i, w, _)| i == index && w == why) {
                Some((_, _, tries)) => *tries += 1,
                None => reasons.push((*index, why, 1)),
            }
        }
        let text: Vec<String> = reasons
            .iter()
            .map(|(index, why, tries)| {
                let url = &self.remotes[*index].server.url;
                match tries {
                    1 => format!("{url}: {why}"),
                    n => format!("{url} ({n} tries): {why}"),
                }
            })
            .collect();
        let mut servers: Vec<usize> = reasons.iter().map(|(index, _, _)| *index).collect();
        servers.sort_unstable();
        servers.dedup();
        EngineError::Inference(format!(
            "the {} call failed on the inference server{} {}",
            graph.key(),
            if servers.len() > 1 { "s" } else { "" },
            text.join("; ")
        ))
    }
}

/// Wakes a call waiting for its server (a permit is kept when none waits yet).
#[derive(Default)]
struct StopSignal(tokio::sync::Notify);

impl Interrupt for StopSignal {
    fn interrupt(&self) {
        self.0.notify_one();
    }
}

impl GraphBackend for RemoteBackend {
    fn run(
        &self,
        graph: Graph,
        inputs: &[GraphInput<'_>],
        out: &mut Vec<f32>,
        cancel: &Cancel,
    ) -> Result<Vec<usize>> {
        let spec = &self.graphs[graph.index()];
        let encoded = inputs
            .iter()
            .map(|input| {
                let dtype = spec.input_dtype(input.name).unwrap_or(DType::F32);
                encode(graph, input, dtype)
            })
            .collect::<Result<Vec<_>>>()?;
        out.clear();
        let batch = encoded.first().and_then(|e| e.shape.first()).copied();
        let (Some(max), Some(batch)) = (self.max_batch[graph.index()], batch) else {
            return self.infer(graph, &encoded, out, cancel);
        };
        // A batch larger than a server takes goes in parts.
        let mut shape: Option<Vec<usize>> = None;
        for start in (0..batch).step_by(max) {
            let rows = start..(start + max).min(batch);
            let part: Vec<Encoded> = encoded.iter().map(|e| e.rows(rows.clone())).collect();
            let part_shape = self.infer(graph, &part, out, cancel)?;
            shape = Some(match shape {
                Some(mut total) if !total.is_empty() && !part_shape.is_empty() => {
                    total[0] += part_shape[0];
                    total
                }
                _ => part_shape,
            });
        }
        Ok(shape.unwrap_or_default())
    }

    fn placement(&self) -> &Placement {
        &self.placement
    }

    fn server_stats(&self) -> Option<Vec<ServerStats>> {
        Some(self.remotes.iter().map(|r| r.server.stats()).collect())
    }
}

/// The ModelInfer request of `inputs` for a server that serves the graph as `served`.
fn infer_request(graph: Graph, served: &ServedGraph, inputs: &[Encoded]) -> ModelInferRequest {
    let tensors = inputs
        .iter()
        .map(|input| {
            let mut shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
            if served.input_has_trailing_one(input.name) {
                shape.push(1);
            }
            model_infer_request::InferInputTensor {
                name: input.name.to_owned(),
                datatype: input.datatype.to_owned(),
                shape,
                ..Default::default()
            }
        })
        .collect();
    ModelInferRequest {
        model_name: graph.key().to_owned(),
        inputs: tensors,
        outputs: vec![model_infer_request::InferRequestedOutputTensor {
            name: served.output.name.clone(),
            ..Default::default()
        }],
        raw_input_contents: inputs.iter().map(|i| i.raw.clone()).collect(),
        ..Default::default()
    }
}

/// Appends the graph's output to `out` (widened to f32) and returns its shape
/// in the manifest's rank.
fn read_output(
    served: &ServedGraph,
    response: &ModelInferResponse,
    out: &mut Vec<f32>,
) -> std::result::Result<Vec<usize>, String> {
    let name = &served.output.name;
    let index = response
        .outputs
        .iter()
        .position(|t| &t.name == name)
        .ok_or_else(|| format!("no output `{name}`"))?;
    let tensor = &response.outputs[index];
    let raw = response
        .raw_output_contents
        .get(index)
        .ok_or_else(|| format!("output `{name}` without raw contents"))?;
    let mut shape = tensor
        .shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("output `{name}` of shape {:?}", tensor.shape))
        })
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let values = shape.iter().product();
    decode(&tensor.datatype, raw, values, out)?;
    if served.output.trailing_one && shape.last() == Some(&1) {
        shape.pop();
    }
    Ok(shape)
}

/// The checks of one server at load: ready, then per graph its model ready,
/// its metadata against the manifest, and its `max_batch_size` where the
/// server says it (Triton's ModelConfig; other servers may not).
async fn check_server(
    server: &Server,
    manifest: &Manifest,
    timeout: Duration,
) -> Result<(Vec<ServedGraph>, Vec<Option<usize>>)> {
    let url = &server.url;
    let first = Graph::ALL[0].key();
    let deadline = || Instant::now() + timeout;
    let mut client = server.client();
    let ready = until(
        deadline(),
        client.server_ready(server.request(ServerReadyRequest {}, deadline())),
    )
    .await
    .map_err(|status| {
        EngineError::Model(format!(
            "cannot reach the inference server {url} to load model `{first}`: {}{}",
            describe(&status),
            server.connection_hint(&status)
        ))
    })?;
    if !ready.ready {
        return Err(EngineError::Model(format!(
            "the inference server {url} is not ready (it should serve model `{first}`)"
        )));
    }
    let mut graphs = Vec::new();
    let mut max_batch = Vec::new();
    for graph in Graph::ALL {
        let model = graph.key();
        let failed = |what: &str, status: tonic::Status| {
            EngineError::Model(format!(
                "the inference server {url} could not {what} of model `{model}`: {}",
                describe(&status)
            ))
        };
        let name = model.to_owned();
        let ready_request = ModelReadyRequest {
            name: name.clone(),
            version: String::new(),
        };
        let ready = until(
            deadline(),
            client.model_ready(server.request(ready_request, deadline())),
        )
        .await
        .map_err(|s| failed("tell the readiness", s))?;
        if !ready.ready {
            return Err(EngineError::Model(format!(
                "the inference server {url} has no ready model `{model}` (serve the model's Triton \
                 repository, written by `python -m m3ddm_export triton-repo`)"
            )));
        }
        let metadata_request = ModelMetadataRequest {
            name: name.clone(),
            version: String::new(),
        };
        let metadata = until(
            deadline(),
            client.model_metadata(server.request(metadata_request, deadline())),
        )
        .await
        .map_err(|s| failed("give the metadata", s))?;
        let served = check_metadata(manifest.graph(graph), &metadata.inputs, &metadata.outputs)
            .map_err(|detail| {
                EngineError::Model(format!(
                    "the inference server {url} serves model `{model}` with {detail}"
                ))
            })?;
        let config_request = ModelConfigRequest {
            name,
            version: String::new(),
        };
        let config = until(
            deadline(),
            client.model_config(server.request(config_request, deadline())),
        )
        .await
        .ok()
        .and_then(|c| c.config);
        max_batch.push(config.map(|c| c.max_batch_size.max(0) as usize));
        graphs.push(served);
    }
    Ok((graphs, max_batch))
}
