// SPDX-License-Identifier: MPL-2.0
//! The element against a Triton test server with mutual TLS and a protocol
//! restricted to clients that send a header (Triton's `--grpc-use-ssl-mutual`,
//! `--grpc-server-cert/-key`, `--grpc-root-cert`, `--grpc-restricted-protocol`),
//! certificates made here with the openssl command: with the right CA, the
//! client certificate and the header (from a file), frames bit-exact with the
//! in-process ones; a wrong CA, no client certificate, no header and a wrong
//! header (from an environment variable) each end at READY with an error
//! naming the server and the cause. The secret is searched for in every bus
//! message, the whole GStreamer log, the stats and the properties' read-back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use gst::prelude::*;

use super::common::*;
use super::server::TestServer;
use super::{
    DEFAULT_TIMEOUT_MS, assert_same_frames, in_process_frames, remote_properties, start_servers,
    stream,
};

/// The header value the server expects: what must never be shown.
const SECRET: &str = "m3ddm-s3cr3t-7f1c2e";
const HEADER: &str = "m3ddm-key";
/// Triton checks `--grpc-restricted-protocol=…:KEY=VALUE` as the header `triton-grpc-protocol-KEY`.
const TRITON_PREFIX: &str = "triton-grpc-protocol-";

/// The certificates of the tests, made once.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs (Debian's openssl package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA named `ca`, and `name`'s key and certificate signed by it for `san`.
fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=m3ddm test {ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ],
    );
}

fn make_signed(dir: &Path, ca: &str, name: &str, san: &str) {
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn certificates() -> &'static Certificates {
    static CERTS: OnceLock<Certificates> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("m3ddm-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        make_ca(&dir, "ca");
        make_ca(&dir, "other-ca");
        make_signed(&dir, "ca", "server", "DNS:localhost,IP:127.0.0.1");
        make_signed(&dir, "ca", "client", "DNS:m3ddm-client");
        std::fs::write(
            dir.join("headers"),
            format!("{TRITON_PREFIX}{HEADER}: {SECRET}\n"),
        )
        .unwrap();
        Certificates { dir }
    })
}

/// The server with mutual TLS and the restricted protocols, started once.
fn secure_server() -> Option<&'static TestServer> {
    static SERVER: OnceLock<Option<Vec<TestServer>>> = OnceLock::new();
    let certs = certificates();
    SERVER
        .get_or_init(|| {
            let args = [
                "--triton-arg=--grpc-use-ssl=true".to_string(),
                "--triton-arg=--grpc-use-ssl-mutual=true".to_string(),
                format!("--triton-arg=--grpc-server-cert={}", certs.path("server.pem")),
                format!("--triton-arg=--grpc-server-key={}", certs.path("server.key")),
                format!("--triton-arg=--grpc-root-cert={}", certs.path("ca.pem")),
                format!(
                    "--triton-arg=--grpc-restricted-protocol=health,metadata,inference,model-config:{HEADER}={SECRET}"
                ),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            start_servers(&[&args])
        })
        .as_ref()
        .map(|servers| &servers[0])
}

fn tls_url(server: &TestServer) -> String {
    server.url.replace("grpc://", "grpcs://")
}

/// Remote properties for the secure server, with `extra` added.
fn secure_properties(
    server: &TestServer,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut properties = remote_properties(&[tls_url(server)], DEFAULT_TIMEOUT_MS);
    properties.extend(extra.iter().cloned());
    properties
}

fn all_credentials() -> Vec<(&'static str, String)> {
    let certs = certificates();
    vec![
        ("inference-tls-ca", certs.path("ca.pem")),
        ("inference-tls-cert", certs.path("client.pem")),
        ("inference-tls-key", certs.path("client.key")),
        ("inference-headers-file", certs.path("headers")),
    ]
}

/// Every line GStreamer logs while installed (all categories, every level).
struct LogCapture {
    lines: Arc<Mutex<Vec<String>>>,
    function: gst::log::DebugLogFunction,
}

impl LogCapture {
    fn start() -> LogCapture {
        init();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        gst::log::set_active(true);
        gst::log::remove_default_log_function();
        gst::log::set_default_threshold(gst::DebugLevel::Log);
        // The object is not formatted (its name would take a lock the logging
        // thread may hold); the line is made before the lock is taken, as
        // making it may log again on this thread.
        let function = gst::log::add_log_function(
            move |category, level, file, function, line, _object, message| {
                let text = format!(
                    "{} {level:?} {file}:{line} {function} {}",
                    category.name(),
                    message.get().map(|m| m.to_string()).unwrap_or_default()
                );
                sink.lock().unwrap().push(text);
            },
        );
        LogCapture { lines, function }
    }

