"""Job claims: at most one live worker runs a job, and a claim held by a dead worker expires.

A claim is a file claims/<job_id>.claim created with O_CREAT|O_EXCL (atomic, also on NFS v3+). Its owner
refreshes the file's mtime (a heartbeat thread) while it works; a claim whose mtime is older than `ttl_s`
belongs to a dead worker. To take it over, a worker renames it to a unique name first: rename is atomic, so
exactly one contender wins, and then creates a fresh claim with O_EXCL like any other claimer. A claim
whose owner ran on this host and whose process is gone (kill -9) is taken over at once, without the ttl.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead_here(path: Path) -> bool:
    """True if the claim's owner ran on this host and its process no longer exists (e.g. kill -9)."""
    try:
        host, pid, _ = json.loads(path.read_text(encoding="utf-8"))["owner"].split(":")
    except (OSError, ValueError, KeyError):
        return False  # unreadable or being written: rely on the ttl
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


class Claim:
    """A held claim; refreshes itself in the background until released."""

    def __init__(self, path: Path, owner: str, heartbeat_s: float):
        self.path = path
        self.owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True)
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError, ValueError):
            # Remove the claim only if it is still ours (an expired claim may have been taken over).
            if json.loads(self.path.read_text(encoding="utf-8")).get("owner") == self.owner:
                self.path.unlink()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ClaimBoard:
    """The claims of one experiment (runs/<config>/claims/)."""

    def __init__(self, claims_dir: str | os.PathLike, *, ttl_s: float = 180.0, heartbeat_s: float | None = None):
        self.dir = Path(claims_dir)
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else max(ttl_s / 6, 0.05)

    def path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.claim"

    def try_claim(self, job_id: str, owner: str) -> Claim | None:
        """Claim `job_id` for `owner`; None if a live worker holds it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(job_id)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._take_over_if_expired(path):
                    return None
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"owner": owner, "claimed_at": time.time()}, handle)
            return Claim(path, owner, self.heartbeat_s)
        return None

    def _take_over_if_expired(self, path: Path) -> bool:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try to create it again
        if age < self.ttl_s and not _owner_is_dead_here(path):
            return False
        stale = path.with_name(f".{path.name}.expired.{uuid.uuid4().hex}")
        try:
            os.rename(path, stale)  # atomic: only one contender moves this exact file
        except FileNotFoundError:
            return True
        stale.unlink(missing_ok=True)
        return True

    def live_claims(self) -> dict[str, str]:
        """job id -> owner, for claims that have not expired."""
        out = {}
        if not self.dir.is_dir():
            return out
        now = time.time()
        for path in self.dir.glob("*.claim"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                if now - path.stat().st_mtime < self.ttl_s:
                    out[path.name[: -len(".claim")]] = json.loads(path.read_text(encoding="utf-8"))["owner"]
        return out
