"""Torch's CPU thread count, changed only for the length of a `with` block.

`torch.set_num_threads` sets a process-wide value: set and left, it changes every later computation of the
process (a test, the next job, the caller's own work). `torch_threads(n)` sets it on entry and puts back
what it found on exit, also when the block raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with `threads` torch CPU threads (None: leave the count as it is); yields the count."""
    import torch  # heavy: imported only by the callers that compute with torch

    before = torch.get_num_threads()
    if threads is None:
        yield before
        return
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
