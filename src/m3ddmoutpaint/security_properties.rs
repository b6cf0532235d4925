// SPDX-License-Identifier: MPL-2.0
//! The properties that protect the calls to inference servers: TLS files
//! (`inference-tls-ca`, `inference-tls-cert`, `inference-tls-key`) and where
//! the request headers are read from (`inference-headers-file`, a file, or
//! `inference-headers-env`, the name of an environment variable). A secret is
//! never a property's value: the properties hold paths and a variable's name,
//! the headers are read at READY and kept in the engine's options only. A
//! plain-text server not on this machine gets a warning, once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;

use crate::engine::model::{Header, ServerSecurity, is_loopback, parse_headers, server_host};

/// The security properties as set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecuritySettings {
    pub tls_ca: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub headers_file: Option<String>,
    pub headers_env: Option<String>,
}

/// A path property that is set and not blank.
fn path(value: &Option<String>) -> Option<PathBuf> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

fn sentence(err: crate::engine::EngineError) -> String {
    match err {
        crate::engine::EngineError::InvalidInput(sentence) => sentence,
        other => other.to_string(),
    }
}

impl SecuritySettings {
    /// The engine's security options: the TLS paths and the headers read
    /// now, or a sentence naming the property (and never a header's value).
    pub fn security(&self) -> Result<ServerSecurity, String> {
        let mut headers: Vec<Header> = Vec::new();
        if let Some(file) = path(&self.headers_file) {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                format!(
                    "inference-headers-file {}: cannot read it: {e}",
                    file.display()
                )
            })?;
            let source = format!("inference-headers-file {}", file.display());
            headers.extend(parse_headers(&text, &source).map_err(sentence)?);
        }
        if let Some(name) = self
            .headers_env
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let text = std::env::var(name).map_err(|_| {
                format!("inference-headers-env: the environment variable {name} is not set (or not UTF-8)")
            })?;
            let source = format!("inference-headers-env {name}");
            headers.extend(parse_headers(&text, &source).map_err(sentence)?);
        }
        Ok(ServerSecurity {
            ca: path(&self.tls_ca),
            cert: path(&self.tls_cert),
            key: path(&self.tls_key),
            headers,
        })
    }

    /// Stores a security property; `false` when `name` is not one.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        let slot = match name {
            "inference-tls-ca" => &mut self.tls_ca,
            "inference-tls-cert" => &mut self.tls_cert,
            "inference-tls-key" => &mut self.tls_key,
            "inference-headers-file" => &mut self.headers_file,
            "inference-headers-env" => &mut self.headers_env,
            _ => return false,
        };
        *slot = value.get().expect("type checked upstream");
        true
    }

    /// A security property's value (a path or a variable's name); `None` when `name` is not one.
    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "inference-tls-ca" => self.tls_ca.to_value(),
            "inference-tls-cert" => self.tls_cert.to_value(),
            "inference-tls-key" => self.tls_key.to_value(),
            "inference-headers-file" => self.headers_file.to_value(),
            "inference-headers-env" => self.headers_env.to_value(),
            _ => return None,
        })
    }
}

/// Warns, once per server in the process, that frames go in plain text to a
/// `grpc://` server that is not on this machine.
pub fn warn_unencrypted(element: &gst::Element, servers: &[String]) {
    static WARNED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);
    for url in servers {
        let (host, tls) = server_host(url);
        if tls || is_loopback(host) || !WARNED.lock().unwrap().insert(url.clone()) {
            continue;
        }
        gst::element_warning!(
            element,
            gst::ResourceError::Settings,
            ("frames travel unencrypted to the inference server {url}: anyone on the network \
              can read them; use grpcs:// (TLS) for a server on another machine"),
            ["warned once per server in this process"]
        );
    }
}

/// The specs of the security properties.
pub fn specs() -> Vec<glib::ParamSpec> {
    let string = |name: &str, nick: &str, blurb: &str| {
        glib::ParamSpecString::builder(name)
            .nick(nick)
            .blurb(blurb)
            .mutable_ready()
            .build()
    };
    vec![
        string(
            "inference-tls-ca",
            "Inference TLS CA",
            "PEM file of the certificate authorities that grpcs:// inference servers' certificates must \
             chain to; unset = the system's roots",
        ),
        string(
            "inference-tls-cert",
            "Inference TLS client certificate",
            "PEM file of this client's certificate, for grpcs:// servers that ask for mutual TLS \
             (with inference-tls-key)",
        ),
        string(
            "inference-tls-key",
            "Inference TLS client key",
            "PEM file of the private key of inference-tls-cert",
        ),
        string(
            "inference-headers-file",
            "Inference headers file",
            "File of request headers sent with every call to the inference servers: `Name: value` per \
             line, or a token alone (sent as `authorization: Bearer TOKEN`); read at READY, never shown",
        ),
        string(
            "inference-headers-env",
            "Inference headers variable",
            "Name of an environment variable holding request headers as inference-headers-file does \
             (the variable's name, not its value)",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_come_from_a_file_or_a_variable_and_read_back_no_secret() {
        let dir = std::env::temp_dir().join(format!("m3ddm-security-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("headers");
        std::fs::write(&file, "m3ddm-key: s3cr3t-file\n").unwrap();
        // SAFETY: a variable of this test's own name, set before it is read.
        unsafe { std::env::set_var("M3DDM_TEST_SECURITY_TOKEN", "s3cr3t-env") };
        let mut settings = SecuritySettings::default();
        settings.set(
            "inference-headers-file",
            &Some(file.display().to_string()).to_value(),
        );
        settings.set(
            "inference-headers-env",
            &"M3DDM_TEST_SECURITY_TOKEN".to_value(),
        );
        settings.set("inference-tls-ca", &"/certs/ca.pem".to_value());
        let security = settings.security().unwrap();
        let names: Vec<&str> = security.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["m3ddm-key", "authorization"]);
        assert_eq!(security.ca, Some(PathBuf::from("/certs/ca.pem")));
        for name in [
            "inference-headers-file",
            "inference-headers-env",
            "inference-tls-ca",
        ] {
            let shown = format!("{:?}", settings.get(name).unwrap());
            assert!(!shown.contains("s3cr3t"), "{name}: {shown}");
        }
        assert!(!format!("{security:?}").contains("s3cr3t"));
        settings.set(
            "inference-headers-env",
            &"M3DDM_TEST_SECURITY_UNSET".to_value(),
        );
        let err = settings.security().unwrap_err();
        assert!(
            err.contains("M3DDM_TEST_SECURITY_UNSET is not set"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
