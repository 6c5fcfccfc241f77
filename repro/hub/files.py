"""Which files of a checkpoint the kit downloads, where they go, and their sha256."""

from __future__ import annotations

import os
import re
from pathlib import Path

from repro.errors import HubError
from repro.facts.lockfile import REPO_ID_PATTERN, FileEntry
from repro.facts.paths import MODELS_DIR
from repro.file_digest import sha256_file

METADATA_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "chat_template.jinja",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
    }
)
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"
MODEL_SAFETENSORS = re.compile(r"^model(-\d+-of-\d+)?\.safetensors$")
PICKLE_WEIGHTS = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
MANIFEST_NAME = "repro_download.json"
HASH_CHUNK_BYTES = 8 * 1024 * 1024  # read size of a download stream
OFFLINE_HINT = (
    "run `repro lock resolve` on a machine with network (download there too, or copy the models "
    "with `repro download --mirror DIR`)"
)


def default_models_dir() -> Path:
    """Where `repro download` puts models: $REPRO_MODELS, else runs/models."""
    return Path(os.environ.get("REPRO_MODELS") or MODELS_DIR)


def local_model_dir(dest_root: str | Path, repo_id: str) -> Path:
    """The model dir of `repo_id` under `dest_root`: dest_root/<org>/<name>."""
    if not REPO_ID_PATTERN.match(repo_id) or ".." in repo_id:
        raise HubError(f"{repo_id!r} is not a Hugging Face repo id of the form <org>/<name>")
    org, name = repo_id.split("/")
    return Path(dest_root) / org / name


def select_files(paths: list[str]) -> list[str]:
    """The files of a repo that we download: config, tokenizer, and one set of weights (sorted).

    Weights: `model*.safetensors` (+ index), else any top-level `*.safetensors`, else the pickle
    weights `pytorch_model*.bin` (+ index). Files in sub-folders (e.g. `original/`) are never used.
    """
    top = [p for p in paths if "/" not in p]
    chosen = [p for p in top if p in METADATA_FILES]
    weights = [p for p in top if MODEL_SAFETENSORS.match(p)] or [p for p in top if p.endswith(".safetensors")]
    if weights:
        chosen += weights + [p for p in top if p == SAFETENSORS_INDEX]
    else:
        chosen += [p for p in top if PICKLE_WEIGHTS.match(p) or p == PICKLE_INDEX]
    return sorted(set(chosen))


def is_pickle_only(paths: list[str]) -> bool:
    return any(PICKLE_WEIGHTS.match(p) for p in paths) and not any(p.endswith(".safetensors") for p in paths)


def file_entry_for(path: Path, rel: str) -> FileEntry:
    return FileEntry(path=rel, sha256=sha256_file(path), size=path.stat().st_size)
