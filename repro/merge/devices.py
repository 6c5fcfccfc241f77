"""The compute device of a merge, from the user's `--device`."""

from __future__ import annotations

import torch

from repro.errors import MergeError


def require_device(device: str) -> torch.device:
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MergeError("CUDA is not available on this machine; use --device cpu", field="device")
        return torch.device(device)
    raise MergeError(f"must be cpu or cuda, got {device!r}", field="device")
