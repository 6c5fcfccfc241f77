"""The merge engine: one function that merges a base and its checkpoints with a registered method.

A merge is one streamed pass over the base's tensor names (`repro.merge.streaming`): every input is a
memory-mapped safetensors file, each tensor is merged by the kernel its method's traits name
(`repro.method_catalog.MethodTraits`: mergekit's own per-tensor arithmetic for the task-arithmetic
family and Model Stock, the mergekit method object for the others), checked for NaN/Inf, added to the
task-vector norm and streamed to its output shard (or kept in a state dict) before the next tensor is read. Compute is
float32; the output is cast to the base's dtype. Stock `mergekit-yaml` stays the reference: every merge
directory records the mergekit configuration that reproduces it (`repro mergekit-yaml`).

Output directory (written atomically; nothing is left behind on error):
  model*.safetensors, config.json, tokenizer files   the merged model (tokenizer copied from the base)
  repro_merge.yaml                                   the resolved mergekit configuration
  repro_merge.json                                   method, parameters, inputs, L2 norm, truncations,
                                                     versions, timings
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repro.atomic_io import atomic_directory, atomic_write_json, atomic_write_text
from repro.errors import MergeError
from repro.facts.choices import MERGE_OUT_DTYPES
from repro.merge.readahead import start_readahead
from repro.merge.svd_cache import SvdCache
from repro.merge.tensor_checks import dominant_float_dtype, read_merge_inputs
from repro.method_catalog import get_method, resolve_method_params, split_parameters
from repro.package_versions import package_versions

LOG = logging.getLogger(__name__)

CONFIG_FILE = "repro_merge.yaml"
RECORD_FILE = "repro_merge.json"
DEFAULT_SHARD_BYTES = 1_000_000_000


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
    # Subspace Boosting: projection matrices boosted, and those whose raised singular values included
    # numerically-zero ones (`BoostCount.as_record`); None for the other methods
    subspace_boosting: dict | None = None


def build_mergekit_config(
    base: Path, models: Sequence[Path], method: str, params: Mapping[str, Any], out_dtype: str
) -> dict[str, Any]:
    """The mergekit YAML configuration (as a dict) of one merge; `params` must be resolved."""
    spec = get_method(method)
    per_model, global_params = split_parameters(method, params)
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
    flag = " --unsafe-truncate-embeddings" if truncate else ""
    header = (
        f"# repro merge: method {method}; mergekit configuration as run.\n"
        f"# Reproduce with: repro mergekit-yaml {CONFIG_FILE} OUT_DIR{flag}\n"
    )
    return header + yaml.safe_dump(dict(config), sort_keys=False)


def _check_inputs(base: Path, models: Sequence[Path], method: str) -> None:
    """Distinct inputs, as many as the method's facts require (`min_models`, mergekit's min_non_base)."""
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
    needed = get_method(method).min_models
    if len(models) < needed:
        raise MergeError(f"{method} needs at least {needed} checkpoints besides the base", field="models")


def load_state_dict(model_dir: str | Path) -> dict:
    """Every tensor of a saved model directory (all *.safetensors shards), by name."""
    # torch: deferred so that importing this module does not load it
    from safetensors.torch import load_file

    state = {}
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        state.update(load_file(str(file)))
    return state


# Files copied from the base next to the merged weights (mergekit's `_copy_tokenizer` list).
TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "added_tokens.json",
    "merges.txt",
    "vocab.json",
    "chat_template.jinja",
    "generation_config.json",
    "chat_template.json",
)


@dataclass
class PreparedMerge:
    """A checked merge request: resolved method and parameters, inputs' headers, output dtype."""

    method: str
    mergekit_name: str
    params: dict[str, Any]
    device: Any  # torch.device
    base: Path
    models: list[Path]
    base_index: dict
    model_indexes: list[dict]
    truncations: list
    out_dtype: str
    vocab_mismatch: str


