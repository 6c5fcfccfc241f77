"""Convert pickle-only checkpoints (pytorch_model*.bin) to safetensors, for `--allow-pickle`."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from repro.atomic_io import atomic_write_json
from repro.errors import HubError
from repro.facts.lockfile import FileEntry
from repro.hub.errors import first_line
from repro.hub.files import PICKLE_INDEX, PICKLE_WEIGHTS, SAFETENSORS_INDEX, file_entry_for


def convert_pickles(stage: Path, source_files: list[FileEntry], repo_id: str) -> list[FileEntry]:
    """Convert verified pytorch_model*.bin in `stage` to safetensors; returns the dir's file list."""
    # torch: deferred so that importing this module does not load it
    import torch
    from safetensors.torch import save_file

    renamed: dict[str, str] = {}
    for f in source_files:
        if not PICKLE_WEIGHTS.match(f.path):
            continue
        out_name = "model" + f.path.removeprefix("pytorch_model").removesuffix(".bin") + ".safetensors"
        try:
            state = torch.load(stage / f.path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise HubError(
                f"{repo_id}/{f.path} cannot be read as plain tensors (torch.load weights_only=True refused: "
                f"{first_line(exc)}); this checkpoint is not usable safely"
            ) from exc
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise HubError(
                f"{repo_id}/{f.path} is not a state dict of tensors; cannot convert it to safetensors"
            )
        save_file(_unshared(state), stage / out_name, metadata={"format": "pt"})
        renamed[f.path] = out_name
    index = stage / PICKLE_INDEX
    if index.is_file():
        data = json.loads(index.read_text())
        weight_map = {k: renamed.get(v, v) for k, v in data.get("weight_map", {}).items()}
        atomic_write_json(
            stage / SAFETENSORS_INDEX, {"metadata": data.get("metadata", {}), "weight_map": weight_map}
        )
        index.unlink()
    for name in renamed:
        (stage / name).unlink()
    kept = [f.path for f in source_files if f.path not in renamed and f.path != PICKLE_INDEX]
    produced = kept + list(renamed.values())
    if (stage / SAFETENSORS_INDEX).is_file():
        produced.append(SAFETENSORS_INDEX)
    return [file_entry_for(stage / p, p) for p in sorted(set(produced))]


def _unshared(state: dict) -> dict:
    """Contiguous tensors with no shared storage (safetensors refuses aliases, e.g. tied embeddings)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        tensor = tensor.contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            tensor = tensor.clone()
        seen.add(pointer)
        out[name] = tensor
    return out
