"""Checks on merge inputs before anything is written: headers, config, tensor names, shapes, dtypes,
vocabulary rows, NaN/Inf. The merge engine calls `read_merge_inputs` before it reads any tensor data.

Real in-the-wild checkpoints are messy: some extend the tokenizer (more embedding rows than the base,
e.g. 128320 vs 128256), some are broken. Shapes come from the safetensors headers (no tensor data is
read). NaN/Inf values are found by the merge itself (`repro.merge.streaming`), at no extra cost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from repro.errors import MergeError
from repro.merge.checkpoint_safety import check_no_extra_tensors, check_same_architecture, model_config
from repro.merge.safetensors_header import MERGEABLE_DTYPES, read_header
from repro.merge.tensor_roles import is_vocabulary_tensor

VOCAB_MISMATCH_POLICIES = ("truncate", "error")


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int = 0  # absolute byte range of the tensor's data in `file` (validated by read_header)
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


def read_tensor_index(model_dir: str | Path) -> dict[str, TensorInfo]:
    """Name -> dtype, shape and file of every tensor of a Hugging Face model directory (safetensors).

    Every shard's header is validated first (repro.merge.safetensors_header: bounds, overlaps, dtypes);
    a tensor stored in two shards is refused.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MergeError("is not a model directory (no such directory)", path=str(model_dir))
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise MergeError(
            "has no *.safetensors weights; the merge engine reads safetensors checkpoints only "
            "(pickle weights: `repro download --allow-pickle` converts them with torch.load(weights_only=True))",
            path=str(model_dir),
        )
    index: dict[str, TensorInfo] = {}
    for file in files:
        for name, entry in read_header(file).items():
            if name in index:
                raise MergeError(
                    f"tensor {name} is stored in both {index[name].file.name} and {file.name}; the checkpoint "
                    "is corrupt, re-download it",
                    path=str(model_dir),
                )
            start, end = entry.file_range
            index[name] = TensorInfo(dtype=entry.dtype, shape=entry.shape, file=file, start=start, end=end)
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
    """Whether a checkpoint may extend `name`'s first axis (a vocabulary tensor, `repro.merge.tensor_roles`)."""
    return is_vocabulary_tensor(name)


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
    base_config = model_config(base)  # refuses remote code (auto_map, trust_remote_code)
    base_index = read_tensor_index(base)
    _check_dtypes(base, base_index)
    indexes: list[dict[str, TensorInfo]] = []
    truncations: list[VocabTruncation] = []
    for model in models:
        check_same_architecture(base, base_config, model, model_config(model))
        index = read_tensor_index(model)
        _check_dtypes(model, index)
        check_no_extra_tensors(model, set(index), set(base_index), base_config)
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


def inspect_checkpoint(model_dir: str | Path) -> None:
    """Header-only checks of one input checkpoint, no tensor data read: no remote code in its configs,
    valid safetensors headers (bounds, overlaps), floating-point dtypes. Raises MergeError."""
    model_dir = Path(model_dir)
    model_config(model_dir)
    _check_dtypes(model_dir, read_tensor_index(model_dir))


def _check_dtypes(model_dir: Path, index: dict[str, TensorInfo]) -> None:
    for name, info in index.items():
        if info.dtype not in MERGEABLE_DTYPES:
            raise MergeError(
                f"tensor {name} ({info.file.name}) has dtype {info.dtype}, which no merge method can use "
                "(quantized or integer weights); use an unquantized float16/bfloat16/float32 checkpoint",
                path=str(model_dir),
            )
