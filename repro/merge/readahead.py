"""Keep the disk busy from a merge's first instant: read its inputs ahead of the pass.

A `repro merge` process spends its first 1.5 s importing torch before the streamed pass reads its first
tensor, and the pass itself asks only for the next tensor while it computes the current one, so the disk
idles at times. `start_readahead` asks the kernel (posix_fadvise WILLNEED, from a daemon thread: no
torch, no waiting) to read every input's safetensors files in rounds across the inputs, as the pass will
read them (tensors in storage order, every input at once), up to `budget` bytes in all: page cache, not
process memory, by default a quarter of the memory available (`default_budget`), so a model larger than
that is read ahead only in part. Where the pages are cached already, or the platform has no
posix_fadvise, it does nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

READAHEAD_BYTES = 2 << 30  # where the available memory is unknown: what the disk reads during the import
ROUND_BYTES = 32 << 20


def default_budget() -> int:
    """A quarter of the memory available now (MemAvailable), else READAHEAD_BYTES."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except (OSError, ValueError, IndexError):
        pass
    return READAHEAD_BYTES


def start_readahead(model_dirs: Sequence[str | Path], budget: int | None = None) -> threading.Thread | None:
    """Start the read-ahead of the first `budget` bytes (split evenly; default `default_budget()`) of the
    models' weight files."""
    if budget is None:
        budget = default_budget()
    if not hasattr(os, "posix_fadvise") or not model_dirs or budget <= 0:
        return None
    files = [sorted(Path(d).glob("*.safetensors")) for d in model_dirs]
    if not any(files):
        return None
    share = budget // len(files)
    thread = threading.Thread(target=_read_ahead, args=(files, share), name="repro-readahead", daemon=True)
    thread.start()
    return thread


def _read_ahead(files: list[list[Path]], share: int) -> None:
    done = [0] * len(files)  # bytes asked for, per model
    while True:
        progressed = False
        for model, group in enumerate(files):
            if done[model] >= share:
                continue
            offset = done[model]
            for path in group:  # the file and position where this model's next round starts
                try:
                    size = path.stat().st_size
                except OSError:
                    size = 0
                if offset < size:
                    length = min(ROUND_BYTES, size - offset, share - done[model])
                    _advise(path, offset, length)
                    done[model] += length
                    progressed = True
                    break
                offset -= size
            else:
                done[model] = share  # every file of this model asked for
        if not progressed:
            return


def _advise(path: Path, offset: int, length: int) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(descriptor, offset, length, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(descriptor)
