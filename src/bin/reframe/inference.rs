// SPDX-License-Identifier: MPL-2.0
//! The inference-server options of `m3ddm-reframe` (a clap group flattened
//! into `Cli`): the Open Inference Protocol servers and their TLS and header
//! settings, checked and turned into the element's `inference-*` properties.

use clap::Args;

#[derive(Args, Debug)]
pub struct InferenceOptions {
    /// Run the model on these inference servers instead (Open Inference Protocol, e.g.
    /// Triton serving the model's repository): grpc://HOST:PORT, comma-separated
    /// (grpcs://HOST:PORT for TLS).
    #[arg(long, value_name = "URLS")]
    pub inference_server: Option<String>,
    /// The element's inference-tls-ca, inference-tls-cert, inference-tls-key (PEM files
    /// for grpcs:// servers), inference-headers-file and inference-headers-env (request
    /// headers from a file or the named environment variable; README "TLS and authentication").
    #[arg(long, value_name = "FILE")]
    pub inference_tls_ca: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub inference_tls_cert: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub inference_tls_key: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub inference_headers_file: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub inference_headers_env: Option<String>,
}

impl InferenceOptions {
    /// The element properties these options set, each server URL checked first.
    pub fn into_properties(self) -> Result<Vec<(&'static str, String)>, String> {
        let mut properties = Vec::new();
        if let Some(servers) = self.inference_server {
            for url in servers.split(',').filter(|url| !url.trim().is_empty()) {
                gstm3ddm::engine::model::parse_server_url(url)
                    .map_err(|err| format!("--inference-server: {err}"))?;
            }
            properties.push(("inference-server", servers));
        }
        for (name, value) in [
            ("inference-tls-ca", self.inference_tls_ca),
            ("inference-tls-cert", self.inference_tls_cert),
            ("inference-tls-key", self.inference_tls_key),
            ("inference-headers-file", self.inference_headers_file),
            ("inference-headers-env", self.inference_headers_env),
        ] {
            properties.extend(value.map(|value| (name, value)));
        }
        Ok(properties)
    }
}
