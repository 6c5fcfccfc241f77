"""`repro lock check --online`: the real huggingface_hub client against a loopback server that speaks the
hub's model-info API (HF_ENDPOINT), answering like the hub for a present, a deleted, a re-written and a
gated repository."""

from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path

import pytest
import yaml

from repro.cli import main

REPO = Path(__file__).resolve().parents[1]
KEPT, REWRITTEN, OTHER = "1" * 40, "2" * 40, "3" * 40


class _HubApi(http.server.BaseHTTPRequestHandler):
    """GET /api/models/<org>/<name>/revision/<rev>: 200 with the commit sha, or the hub's error codes."""

    repos = {"org/kept": {KEPT}, "org/rewritten": {OTHER}, "org/gated": None}

    def log_message(self, *args):
        pass

    def do_GET(self):
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/?]+)(\?.*)?", self.path)
        repo, revision = (match.group(1), match.group(2)) if match else (None, None)
        if repo not in self.repos:
            return self._error(401, "RepoNotFound", "Repository not found")
        if self.repos[repo] is None:
            return self._error(403, "GatedRepo", "Access to model org/gated is restricted")
        if revision not in self.repos[repo]:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        body = json.dumps({"id": repo, "modelId": repo, "sha": revision, "siblings": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str):
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def hub(monkeypatch):
    import huggingface_hub.constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # loopback only
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _lockfile(tmp_path: Path, pins: dict[str, str | None]) -> Path:
    entries = {repo: {"revision": rev, "gated": False, "files": []} for repo, rev in pins.items()}
    body = {"version": 1, "checkpoints": entries,
            "bases": {"b": {"model": "org/kept", "in_the_wild": [r for r in pins if r != "org/kept"]}}}
    path = tmp_path / "checkpoints.lock"
    path.write_text(yaml.safe_dump(body))
    return path


def test_online_check_names_the_revisions_that_no_longer_resolve(hub, tmp_path, capsys):
    path = _lockfile(tmp_path, {"org/kept": KEPT, "org/deleted": KEPT, "org/rewritten": REWRITTEN,
                                "org/gated": KEPT, "org/unpinned": None})
    assert main(["lock", "check", "--lockfile", str(path), "--online"]) == 1
    out, err = capsys.readouterr()
    assert "GONE: org/deleted@" + KEPT + ": org/deleted was not found on the hub" in out
    assert "GONE: org/rewritten@" + REWRITTEN + ": org/rewritten has no commit" in out
    assert "DENIED: org/gated@" in out and "org/kept@" not in out
    assert "5 checkpoints: 1 resolve, 2 no longer resolve, 1 denied (gated or private: set HF_TOKEN), 1 not pinned" in out

    path = _lockfile(tmp_path, {"org/kept": KEPT, "org/gated": KEPT})
    assert main(["lock", "check", "--lockfile", str(path), "--online"]) == 0  # denied is reported, not a failure
    assert "2 checkpoints: 1 resolve, 0 no longer resolve, 1 denied" in capsys.readouterr().out


def test_online_check_without_the_hub_is_one_clear_error(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    path = _lockfile(tmp_path, {"org/kept": KEPT, "org/other": KEPT})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["lock", "check", "--lockfile", str(path), "--online"]) == 2
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE is set" in err and "Traceback" not in err
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert main(["lock", "check", "--lockfile", str(path), "--online"]) == 2
    assert "cannot reach the Hugging Face hub" in capsys.readouterr().err


def test_offline_check_is_unchanged(tmp_path, capsys):
    assert main(["lock", "check", "--lockfile", str(REPO / "checkpoints.lock")]) == 0
    assert "checkpoints" in capsys.readouterr().out
