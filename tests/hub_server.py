"""A small Hugging Face hub-compatible HTTP server on 127.0.0.1, for tests with the real huggingface_hub client.

`LocalHub()` starts a threaded HTTP server on a free loopback port; point the client at it with
HF_ENDPOINT=hub.endpoint (and HF_HUB_OFFLINE unset). It serves model repositories with several dated
commits, through the same routes and headers the client uses against huggingface.co:

- GET /api/models/<repo>[/revision/<rev>][?blobs=true]: sha, siblings (size, blobId and, for weight files,
  LFS metadata with sha256), gated;
- GET /api/models/<repo>/commits/<rev>: the commit history from <rev>, newest first, with dates;
- HEAD|GET /<repo>/resolve/<rev>/<path>: X-Repo-Commit, ETag; weight (LFS) files answer 302 with
  X-Linked-Etag (their sha256) and X-Linked-Size, redirecting to /lfs/<repo>/<sha256>, which honours Range;
- 401 GatedRepo for a gated repo's files without the right token; 404 RepoNotFound / RevisionNotFound /
  EntryNotFound otherwise.

`add_repo(repo_id, [(date, {path: bytes}), ...], gated=False)` adds a repo (commits oldest first).
`tamper(repo_id, path, data)` changes the bytes served for a file without changing its metadata (a file
changed on the server); `chunk_delay` slows file bodies down (to interrupt a download mid-way).
Every request is recorded in `requests` as (method, path, had_token, range header or None).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf")
CHUNK = 64 * 1024


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    date: datetime
    files: dict[str, bytes]
    title: str


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit]  # oldest first; the last one is the head of main
    gated: bool = False
    overrides: dict[str, bytes] = field(default_factory=dict)  # path -> served bytes (tampered)
    blob_overrides: dict[str, bytes] = field(default_factory=dict)  # listed sha256 -> served bytes (tampered)

    def find(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.commits[-1]
        for commit in self.commits:
            if commit.sha == revision or (len(revision) >= 7 and commit.sha.startswith(revision)):
                return commit
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class LocalHub:
    def __init__(self, token: str = "hf_local_test_token", chunk_delay: float = 0.0):
        self.token = token
        self.chunk_delay = chunk_delay
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes (LFS storage)
        self.requests: list[tuple[str, str, bool, str | None]] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        # LFS files redirect to another host name of the same server, like the hub's CDN: the client then
        # takes the file's metadata from the first answer instead of following the redirect for it
        self.blob_endpoint = f"http://localhost:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="local-hub", daemon=True)

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo_id: str, commits: list[tuple[datetime, dict[str, bytes]]], gated: bool = False) -> list[str]:
        """Add `repo_id` with these (date, files) commits, oldest first; returns their shas."""
        made, parent = [], ""
        for index, (date, files) in enumerate(commits):
            digest = hashlib.sha1(parent.encode())
            for name in sorted(files):
                digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
            digest.update(_iso(date).encode())
            sha = digest.hexdigest()
            made.append(Commit(sha, date, dict(files), f"commit {index + 1}"))
            for name, data in files.items():
                if name.endswith(LFS_SUFFIXES):
                    self.blobs[hashlib.sha256(data).hexdigest()] = data
            parent = sha
        self.repos[repo_id] = Repo(repo_id, made, gated)
        return [c.sha for c in made]

    def tamper(self, repo_id: str, path: str, data: bytes) -> None:
        """Serve `data` for `path` of every commit of `repo_id`, leaving the listed metadata as it was."""
        repo = self.repos[repo_id]
        repo.overrides[path] = data
        for commit in repo.commits:
            original = commit.files.get(path)
            if original is not None and path.endswith(LFS_SUFFIXES):
                repo.blob_overrides[hashlib.sha256(original).hexdigest()] = data

    def record(self, method: str, path: str, had_token: bool, byte_range: str | None) -> None:
        with self._lock:
            self.requests.append((method, path, had_token, byte_range))


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------------------------
    def _token_ok(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.hub.token}"

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, payload, headers: dict[str, str] | None = None) -> None:
        self._send(200, json.dumps(payload).encode(), headers)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(),
                   {"X-Error-Code": code, "X-Error-Message": message})

    # -- routes -----------------------------------------------------------------------------------------
    def do_HEAD(self):
        self._route()

    def do_GET(self):
        self._route()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        self.hub.record(self.command, path, "Authorization" in self.headers, self.headers.get("Range"))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commits/(.+)", path):
            return self._commits(m.group(1), m.group(2))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path):
            return self._info(m.group(1), m.group(2) or "main", "blobs=true" in (parts.query or ""))
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            return self._resolve(m.group(1), m.group(2), m.group(3))
        if m := re.fullmatch(r"/lfs/([^/]+/[^/]+)/([0-9a-f]{64})", path):
            return self._blob(m.group(1), m.group(2))
        return self._error(404, "NotFound", f"no route {path}")

    def _repo_commit(self, repo_id: str, revision: str):
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None, None
        commit = repo.find(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return repo, None
        return repo, commit

    def _info(self, repo_id: str, revision: str, blobs: bool) -> None:
        repo, commit = self._repo_commit(repo_id, revision)
        if commit is None:
            return
        siblings = []
        for name in sorted(commit.files):
            data = commit.files[name]
            sibling = {"rfilename": name}
            if blobs:
                sibling["size"] = len(data)
                sibling["blobId"] = git_blob_sha(data)
                if name.endswith(LFS_SUFFIXES):
                    sibling["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                      "pointerSize": 134}
            siblings.append(sibling)
        self._json({"_id": repo_id, "id": repo_id, "modelId": repo_id, "sha": commit.sha, "private": False,
                    "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
                    "tags": [], "lastModified": _iso(commit.date), "createdAt": _iso(repo.commits[0].date),
                    "siblings": siblings})

    def _commits(self, repo_id: str, revision: str) -> None:
        repo, commit = self._repo_commit(repo_id, revision)
        if commit is None:
            return
        upto = repo.commits[: repo.commits.index(commit) + 1]
        self._json([{"id": c.sha, "title": c.title, "message": "", "authors": [{"user": "uploader"}],
                     "date": _iso(c.date)} for c in reversed(upto)])

    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        repo, commit = self._repo_commit(repo_id, revision)
        if commit is None:
            return
        if repo.gated and not self._token_ok():
            return self._error(401, "GatedRepo", "Access to model is restricted. You must be authenticated.")
        if filename not in commit.files:
            return self._error(404, "EntryNotFound", f"{filename} does not exist at {revision}")
        listed = commit.files[filename]
        served = repo.overrides.get(filename, listed)
        headers = {"X-Repo-Commit": commit.sha}
        if filename.endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(listed).hexdigest()
            headers.update({"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(listed)),
                            "ETag": f'"{git_blob_sha(listed)}"', "Location": f"{self.hub.blob_endpoint}/lfs/{repo_id}/{sha256}"})
            return self._send(302, b"", headers)
        headers["ETag"] = f'"{git_blob_sha(listed)}"'
        self._body(served, headers)

    def _blob(self, repo_id: str, sha256: str) -> None:
        repo = self.hub.repos.get(repo_id)
        data = repo.blob_overrides.get(sha256, self.hub.blobs.get(sha256)) if repo is not None else None
        if data is None:
            return self._error(404, "EntryNotFound", "no such object")
        self._body(data, {"ETag": f'"{sha256}"'}, content_type="application/octet-stream")

    def _body(self, data: bytes, headers: dict[str, str], content_type: str = "application/octet-stream") -> None:
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())):
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else len(data) - 1
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Accept-Ranges", "bytes")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            for offset in range(0, len(data), CHUNK):
                self.wfile.write(data[offset:offset + CHUNK])
                self.wfile.flush()
                if self.hub.chunk_delay:
                    time.sleep(self.hub.chunk_delay)
        except (BrokenPipeError, ConnectionResetError):  # the client went away (killed)
            pass


def model_files(folder) -> dict[str, bytes]:
    """The files of a model folder (top level), as a commit's {path: bytes}."""
    from pathlib import Path

    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
