"""A loopback HTTP server that answers as the Hugging Face Hub's endpoints that
huggingface_hub's model_info and hf_hub_download use (point HF_ENDPOINT at `url`):

- GET  /api/models/OWNER/NAME/revision/REV   the repository's info: commit, files with sizes, card licence
- HEAD /OWNER/NAME/resolve/REV/PATH          X-Repo-Commit, ETag, size (as the hub does for LFS files)
- GET  /OWNER/NAME/resolve/REV/PATH          the file, from a Range offset when asked (206)

Every request must carry `Authorization: Bearer TOKEN`; another token or none is 401 as the hub
answers it. `stall_after` makes the download of a file stop after that many bytes until
`release` is set (a stalled connection to interrupt); `missing` lists files that are listed but
answer 404 EntryNotFound; `claimed_sizes` overrides the sizes the listing claims; `corrupt` files
are served changed (the listing keeps the true sha256).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hub_cache import commit_of

INFO = re.compile(r"^/api/models/([^/]+/[^/]+)/revision/([^/?]+)")
RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


@dataclass
class HubState:
    repos: dict[str, dict[str, bytes]]
    licences: dict[str, str]
    token: str
    stall_after: dict[str, int] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    claimed_sizes: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)  # files served with their first byte changed
    release: threading.Event = field(default_factory=threading.Event)
    ranges: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header) of each GET
    served: dict[str, int] = field(default_factory=dict)  # bytes sent per file


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState

    def log_message(self, *args) -> None:  # quiet
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict | None = None, send_body: bool = True) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def error(self, status: int, message: str, code: str | None = None, send_body: bool = True) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self.reply(status, json.dumps({"error": message}).encode(), headers, send_body)

    def authorized(self, send_body: bool) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.state.token}":
            return True
        self.error(401, "Invalid credentials in Authorization header", send_body=send_body)
        return False

    def lookup(self, repo: str, revision: str, path: str, send_body: bool):
        files = self.state.repos.get(repo)
        if files is None:
            self.error(404, "Repository not found", "RepoNotFound", send_body)
            return None
        if revision not in ("main", commit_of(files)):
            self.error(404, f"Invalid rev id: {revision}", "RevisionNotFound", send_body)
            return None
        if path not in files or f"{repo}/{path}" in self.state.missing:
            self.error(404, "Entry not found", "EntryNotFound", send_body)
            return None
        return files

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self.authorized(True):
            return
        if match := INFO.match(self.path):
            return self.model_info(*match.groups())
        if match := RESOLVE.match(self.path):
            return self.resolve(*match.groups(), send_body=True)
        self.error(404, "Not found")

    def do_HEAD(self) -> None:  # noqa: N802
        if not self.authorized(False):
            return
        if match := RESOLVE.match(self.path):
            return self.resolve(*match.groups(), send_body=False)
        self.error(404, "Not found", send_body=False)

    def model_info(self, repo: str, revision: str) -> None:
        files = self.state.repos.get(repo)
        if files is None:
            return self.error(404, "Repository not found", "RepoNotFound")
        if revision not in ("main", commit_of(files)):
            return self.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        siblings = []
        for name, data in files.items():
            size = self.state.claimed_sizes.get(f"{repo}/{name}", len(data))
            sha = hashlib.sha256(data).hexdigest()
            siblings.append({"rfilename": name, "size": size, "blobId": hashlib.sha1(data).hexdigest(),
                             "lfs": {"sha256": sha, "size": size, "pointerSize": 134}})
        info = {"id": repo, "modelId": repo, "sha": commit_of(files), "private": False, "siblings": siblings,
                "cardData": {"license": self.state.licences.get(repo)}, "tags": []}
        self.reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"})

    def resolve(self, repo: str, revision: str, path: str, send_body: bool) -> None:
        files = self.lookup(repo, revision, path, send_body)
        if files is None:
            return
        data = files[path]
        if f"{repo}/{path}" in self.state.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        headers = {"X-Repo-Commit": commit_of(files), "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if not send_body:
            return self.reply(200, data, headers, send_body=False)
        key = f"{repo}/{path}"
        requested = self.headers.get("Range")
        self.state.ranges.append((key, requested))
        start = int(requested.removeprefix("bytes=").split("-")[0]) if requested else 0
        body = data[start:]
        self.send_response(206 if requested else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        stall = self.state.stall_after.get(key)
        if stall is not None and not self.state.release.is_set():
            self.wfile.write(body[:stall])
            self.wfile.flush()
            self.state.served[key] = self.state.served.get(key, 0) + stall
            self.state.release.wait(60)
            self.close_connection = True
            return
        self.wfile.write(body)
        self.state.served[key] = self.state.served.get(key, 0) + len(body)


class LoopbackHub:
    """The server on 127.0.0.1 on a free port, in a thread; a context manager."""

    def __init__(self, state: HubState):
        handler = type("Handler", (HubHandler,), {"state": state})
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.release.set()
        self.server.shutdown()
        self.server.server_close()