    fn stop(self) -> Vec<String> {
        gst::log::remove_log_function(self.function);
        gst::log::set_default_threshold(gst::DebugLevel::None);
        std::mem::take(&mut self.lines.lock().unwrap())
    }
}

/// Asserts that none of `texts` holds the secret.
fn assert_no_secret(what: &str, texts: &[String]) {
    assert!(!texts.is_empty() || what == "bus", "no {what} was captured");
    if let Some(text) = texts.iter().find(|t| t.contains(SECRET)) {
        panic!("the secret is in the {what}: {text}");
    }
}

/// NULL→READY with these properties: it fails; its error, and every readable
/// property's value and bus message.
fn error_and_messages_at_ready(
    properties: &[(&'static str, String)],
) -> (gst::glib::Error, Vec<String>) {
    let (element, bus) = refused_at_ready(&as_refs(properties));
    let readback: Vec<String> = element
        .list_properties()
        .iter()
        .filter(|spec| spec.flags().contains(gst::glib::ParamFlags::READABLE))
        .map(|spec| format!("{}={:?}", spec.name(), element.property_value(spec.name())))
        .collect();
    let _ = element.set_state(gst::State::Null);
    let mut messages = readback;
    let mut error = None;
    while let Some(message) = bus.pop() {
        if let gst::MessageView::Error(err) = message.view() {
            error.get_or_insert(err.error());
            messages.push(format!("{:?}", err.debug()));
        }
        messages.push(format!("{message:?}"));
    }
    (error.expect("an error message"), messages)
}

#[test]
fn remote_tls_with_the_right_ca_client_certificate_and_header_matches_in_process() {
    let Some(server) = secure_server() else {
        return;
    };
    let log = LogCapture::start();
    let frames = 17;
    let (local, _) = in_process_frames(frames);
    let remote = stream(&secure_properties(server, &all_credentials()), frames);
    let lines = log.stop();
    assert_same_frames(&local, &remote);
    eprintln!("{frames} frames over mutual TLS with the header: bit-exact");
    assert_no_secret("log", &lines);
    assert_no_secret("stats", &[format!("{:?}", remote.stats)]);
}

#[test]
fn remote_tls_refusals_name_the_server_and_the_cause_never_the_secret() {
    let Some(server) = secure_server() else {
        return;
    };
    let certs = certificates();
    let url = tls_url(server);
    let without = |name: &str| -> Vec<(&'static str, String)> {
        all_credentials()
            .into_iter()
            .filter(|(n, _)| *n != name)
            .collect()
    };
    let mut wrong_ca = without("inference-tls-ca");
    wrong_ca.push(("inference-tls-ca", certs.path("other-ca.pem")));
    let mut no_client_cert = without("inference-tls-cert");
    no_client_cert.retain(|(n, _)| *n != "inference-tls-key");
    let no_header = without("inference-headers-file");
    let mut wrong_header = no_header.clone();
    // SAFETY: a variable of this test's own name, set before the element reads it.
    unsafe {
        std::env::set_var(
            "M3DDM_TEST_WRONG_KEY",
            format!("{TRITON_PREFIX}{HEADER}: not-{SECRET}"),
        )
    };
    wrong_header.push(("inference-headers-env", "M3DDM_TEST_WRONG_KEY".into()));
    let log = LogCapture::start();
    let mut everything = Vec::new();
    for (case, extra, cause) in [
        ("wrong CA", wrong_ca, "certificate"),
        ("no client certificate", no_client_cert, "certificate"),
        ("no header", no_header, HEADER),
        ("wrong header", wrong_header, HEADER),
    ] {
        let (err, messages) = error_and_messages_at_ready(&secure_properties(server, &extra));
        let message = err.message().to_string();
        eprintln!("{case}: {message}");
        assert!(
            message.contains(&url) && message.to_lowercase().contains(cause),
            "{case}: the error does not name {url} and `{cause}`: {message}"
        );
        everything.extend(messages);
    }
    assert_no_secret("bus", &everything);
    assert_no_secret("log", &log.stop());
}
