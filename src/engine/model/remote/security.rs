// SPDX-License-Identifier: MPL-2.0
//! What protects the calls to inference servers: TLS for `grpcs://` servers
//! (the system's roots or a CA file, a client certificate for mutual TLS,
//! through tonic's rustls), and request headers sent with every call (a
//! bearer token or the header a server's restriction asks for). A header's
//! value is a [`Secret`]: it is shown as `<hidden>` wherever it is formatted,
//! and no message of this module quotes it.

use std::fmt;
use std::path::{Path, PathBuf};

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::engine::error::{EngineError, Result};

/// A value that must not be shown: formatted as `<hidden>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// A request header sent with every call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub name: String,
    pub value: Secret,
}

/// TLS files and request headers for the inference servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServerSecurity {
    /// PEM certificates of the authorities a `grpcs://` server's certificate
    /// must chain to; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// The client's PEM certificate and key (mutual TLS).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub headers: Vec<Header>,
}

/// Reads request headers from `text` (a file's or an environment variable's,
/// named by `source` in errors): one `Name: value` per line, or a single line
/// without a colon, a bearer token (`authorization: Bearer TOKEN`). Blank
/// lines and lines starting with `#` are skipped. Errors name the line and the
/// header, never a value.
pub fn parse_headers(text: &str, source: &str) -> Result<Vec<Header>> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let bad = |why: String| EngineError::InvalidInput(format!("{source}: {why}"));
    if let [(_, token)] = lines[..]
        && !token.contains(':')
    {
        return Ok(vec![Header {
            name: "authorization".into(),
            value: Secret(format!("Bearer {token}")),
        }]);
    }
    if lines.is_empty() {
        return Err(bad("holds no header and no token".into()));
    }
    lines
        .into_iter()
        .map(|(number, line)| {
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad(format!(
                    "line {} is not `Name: value` (a token alone must be the only line)",
                    number + 1
                )));
            };
            let name = name.trim().to_ascii_lowercase();
            let header = Header {
                value: Secret(value.trim().to_owned()),
                name,
            };
            metadata(&header).map_err(|why| bad(format!("line {}: {why}", number + 1)))?;
            Ok(header)
        })
        .collect()
}

/// The header as gRPC metadata, its value marked sensitive.
pub(super) fn metadata(
    header: &Header,
) -> std::result::Result<(AsciiMetadataKey, AsciiMetadataValue), String> {
    let key = AsciiMetadataKey::from_bytes(header.name.as_bytes())
        .map_err(|_| format!("`{}` is not a valid header name", header.name))?;
    let mut value = AsciiMetadataValue::try_from(header.value.expose()).map_err(|_| {
        format!(
            "the value of header `{}` has characters a header cannot carry",
            header.name
        )
    })?;
    value.set_sensitive(true);
    Ok((key, value))
}

fn read_pem(path: &Path, property: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        EngineError::InvalidInput(format!(
            "{property} {}: cannot read it: {e}",
            path.display()
        ))
    })
}

/// The TLS configuration of a `grpcs://` server at `host`.
pub(super) fn tls_config(security: &ServerSecurity, host: &str) -> Result<ClientTlsConfig> {
    let mut config = ClientTlsConfig::new().domain_name(host);
    config = match &security.ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read_pem(ca, "inference-tls-ca")?)),
        None => config.with_native_roots(),
    };
    match (&security.cert, &security.key) {
        (Some(cert), Some(key)) => Ok(config.identity(Identity::from_pem(
            read_pem(cert, "inference-tls-cert")?,
            read_pem(key, "inference-tls-key")?,
        ))),
        (None, None) => Ok(config),
        _ => Err(EngineError::InvalidInput(
            "inference-tls-cert and inference-tls-key go together (the client certificate of mutual TLS and its key): set both or neither".into(),
        )),
    }
}

/// Whether a server at `host` is on this machine (loopback), where plain
/// text does not leave it.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_and_their_values_never_shown() {
        let headers = parse_headers(
            "# comment\nM3DDM-Key: s3cr3t\n\nx-other:  two words \n",
            "file f",
        )
        .unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].name, "m3ddm-key");
        assert_eq!(headers[0].value.expose(), "s3cr3t");
        assert_eq!(headers[1].value.expose(), "two words");
        assert!(!format!("{headers:?}").contains("s3cr3t"));
        let token = parse_headers("  abc.def-ghi \n", "file f").unwrap();
        assert_eq!(token[0].name, "authorization");
        assert_eq!(token[0].value.expose(), "Bearer abc.def-ghi");
        for (text, why) in [
            ("", "holds no header"),
            ("a: 1\ntoken-without-colon", "line 2 is not `Name: value`"),
            ("bad name: v4lue", "`bad name` is not a valid header name"),
            ("k: v4lue\u{7}", "characters a header cannot carry"),
        ] {
            let err = parse_headers(text, "the file f").unwrap_err().to_string();
            assert!(
                err.contains("the file f") && err.contains(why),
                "{text:?}: {err}"
            );
            assert!(!err.contains("v4lue"), "{err}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "127.8.0.1", "localhost", "[::1]", "::1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "[2001:db8::1]"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
