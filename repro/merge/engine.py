"""The merge engine: one function that merges a base and its checkpoints with a registered method.

Every merge runs through mergekit's own machinery (`mergekit.merge.run_merge`: architecture handling,
tensor-by-tensor streaming, sharded safetensors output, CPU or CUDA) from a mergekit configuration
that `build_mergekit_config` writes down explicitly. Compute is float32; the output is cast to the
base's dtype. Around it the engine adds what in-the-wild checkpoints need: input checks (names,
shapes, vocabulary rows, NaN/Inf) before anything is written, the vocabulary policy, an atomic
output directory, the task-vector norm and a provenance record.

Output directory (written atomically; nothing is left behind on error):
  model*.safetensors, config.json, tokenizer files   the merged model (tokenizer copied from the base)
  repro_merge.yaml                                   the resolved mergekit configuration
  repro_merge.json                                   method, parameters, inputs, L2 norm, truncations,
                                                     versions, timings
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.atomic_io import atomic_directory, atomic_write_json, atomic_write_text
from repro.errors import MergeError, ReproError
from repro.merge.registry import get_method, resolve_method_params, split_parameters
from repro.merge.svd_cache import SvdCache
from repro.merge.tensor_checks import check_finite, check_input_structure, dominant_float_dtype

LOG = logging.getLogger(__name__)

CONFIG_FILE = "repro_merge.yaml"
RECORD_FILE = "repro_merge.json"
DEFAULT_SHARD_BYTES = 1_000_000_000
OUT_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class MergeResult:
    """What one merge produced. `state_dict` is set only for in-memory merges (out_dir=None)."""

    out_dir: Path | None
    method: str
    params: dict[str, Any]
    task_vector_l2: float
    vocab_truncations: list[dict]
    elapsed_s: float
    out_dtype: str = "float32"
    timings: dict[str, float] = field(default_factory=dict)
    svd_cache_stats: dict[str, int] | None = None
    state_dict: dict | None = None


def build_mergekit_config(
    base: Path, models: Sequence[Path], method: str, params: Mapping[str, Any], out_dtype: str
) -> dict[str, Any]:
    """The mergekit YAML configuration (as a dict) of one merge; `params` must be resolved."""
    spec = get_method(method)
    per_model, global_params = split_parameters(params)
    entries = []
    for model in models:
        entry: dict[str, Any] = {"model": str(model)}
        if per_model:
            entry["parameters"] = dict(per_model)
        entries.append(entry)
    config: dict[str, Any] = {
        "merge_method": spec.mergekit_name,
        "base_model": str(base),
        "models": entries,
        "dtype": "float32",
        "out_dtype": out_dtype,
    }
    if global_params:
        config["parameters"] = dict(global_params)
    return config


def _config_yaml(config: Mapping[str, Any], method: str, truncate: bool) -> str:
    import yaml

    flag = " --unsafe-truncate-embeddings" if truncate else ""
    header = (
        f"# repro merge: method {method}; mergekit configuration as run.\n"
        f"# Reproduce with: repro mergekit-yaml {CONFIG_FILE} OUT_DIR{flag}\n"
    )
    return header + yaml.safe_dump(dict(config), sort_keys=False)


def _check_device(device: str) -> str:
    import torch

    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MergeError("CUDA is not available on this machine; use --device cpu", field="device")
        return device
    raise MergeError(f"must be cpu or cuda, got {device!r}", field="device")


def _check_inputs(base: Path, models: Sequence[Path], method: str) -> None:
    if not models:
        raise MergeError("give at least one checkpoint to merge", field="models")
    seen = {base.resolve(): "the base model"}
    for model in models:
        key = model.resolve()
        if key in seen:
            raise MergeError(
                f"is listed twice (also as {seen[key]}); list each checkpoint once", path=str(model)
            )
        seen[key] = "a checkpoint"
    if method == "model_stock" and len(models) < 2:
        raise MergeError("model_stock needs at least 2 checkpoints besides the base", field="models")


def task_vector_l2(merged_dir: Path, base: Path) -> float:
    """||theta_merged - theta_base||_2 over all tensors, in float32 (float64 accumulation), streamed.

    Base tensors with more rows than the merged ones (never the case after truncation) are compared
    on the merged rows.
    """
    import torch
    from safetensors import safe_open

    base_files = {}
    for file in sorted(base.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            base_files.update({name: file for name in handle.keys()})
    total = 0.0
    for file in sorted(merged_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                merged = handle.get_tensor(name)
                if not merged.is_floating_point() or name not in base_files:
                    continue
                with safe_open(str(base_files[name]), framework="pt") as base_handle:
                    reference = base_handle.get_tensor(name)
                if reference.shape != merged.shape:
                    reference = reference.narrow(0, 0, merged.shape[0])
                diff = merged.to(torch.float32) - reference.to(torch.float32)
                total += float(torch.sum(diff.to(torch.float64) ** 2))
                del merged, reference, diff
    return total**0.5


def load_state_dict(model_dir: str | Path) -> dict:
    """Every tensor of a saved model directory (all *.safetensors shards), by name."""
    from safetensors.torch import load_file

    state = {}
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        state.update(load_file(str(file)))
    return state


def _run_mergekit(config: dict, out_path: Path, device: str, truncate: bool, show_progress: bool, shard: int):
    from mergekit.config import MergeConfiguration
    from mergekit.io.tasks import LoaderCache
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from repro.merge.mergekit_plugin import register_methods

    register_methods()
    merge_config = MergeConfiguration.model_validate(config)
    options = MergeOptions(
        device=device,
        write_model_card=False,
        copy_tokenizer=True,
        quiet=not show_progress,
        unsafe_truncate_embeddings=truncate,
        out_shard_size=shard,
        safe_serialization=True,
    )
    try:
        run_merge(merge_config, str(out_path), options=options)
    finally:
        # mergekit keeps one loader per model reference for the whole process; drop ours so a
        # rewritten directory is re-read and no file handles outlive the merge.
        cache = LoaderCache()
        cache.flush_all()
        for reference in merge_config.referenced_models():
            cache.loaders.pop(reference, None)


def merge_checkpoints(
    base: str | Path,
    models: Sequence[str | Path],
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    out_dir: str | Path | None,
    device: str = "cpu",
    vocab_mismatch: str = "truncate",
    out_dtype: str | None = None,
    svd_cache: SvdCache | None = None,
    show_progress: bool = False,
    verified_inputs: set | None = None,
    shard_size_bytes: int = DEFAULT_SHARD_BYTES,
) -> MergeResult:
    """Merge `models` into `base` with registered method `method` and write `out_dir` atomically.

    `params` override the method's paper defaults (see `repro.merge.METHODS`). `out_dtype` defaults
    to the base's dtype. `svd_cache` lets TSV-M reuse per-checkpoint decompositions across merges;
    `verified_inputs` (a set kept by the caller) skips re-checking checkpoints already found finite.
    With `out_dir=None` nothing is kept on disk and the result carries `state_dict` (tensors as they
    would be saved). Raises MergeError on any bad input; no output is left behind then.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    spec = get_method(method)
    resolved = resolve_method_params(method, params)
    device = _check_device(device)
    base = Path(base).absolute()
    model_paths = [Path(m).absolute() for m in models]
    _check_inputs(base, model_paths, method)

    base_index, truncations = check_input_structure(base, model_paths, vocab_mismatch)
    for item in truncations:
        LOG.info(
            "vocabulary truncation: %s %s %d -> %d rows",
            item.checkpoint,
            item.tensor,
            item.rows,
            item.base_rows,
        )
    for path in (base, *model_paths):
        check_finite(path, verified=verified_inputs)
    timings["checks_s"] = time.perf_counter() - started

    if out_dtype is None:
        out_dtype = dominant_float_dtype(base_index)
    if out_dtype not in OUT_DTYPES:
        raise MergeError(f"must be one of {', '.join(OUT_DTYPES)}, got {out_dtype!r}", field="out_dtype")
    config = build_mergekit_config(base, model_paths, method, resolved, out_dtype)
    truncate = bool(truncations)

    def produce(target: Path) -> dict[str, Any]:
        merge_started = time.perf_counter()
        stats_before = None
        try:
            if svd_cache is not None:
                stats_before = (
                    svd_cache.stats.computed,
                    svd_cache.stats.memory_hits,
                    svd_cache.stats.disk_hits,
                )
                with svd_cache.activated():
                    _run_mergekit(config, target, device, truncate, show_progress, shard_size_bytes)
            else:
                _run_mergekit(config, target, device, truncate, show_progress, shard_size_bytes)
        except ReproError:
            raise
        except Exception as error:  # mergekit reports problems as ValueError/RuntimeError/KeyError
            raise MergeError(
                f"mergekit failed merging with {method}: {type(error).__name__}: {error}"
            ) from error
        timings["merge_s"] = time.perf_counter() - merge_started
        norm_started = time.perf_counter()
        norm = task_vector_l2(target, base)
        timings["norm_s"] = time.perf_counter() - norm_started
        cache_stats = None
        if stats_before is not None:
            cache_stats = {
                "computed": svd_cache.stats.computed - stats_before[0],
                "memory_hits": svd_cache.stats.memory_hits - stats_before[1],
                "disk_hits": svd_cache.stats.disk_hits - stats_before[2],
            }
        return {"norm": norm, "cache_stats": cache_stats}

    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="repro-merge-") as scratch:
            outcome = produce(Path(scratch))
            state_dict = load_state_dict(scratch)
        result_dir = None
    else:
        state_dict = None
        result_dir = Path(out_dir)
        with atomic_directory(result_dir) as tmp:
            outcome = produce(tmp)
            elapsed = time.perf_counter() - started
            atomic_write_text(tmp / CONFIG_FILE, _config_yaml(config, method, truncate))
            atomic_write_json(
                tmp / RECORD_FILE,
                _record(
                    spec.name,
                    resolved,
                    base,
                    model_paths,
                    outcome,
                    truncations,
                    out_dtype,
                    device,
                    vocab_mismatch,
                    timings,
                    elapsed,
                ),
            )
    elapsed = time.perf_counter() - started
    return MergeResult(
        out_dir=result_dir,
        method=spec.name,
        params=resolved,
        task_vector_l2=outcome["norm"],
        vocab_truncations=[t.as_dict() for t in truncations],
        elapsed_s=elapsed,
        out_dtype=out_dtype,
        timings=dict(timings),
        svd_cache_stats=outcome["cache_stats"],
        state_dict=state_dict,
    )


def _record(method, params, base, models, outcome, truncations, out_dtype, device, policy, timings, elapsed):
    import mergekit
    import torch

    from repro import __version__

    return {
        "method": method,
        "params": params,
        "base": str(base),
        "models": [str(m) for m in models],
        "out_dtype": out_dtype,
        "compute_dtype": "float32",
        "device": device,
        "vocab_mismatch": policy,
        "vocab_truncations": [t.as_dict() for t in truncations],
        "task_vector_l2": outcome["norm"],
        "svd_cache": outcome["cache_stats"],
        "versions": {
            "repro": __version__,
            "mergekit": getattr(mergekit, "__version__", None) or _dist_version("mergekit"),
            "torch": torch.__version__,
        },
        "timings": {**timings, "total_s": elapsed},
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
