"""Shared fixtures: tiny random Llama and Qwen3 worlds, built once per test session, fully offline."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail any test that opens a non-loopback network connection (tests must run offline)."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            return real_connect(self, address)
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise _NetworkBlocked(f"test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="session")
def tiny_llama_world(tmp_path_factory):
    from repro.worlds.tiny import build_tiny_world

    return build_tiny_world(tmp_path_factory.mktemp("tiny-llama"), "llama", n_checkpoints=6, seed=11)


@pytest.fixture(scope="session")
def tiny_qwen3_world(tmp_path_factory):
    from repro.worlds.tiny import build_tiny_world

    return build_tiny_world(tmp_path_factory.mktemp("tiny-qwen3"), "qwen3", n_checkpoints=6, seed=12)


@pytest.fixture(scope="session", params=["llama", "qwen3"])
def tiny_world(request):
    """Parametrized over both families: a test using it runs once per family."""
    return request.getfixturevalue(f"tiny_{request.param}_world")


@pytest.fixture
def reliability_log():
    """`record(category, case, ok, **details)`: one JSON line per tried case in $REPRO_RELIABILITY_LOG.

    The `nox -s reliability` session sets it and prints the totals (tools/reliability_summary.py):
    kills injected and survived, hostile files tried and refused, bad inputs tried and rejected, results
    compared and identical. Without the variable nothing is written.
    """
    import json

    path = os.environ.get("REPRO_RELIABILITY_LOG")

    def record(category: str, case: str, ok: bool, **details) -> None:
        if path:
            line = json.dumps({"category": category, "case": case, "ok": bool(ok), **details}, default=str)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    return record