def prepare_merge(base, models, method, params, *, device, vocab_mismatch, out_dtype) -> PreparedMerge:
    """Validate a merge request from the safetensors headers alone (no tensor data is read)."""
    from repro.merge.devices import require_device  # imports torch: only when a merge is prepared

    spec = get_method(method)
    resolved = resolve_method_params(method, params)
    torch_device = require_device(device)
    base = Path(base).absolute()
    model_paths = [Path(m).absolute() for m in models]
    _check_inputs(base, model_paths, method)
    base_index, model_indexes, truncations = read_merge_inputs(base, model_paths, vocab_mismatch)
    for item in truncations:
        LOG.info("vocabulary truncation: %s %s %d -> %d rows", item.checkpoint, item.tensor, item.rows, item.base_rows)
    if out_dtype is None:
        out_dtype = dominant_float_dtype(base_index)
    if out_dtype not in MERGE_OUT_DTYPES:
        raise MergeError(f"must be one of {', '.join(MERGE_OUT_DTYPES)}, got {out_dtype!r}", field="out_dtype")
    return PreparedMerge(
        spec.name, spec.mergekit_name, resolved, torch_device, base, model_paths, base_index, model_indexes,
        truncations, out_dtype, vocab_mismatch,
    )


def output_layout(prepared: PreparedMerge) -> list[tuple]:
    """(name, dtype, shape) of every output tensor, in the order the pass produces them."""
    # torch, numpy: deferred so that importing this module does not load them
    import torch

    from repro.merge.streaming import tensor_order
    from repro.merge.tensor_io import ST_DTYPES

    out_dtype = getattr(torch, prepared.out_dtype)
    layout = []
    for name in tensor_order(prepared.base_index):
        info = prepared.base_index[name]
        dtype = ST_DTYPES.get(info.dtype, torch.float32)
        layout.append((name, out_dtype if dtype.is_floating_point else dtype, info.shape))
    return layout


def write_model_files(target: Path, prepared: PreparedMerge) -> None:
    """config.json (the base's, with the output dtype) and the base's tokenizer files."""
    config_path = prepared.base / "config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text())
        keys = [key for key in ("torch_dtype", "dtype") if key in config] or ["torch_dtype"]
        for key in keys:
            config[key] = prepared.out_dtype
        (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in TOKENIZER_FILES:
        if (prepared.base / name).is_file():
            shutil.copyfile(prepared.base / name, target / name)


def write_records(target: Path, prepared: PreparedMerge, models, outcome, truncations, timings, elapsed) -> None:
    """repro_merge.yaml (the mergekit configuration that reproduces the merge) and repro_merge.json."""
    config = build_mergekit_config(prepared.base, models, prepared.method, prepared.params, prepared.out_dtype)
    atomic_write_text(target / CONFIG_FILE, _config_yaml(config, prepared.method, bool(truncations)))
    atomic_write_json(
        target / RECORD_FILE,
        _record(
            prepared.method, prepared.params, prepared.base, models, outcome, truncations, prepared.out_dtype,
            str(prepared.device), prepared.vocab_mismatch, timings, elapsed,
        ),
    )


def _svd_stats(svd_cache):
    if svd_cache is None:
        return None
    stats = svd_cache.stats
    return (stats.computed, stats.memory_hits, stats.disk_hits)


def _svd_delta(svd_cache, before):
    if before is None:
        return None
    after = _svd_stats(svd_cache)
    return dict(zip(("computed", "memory_hits", "disk_hits"), (a - b for a, b in zip(after, before, strict=True)), strict=False))


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
    shard_size_bytes: int = DEFAULT_SHARD_BYTES,
    progress=None,
) -> MergeResult:
    """Merge `models` into `base` with registered method `method` and write `out_dir` atomically.

    `params` override the method's paper defaults (see `repro.merge.METHODS`). `out_dtype` defaults
    to the base's dtype. `svd_cache` lets a method that uses one (trait `svd_cache`) reuse per-checkpoint
    decompositions across merges.
    With `out_dir=None` nothing touches the disk and the result carries `state_dict` (tensors as they
    would be saved, on the CPU). Raises MergeError on any bad input; no output is left behind then.
    `progress(done, total)` is called after each tensor name of the streamed pass. The NaN/Inf check
    rides along with the merge at no cost.
    """
    started = time.perf_counter()
    start_readahead([base, *models])  # the disk works while torch is imported and the headers are checked
    prepared = prepare_merge(
        base, models, method, params, device=device, vocab_mismatch=vocab_mismatch, out_dtype=out_dtype
    )
    timings = {"checks_s": time.perf_counter() - started}
    state: dict | None = {} if out_dir is None else None
    result_dir = None if out_dir is None else Path(out_dir)

    def run(sink) -> tuple[float, dict | None]:
        # torch, numpy: deferred so that importing this module does not load them
        from repro.merge.streaming import MergeTarget

        target = MergeTarget(inputs=tuple(range(len(prepared.models))), sink=sink)
        merge_started = time.perf_counter()
        before = _svd_stats(svd_cache)
        _run_targets(prepared, [target], svd_cache, progress)
        timings["merge_s"] = time.perf_counter() - merge_started
        boosting.update(boost_record(target) or {})
        return target.norm_sq**0.5, _svd_delta(svd_cache, before)

    boosting: dict = {}
    if result_dir is None:
        norm, cache_stats = run(state.__setitem__)
    else:
        # torch: deferred so that importing this module does not load it
        from repro.merge.tensor_io import ShardWriter

        with atomic_directory(result_dir) as tmp:
            writer = ShardWriter(tmp, output_layout(prepared), shard_size_bytes)
            try:
                norm, cache_stats = run(writer.write)
            finally:
                writer.abort()
            writer.close()
            write_model_files(tmp, prepared)
            outcome = {"norm": norm, "cache_stats": cache_stats, "subspace_boosting": boosting or None}
            write_records(
                tmp, prepared, prepared.models, outcome, prepared.truncations, timings,
                time.perf_counter() - started,
            )
    return MergeResult(
        out_dir=result_dir,
        method=prepared.method,
        params=prepared.params,
        task_vector_l2=norm,
        vocab_truncations=[t.as_dict() for t in prepared.truncations],
        elapsed_s=time.perf_counter() - started,
        out_dtype=prepared.out_dtype,
        timings=dict(timings),
        svd_cache_stats=cache_stats,
        state_dict=state,
        subspace_boosting=boosting or None,
    )


