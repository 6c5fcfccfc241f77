"""Checks on merge inputs before anything is written: tensor names, shapes, vocabulary rows, NaN/Inf.

Real in-the-wild checkpoints are messy: some extend the tokenizer (more embedding rows than the base,
e.g. 128320 vs 128256), some are broken. Shapes come from the safetensors headers (no tensor data is
read); the finite-value check streams one tensor at a time.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from repro.errors import MergeError

VOCAB_MISMATCH_POLICIES = ("truncate", "error")
# Tensors whose first axis is the vocabulary (the only axis a checkpoint may extend).
VOCAB_TENSOR_MARKERS = ("embed_tokens", "lm_head", "wte", "embed_out")


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int = 0  # absolute byte range of the tensor's data in `file`
    end: int = 0


@dataclass(frozen=True)
class VocabTruncation:
    """One checkpoint tensor with more vocabulary rows than the base, truncated to the base rows."""

    checkpoint: str
    tensor: str
    rows: int
    base_rows: int

    def as_dict(self) -> dict:
        return {
            "checkpoint": self.checkpoint,
            "tensor": self.tensor,
            "rows": self.rows,
            "base_rows": self.base_rows,
        }


def _read_header(file: Path) -> tuple[dict, int]:
    """(header, absolute offset of the data section) of one safetensors file."""
    try:
        with open(file, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(handle.read(length))
            if not isinstance(header, dict):
                raise ValueError("header is not a JSON object")
            return header, 8 + length
    except (OSError, ValueError, struct.error) as error:
        raise MergeError(
            f"cannot read the safetensors header ({error}); re-download the checkpoint", path=str(file)
        ) from None


def read_tensor_index(model_dir: str | Path) -> dict[str, TensorInfo]:
    """Name -> dtype, shape and file of every tensor of a Hugging Face model directory (safetensors)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MergeError("is not a model directory (no such directory)", path=str(model_dir))
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise MergeError(
            "has no *.safetensors weights; the merge engine reads safetensors checkpoints only "
            "(convert .bin weights with transformers' save_pretrained(safe_serialization=True))",
            path=str(model_dir),
        )
    index: dict[str, TensorInfo] = {}
    for file in files:
        header, data_start = _read_header(file)
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            try:
                begin, end = (int(x) for x in meta["data_offsets"])
                info = TensorInfo(
                    dtype=meta["dtype"],
                    shape=tuple(int(d) for d in meta["shape"]),
                    file=file,
                    start=data_start + begin,
                    end=data_start + end,
                )
            except (KeyError, TypeError, ValueError) as error:
                raise MergeError(
                    f"tensor {name} has a malformed safetensors header entry ({error}); re-download the "
                    "checkpoint",
                    path=str(file),
                ) from None
            index[name] = info
    return index


def dominant_float_dtype(index: dict[str, TensorInfo]) -> str:
    """The torch dtype name most of a checkpoint's floating-point parameters are stored in."""
    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}
    counts = Counter()
    for info in index.values():
        if info.dtype in names:
            counts[names[info.dtype]] += 1 if not info.shape else int(_numel(info.shape))
    return counts.most_common(1)[0][0] if counts else "float32"


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def is_vocab_tensor(name: str) -> bool:
    return any(marker in name for marker in VOCAB_TENSOR_MARKERS)


def check_input_structure(
    base: Path, models: list[Path], vocab_mismatch: str = "truncate"
) -> tuple[dict[str, TensorInfo], list[VocabTruncation]]:
    """Compare every checkpoint's tensors with the base's; return (base index, truncations to apply).

    See `read_merge_inputs`, which also returns every checkpoint's index.
    """
    base_index, _, truncations = read_merge_inputs(base, models, vocab_mismatch)
    return base_index, truncations


def read_merge_inputs(
    base: Path, models: list[Path], vocab_mismatch: str = "truncate"
) -> tuple[dict[str, TensorInfo], list[dict[str, TensorInfo]], list[VocabTruncation]]:
    """(base index, checkpoint indexes, truncations to apply), from the safetensors headers only.

    A tensor of the base missing from a checkpoint, or any shape mismatch other than extra vocabulary
    rows, is a MergeError naming the checkpoint and tensor. Extra vocabulary rows are truncated to the
    base's (policy "truncate") or an error (policy "error").
    """
    if vocab_mismatch not in VOCAB_MISMATCH_POLICIES:
        raise MergeError(
            f"must be one of {', '.join(VOCAB_MISMATCH_POLICIES)}, got {vocab_mismatch!r}",
            field="vocab_mismatch",
        )
    base_index = read_tensor_index(base)
    indexes: list[dict[str, TensorInfo]] = []
    truncations: list[VocabTruncation] = []
    for model in models:
        index = read_tensor_index(model)
        indexes.append(index)
        for name, base_info in base_index.items():
            info = index.get(name)
            if info is None:
                raise MergeError(
                    f"tensor {name} of the base model is missing from this checkpoint; it does not share "
                    f"the base's architecture, remove it from the merge",
                    path=str(model),
                )
            if info.shape == base_info.shape:
                continue
            extra_rows = (
                is_vocab_tensor(name)
                and len(info.shape) == len(base_info.shape) >= 1
                and info.shape[1:] == base_info.shape[1:]
                and info.shape[0] > base_info.shape[0]
            )
            if extra_rows and vocab_mismatch == "truncate":
                truncations.append(VocabTruncation(str(model), name, info.shape[0], base_info.shape[0]))
                continue
            if extra_rows:
                raise MergeError(
                    f"tensor {name} has {info.shape[0]} vocabulary rows but the base has "
                    f"{base_info.shape[0]}; set vocab_mismatch: truncate to merge the base's rows only",
                    path=str(model),
                )
            raise MergeError(
                f"tensor {name} has shape {list(info.shape)} but the base has {list(base_info.shape)}; "
                "this checkpoint does not share the base's architecture, remove it from the merge",
                path=str(model),
            )
    return base_index, indexes, truncations




def _file_stamp(model_dir: Path) -> tuple:
    files = sorted(model_dir.glob("*.safetensors"))
    return (str(model_dir.resolve()),) + tuple(
        (f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files
    )


def check_finite(model_dir: str | Path, names: list[str] | None = None, verified: set | None = None) -> None:
    """Raise a MergeError naming the checkpoint and tensor if any value is NaN or infinite.

    Streams one tensor at a time. `verified`, if given, is a set the caller keeps across merges:
    checkpoints already verified (same path, file sizes and mtimes) are skipped.
    """
    import torch
    from safetensors import safe_open

    model_dir = Path(model_dir)
    stamp = _file_stamp(model_dir)
    if verified is not None and stamp in verified:
        return
    wanted = set(names) if names is not None else None
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                if wanted is not None and name not in wanted:
                    continue
                tensor = handle.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    bad = int((~torch.isfinite(tensor)).sum())
                    raise MergeError(
                        f"tensor {name} contains {bad} NaN/Inf value(s); this checkpoint is broken, "
                        "re-download it or remove it from the merge",
                        path=str(model_dir),
                    )
                del tensor
    if verified is not None and names is None:
        verified.add(stamp)
