"""Refuse hostile or mismatched checkpoints before a byte of them is merged or loaded.

The kit never runs code from a checkpoint: a config.json or tokenizer_config.json that asks for
`trust_remote_code` or names an `auto_map` (custom Python classes shipped in the repo) is refused.
A checkpoint must also share its base's architecture: the same `model_type`, `architectures` and sizes
(hidden size, layer count, heads, intermediate size), and no tensor the base lacks (except an untied
`lm_head.weight` when the base ties it to the embeddings, and rotary `inv_freq` buffers, which mergekit
ignores). Missing tensors and shape mismatches are checked by `tensor_checks.read_merge_inputs`,
which calls these checks.
"""

from __future__ import annotations

import json
from pathlib import Path

from repro.errors import MergeError

CONFIG_FILES = ("config.json", "tokenizer_config.json")
ARCHITECTURE_FIELDS = (
    "model_type",
    "architectures",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "head_dim",
)
IGNORED_EXTRA_SUFFIXES = (".rotary_emb.inv_freq",)


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MergeError(f"cannot read it as JSON ({exc}); re-download the checkpoint", path=str(file)) from exc
    if not isinstance(data, dict):
        raise MergeError("is not a JSON object; re-download the checkpoint", path=str(file))
    return data


def _asks_for_code(data: object, where: str = "") -> str | None:
    """The key path of a `trust_remote_code: true` or `auto_map` anywhere in a JSON document, else None."""
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "auto_map" or (key == "trust_remote_code" and value not in (False, None)):
                return here
            found = _asks_for_code(value, here)
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = _asks_for_code(value, f"{where}[{i}]")
            if found:
                return found
    return None


def model_config(model_dir: Path) -> dict:
    """The checkpoint's config.json after refusing remote code in it and in tokenizer_config.json."""
    config: dict = {}
    for name in CONFIG_FILES:
        file = model_dir / name
        if not file.is_file():
            continue
        data = _read_json(file)
        key = _asks_for_code(data)
        if key:
            raise MergeError(
                f"{key} asks to run custom code shipped with the checkpoint; the kit never runs code from a "
                "checkpoint (refused), use a checkpoint of a standard transformers architecture",
                path=str(file),
            )
        if name == "config.json":
            config = data
    return config


def check_same_architecture(base_dir: Path, base_config: dict, model_dir: Path, config: dict) -> None:
    """The architecture fields both configs state must agree."""
    for field in ARCHITECTURE_FIELDS:
        if field in base_config and field in config and base_config[field] != config[field]:
            raise MergeError(
                f"{field} is {config[field]!r} but the base ({base_dir}) has {base_config[field]!r}; this "
                "checkpoint does not share the base's architecture, remove it from the merge",
                path=str(model_dir / "config.json"),
            )


def check_no_extra_tensors(model_dir: Path, names: set[str], base_names: set[str], base_config: dict) -> None:
    """A tensor the base lacks means another architecture (or a hidden payload): refuse it."""
    for name in sorted(names - base_names):
        if name.endswith(IGNORED_EXTRA_SUFFIXES):
            continue
        if name == "lm_head.weight" and base_config.get("tie_word_embeddings", True):
            continue  # an untied head of a base with tied embeddings: mergekit uses the embeddings
        raise MergeError(
            f"tensor {name} is not in the base model; this checkpoint does not share the base's "
            "architecture, remove it from the merge",
            path=str(model_dir),
        )