def boost_record(target) -> dict | None:
    """The Subspace Boosting count of one merge target (None for other methods); logs one warning line
    when raised singular values included numerically-zero ones."""
    count = getattr(target.kernel, "boost_count", None)
    if count is None:
        return None
    record = count.as_record()
    if record["raised_null"]:
        LOG.warning(
            "subspace boosting raised numerically-zero singular values in %d of %d projection matrices "
            "(first: %s); their singular vectors are arbitrary, so these tensors depend on the SVD library "
            "and device (parameter keep_null: true keeps them at zero)",
            record["raised_null"], record["projection_matrices"], count.raised_null[0],
        )
    return record


def _run_targets(prepared: PreparedMerge, targets, svd_cache, progress=None) -> None:
    # torch, numpy: deferred so that importing this module does not load them
    import torch

    from repro.merge.streaming import run_pass

    try:
        with torch.no_grad():
            run_pass(
                method=prepared.method,
                params=prepared.params,
                base=prepared.base,
                base_index=prepared.base_index,
                models=prepared.models,
                model_indexes=prepared.model_indexes,
                targets=targets,
                out_dtype=getattr(torch, prepared.out_dtype),
                device=prepared.device,
                svd_cache=svd_cache,
                on_tensor=progress,
            )
    # What the user can act on becomes a MergeError naming the merge; any other exception is a bug in the
    # kit or a method and propagates as it is (never reported as a bad input).
    except (MemoryError, torch.OutOfMemoryError) as error:
        raise MergeError(
            f"merging with {prepared.method} ran out of memory on {prepared.device} ({type(error).__name__}); "
            "free memory, merge fewer checkpoints at once, or use another device", field="device",
        ) from error
    except OSError as error:  # the inputs or the output folder: unreadable, vanished, disk full
        raise MergeError(
            f"merging with {prepared.method} could not read or write a file: {error.strerror or error}",
            path=str(error.filename or prepared.base),
        ) from error


def _record(method, params, base, models, outcome, truncations, out_dtype, device, policy, timings, elapsed):
    return {
        "method": method,
        "params": params,
        "base": str(base),
        "models": [str(m) for m in models],
        "out_dtype": out_dtype,
        "compute_dtype": "float32",
        "engine": "repro streaming engine (per-tensor mergekit method code)",
        "device": device,
        "vocab_mismatch": policy,
        "vocab_truncations": [t.as_dict() for t in truncations],
        "task_vector_l2": outcome["norm"],
        "svd_cache": outcome["cache_stats"],
        **({"subspace_boosting": outcome["subspace_boosting"]} if outcome.get("subspace_boosting") else {}),
        "versions": package_versions(("repro", "mergekit", "torch"), python=False),
        "timings": {**timings, "total_s": elapsed},
    }
