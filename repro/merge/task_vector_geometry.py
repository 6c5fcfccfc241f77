"""Appendix D: pairwise geometry of the task vectors δ_i = θ_i − θ_base of one base's checkpoints.

One pass over the tensor names of the base model: for each name, the tensor is read from the base and
from every checkpoint (safetensors `safe_open`, in row slices of at most `chunk_elements` values, so no
whole model and no whole large tensor of 13 models is ever in memory), the k task-vector slices are
stacked and their Gram matrix G = D Dᵀ (every pairwise dot product; the norms² on the diagonal) is
accumulated in float64. Task vectors are computed in float32, like the merge engine's. Per tensor, per
transformer block (tensor names matching `layer_pattern`) and in total; the report turns them into
cosines, cos(i, j) = G_ij / √(G_ii G_jj).

Checkpoints whose first dimension is larger than the base's (extended vocabularies) are truncated to the
base's rows, as the merge engine does with `vocab_mismatch: truncate`; any other shape mismatch or a
missing tensor is an error naming the checkpoint and the tensor.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from repro.errors import RunnerError

DEFAULT_CHUNK_ELEMENTS = 1 << 22  # values per checkpoint per read (16 MiB in float32)


@dataclass(frozen=True)
class Geometry:
    """Gram matrices (lists of k lists of k floats) of the task vectors, in checkpoint order."""

    checkpoints: list[str]
    tensors: dict[str, list[list[float]]]
    layers: dict[int, list[list[float]]]
    total: list[list[float]]
    layer_pattern: str

    def to_json(self) -> dict:
        return {
            "checkpoints": self.checkpoints,
            "layer_pattern": self.layer_pattern,
            "total": self.total,
            "layers": {str(i): gram for i, gram in sorted(self.layers.items())},
            "tensors": self.tensors,
        }


def _tensor_files(model_dir: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it (single file or sharded with an index)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return {name: model_dir / file for name, file in weight_map.items()}
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise RunnerError(f"no *.safetensors weights in {model_dir}")
    out = {}
    for file in files:
        with safe_open(file, framework="pt") as handle:
            out.update({name: file for name in handle.keys()})  # noqa: SIM118 (safe_open has no __iter__)
    return out


class _Handles:
    """Open safetensors files, each opened once for the whole pass."""

    def __init__(self, stack: contextlib.ExitStack):
        self._stack = stack
        self._open: dict[Path, object] = {}

    def slice(self, file: Path, name: str):
        if file not in self._open:
            self._open[file] = self._stack.enter_context(safe_open(file, framework="pt"))
        return self._open[file].get_slice(name)


def task_vector_geometry(base_dir: str | Path, checkpoint_dirs: list[str | Path], *, layer_pattern: str,
                         labels: list[str] | None = None,
                         chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Geometry:
    """Gram matrices of the task vectors of `checkpoint_dirs` relative to `base_dir` (see module doc);
    `labels` name the checkpoints in the result (default: their folder names)."""
    # torch: deferred so that importing this module does not load it
    import torch

    base_dir = Path(base_dir)
    checkpoint_dirs = [Path(d) for d in checkpoint_dirs]
    base_files = _tensor_files(base_dir)
    checkpoint_files = [_tensor_files(d) for d in checkpoint_dirs]
    pattern = re.compile(layer_pattern)
    k = len(checkpoint_dirs)
    tensors: dict[str, list[list[float]]] = {}
    layers: dict[int, torch.Tensor] = {}
    total = torch.zeros(k, k, dtype=torch.float64)
    with contextlib.ExitStack() as stack:
        handles = _Handles(stack)
        for name in sorted(base_files):
            base_slice = handles.slice(base_files[name], name)
            shape = list(base_slice.get_shape())
            slices = []
            for directory, files in zip(checkpoint_dirs, checkpoint_files, strict=True):
                if name not in files:
                    raise RunnerError(f"checkpoint {directory} has no tensor {name!r} (the base has it)")
                other = handles.slice(files[name], name)
                other_shape = list(other.get_shape())
                if other_shape != shape and not (
                    len(shape) >= 1 and other_shape[1:] == shape[1:] and other_shape[0] > shape[0]
                ):
                    raise RunnerError(f"checkpoint {directory}: tensor {name!r} has shape {other_shape}, "
                                      f"the base has {shape}")
                slices.append(other)
            gram = torch.zeros(k, k, dtype=torch.float64)
            if not shape:  # a scalar
                base_value = base_slice[:].float().reshape(1)
                deltas = torch.stack([(s[:].float().reshape(1) - base_value) for s in slices]).double()
                gram += deltas @ deltas.T
            else:
                rows, per_row = shape[0], math.prod(shape[1:])
                step = max(1, chunk_elements // max(per_row, 1))
                for start in range(0, rows, step):
                    stop = min(rows, start + step)
                    base_part = base_slice[start:stop].float().reshape(-1)
                    deltas = torch.stack([s[start:stop].float().reshape(-1) - base_part for s in slices])
                    deltas = deltas.double()
                    gram += deltas @ deltas.T
            tensors[name] = gram.tolist()
            total += gram
            match = pattern.search(name)
            if match:
                index = int(match.group(1))
                layers[index] = layers.get(index, torch.zeros(k, k, dtype=torch.float64)) + gram
    return Geometry(
        checkpoints=list(labels) if labels is not None else [d.name for d in checkpoint_dirs],
        tensors=tensors,
        layers={i: g.tolist() for i, g in sorted(layers.items())},
        total=total.tolist(),
        layer_pattern=layer_pattern,
    )
