// SPDX-License-Identifier: MPL-2.0
//! Test inference servers: the project's Triton test server (`models/serving`,
//! from `.venv-serving`) serving the tiny model's graphs on free loopback
//! ports, started in parallel, killed (or stopped) on demand and always killed
//! when dropped, with `--stop-on-eof` as a second guard should this process die.
//! Each server's temporary files go to a folder of its own, removed when it is
//! dropped (a killed server cannot clean up after itself); the folder of a
//! server that ended with its test process is removed by the next start.
//! Also used by `examples/bench_remote.rs`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for a server to say `ready` (about 3–10 s on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(180);

const SCRATCH_PREFIX: &str = "m3ddm-test-server-";

/// The serving venv's python, or why there is none.
pub fn serving_python() -> Result<PathBuf, String> {
    let python = std::env::var_os("M3DDM_SERVING_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| project().join(".venv-serving/bin/python"));
    if python.is_file() {
        Ok(python)
    } else {
        Err(format!(
            "{} is missing (make serving-venv creates it)",
            python.display()
        ))
    }
}

/// Removes the folders left by servers that ended with their test process
/// (which is gone: its id is in the folder's name).
fn remove_stale_scratch_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `count` different loopback ports that nothing listens on (at the time of asking).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One running test server (the python launcher and its tritonserver, one process group).
pub struct TestServer {
    child: Child,
    /// The server's TMPDIR.
    scratch: PathBuf,
    pub url: String,
    /// Triton's HTTP port (health, statistics).
    pub http_port: u16,
}

impl TestServer {
    /// Starts one server of `model` per entry of `extra_args` (more options of
    /// `python -m serving`, e.g. `--max-batch 2`) at once, and waits until each is ready.
    pub fn start(python: &Path, model: &Path, extra_args: &[&[&str]]) -> Vec<TestServer> {
        let started = Instant::now();
        let count = extra_args.len();
        let ports = free_ports(2 * count);
        let launched: Vec<(TestServer, mpsc::Receiver<String>)> = extra_args
            .iter()
            .zip(ports.chunks(2))
            .map(|(args, ports)| TestServer::launch(python, model, (ports[0], ports[1]), args))
            .collect();
        let servers = launched
            .into_iter()
            .map(|(mut server, lines)| {
                server.wait_ready(&lines);
                server
            })
            .collect();
        eprintln!(
            "{count} test server(s) ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        servers
    }

    fn launch(
        python: &Path,
        model: &Path,
        (grpc, http): (u16, u16),
        extra_args: &[&str],
    ) -> (TestServer, mpsc::Receiver<String>) {
        remove_stale_scratch_folders();
        let scratch =
            std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}-{grpc}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let mut child = Command::new(python)
            .args(["-m", "serving", "--model"])
            .arg(model)
            .args(["--grpc-port", &grpc.to_string()])
            .args(["--http-port", &http.to_string(), "--stop-on-eof"])
            .args(extra_args)
            .env("PYTHONPATH", project().join("models"))
            .env("TMPDIR", &scratch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let url = format!("grpc://127.0.0.1:{grpc}");
        let server = TestServer {
            child,
            scratch,
            url,
            http_port: http,
        };
        (server, lines)
    }

    fn wait_ready(&mut self, lines: &mpsc::Receiver<String>) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.starts_with("ready") => return,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "the test server {} was not ready after {START_TIMEOUT:?}",
                        self.url
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    let mut stderr = String::new();
                    if let Some(mut pipe) = self.child.stderr.take() {
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    panic!("the test server {} did not start: {stderr}", self.url)
                }
            }
        }
    }

    /// A handle that can kill or stop the server from another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            group: self.child.id(),
            url: self.url.clone(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// What another thread needs to kill or stop a server.
#[derive(Clone)]
pub struct ServerHandle {
    group: u32,
    pub url: String,
}

impl ServerHandle {
    /// Sends `signal` (`KILL`, `STOP`) to the server's whole process group (launcher and Triton).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), "--", &format!("-{}", self.group)])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} of {}", self.url);
    }
}
