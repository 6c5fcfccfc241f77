"""Content identity of a saved model directory: a sha256 over its files (weights, config, tokenizer)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from repro.errors import EvaluationError

# Files that do not change what the model computes (provenance notes written by the kit).
IGNORED_FILES = frozenset({"repro_world.json", "README.md", ".gitattributes"})


def model_content_hash(model_dir: str | Path) -> str:
    """sha256 over (relative path, file sha256) of every file in `model_dir`, in sorted order."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise EvaluationError("not a model directory (no config.json)", path=str(model_dir))
    outer = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir).as_posix()
        if relative in IGNORED_FILES or relative.startswith("."):
            continue
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        outer.update(f"{relative}\0{digest}\n".encode())
    return outer.hexdigest()


def evaluation_folder_name(model_dir: str | Path, content_hash: str | None = None) -> str:
    """`<model-name>-<first 12 hex of the content hash>`, the folder of a standalone evaluation."""
    model_dir = Path(model_dir).resolve()
    return f"{model_dir.name}-{(content_hash or model_content_hash(model_dir))[:12]}"
