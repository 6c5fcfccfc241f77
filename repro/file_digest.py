"""The sha256 of a file's bytes: the one hasher behind lockfile pins, data archives and world records."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

CHUNK_BYTES = 8 * 1024 * 1024


def sha256_file(path: str | Path, on_chunk: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of the file at `path`, read in chunks; `on_chunk(n)` after each chunk (progress bars)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            if on_chunk:
                on_chunk(len(chunk))
    return digest.hexdigest()
