"""Start reading a merge's inputs while the process is still starting up.

A `repro merge` process spends its first 1.5 s importing torch, before the streamed pass reads its
first tensor; the disk idles meanwhile. `start_readahead` asks the kernel (posix_fadvise WILLNEED, from a
daemon thread: no torch, no waiting) to read the first bytes of every input's safetensors files, in
rounds across the inputs as the pass will read them (tensors in storage order, every input at once), up
to `budget` bytes in all (page cache, not process memory; a bounded share of a large model). Where the
pages are cached already, or the platform has no posix_fadvise, it does nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

READAHEAD_BYTES = 2 << 30  # about what the disk reads while torch is imported (1.3 GB/s x 1.5 s)
ROUND_BYTES = 32 << 20


def start_readahead(model_dirs: Sequence[str | Path], budget: int = READAHEAD_BYTES) -> threading.Thread | None:
    """Start the read-ahead of the first `budget` bytes (split evenly) of the models' weight files."""
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
