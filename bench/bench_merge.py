"""Benchmark of the merge engine: time and peak memory per method, and the TSV-M SVD-cache saving.

    python bench/bench_merge.py            # 12 synthetic Llama checkpoints of ~0.21B parameters (bf16)
    python bench/bench_merge.py --quick    # same protocol on small models (seconds)

Every method merges base + 12 checkpoints once, each in a fresh child process so that peak memory is
that merge's own: `peak_rss_mb` is the kernel's high-water mark (ru_maxrss; it includes file pages
of the memory-mapped safetensors inputs), `peak_anon_mb` the sampled peak of anonymous memory (the
tensors the merge itself holds). For comparison the table gives the streaming bound
(largest tensor x (models + 1) in float32) and the model size.

The SVD-cache saving is counted on the paper's subset grid (15 random subsets for each of
n = 2, 4, 6, 8, 10 plus the single n = 12 merge): without a cache TSV-M decomposes every
(checkpoint, matrix) of every merge; with `repro.merge.SvdCache` each once. With --quick the
count is also verified by running the grid's merges for real with a cache.

Results: a table on stdout and runs/bench/merge.json (runs/bench/merge-quick.json with --quick).
The synthetic world is kept under runs/bench/merge-world*/ and reused; delete it to free disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHOD_ORDER = ("task_arithmetic", "ties", "model_stock", "tsv_m", "iso_c", "task_arithmetic_sb", "ties_sb")
FULL = dict(hidden=1024, intermediate=2816, layers=12, vocab=32000, heads=16, kv_heads=8)
QUICK = dict(hidden=128, intermediate=352, layers=2, vocab=2048, heads=4, kv_heads=2)
GRID = ((2, 15), (4, 15), (6, 15), (8, 15), (10, 15), (12, 1))  # (n, subsets) as in the paper
N_CHECKPOINTS = 12
SHARD_BYTES = 256 * 1024 * 1024


def tensor_shapes(dims: dict) -> dict[str, tuple[int, ...]]:
    h, i, v = dims["hidden"], dims["intermediate"], dims["vocab"]
    kv = dims["kv_heads"] * (h // dims["heads"])
    shapes = {"model.embed_tokens.weight": (v, h)}
    for layer in range(dims["layers"]):
        p = f"model.layers.{layer}."
        shapes.update(
            {
                p + "input_layernorm.weight": (h,),
                p + "self_attn.q_proj.weight": (h, h),
                p + "self_attn.k_proj.weight": (kv, h),
                p + "self_attn.v_proj.weight": (kv, h),
                p + "self_attn.o_proj.weight": (h, h),
                p + "post_attention_layernorm.weight": (h,),
                p + "mlp.gate_proj.weight": (i, h),
                p + "mlp.up_proj.weight": (i, h),
                p + "mlp.down_proj.weight": (h, i),
            }
        )
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    return shapes


def build_world(root: Path, dims: dict, seed: int = 0) -> tuple[Path, list[Path]]:
    """Base + 12 checkpoints (base + seeded low-rank-plus-noise task vectors), bf16 safetensors."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    from repro.worlds.tiny import build_tokenizer

    base_dir, ckpts = root / "base", [root / f"ft-{k + 1:02d}" for k in range(N_CHECKPOINTS)]
    spec = {"dims": dims, "seed": seed, "n": N_CHECKPOINTS, "version": 2}
    if (root / "world.json").exists() and json.loads((root / "world.json").read_text()) == spec:
        return base_dir, ckpts
    shutil.rmtree(root, ignore_errors=True)
    config = LlamaConfig(
        hidden_size=dims["hidden"],
        intermediate_size=dims["intermediate"],
        num_hidden_layers=dims["layers"],
        num_attention_heads=dims["heads"],
        num_key_value_heads=dims["kv_heads"],
        vocab_size=dims["vocab"],
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
        architectures=["LlamaForCausalLM"],
    )
    tokenizer = build_tokenizer()
    shapes = tensor_shapes(dims)
    gen = torch.Generator().manual_seed(seed)
    base = {n: (1.0 if len(s) == 1 else 0.02) * torch.randn(s, generator=gen) for n, s in shapes.items()}

    def write(directory: Path, tensors: dict) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        bf16 = {n: t.to(torch.bfloat16).contiguous() for n, t in tensors.items()}
        save_file(bf16, str(directory / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    write(base_dir, base)
    for index, directory in enumerate(ckpts, start=1):
        gen = torch.Generator().manual_seed(seed * 1000 + index)
        scale = 0.02 + 0.08 * ((7 * index) % N_CHECKPOINTS) / (N_CHECKPOINTS - 1)
        tensors = {}
        for name, tensor in base.items():
            magnitude = scale * float(tensor.std() if tensor.ndim == 2 else 0.02)
            if tensor.ndim == 2:
                left = torch.randn(tensor.shape[0], 8, generator=gen)
                right = torch.randn(8, tensor.shape[1], generator=gen)
                update = (left @ right) / 8**0.5 + 0.1 * torch.randn(tensor.shape, generator=gen)
            else:
                update = torch.randn(tensor.shape, generator=gen)
            tensors[name] = tensor + magnitude * update
        write(directory, tensors)
        print(f"  built {directory.name}", flush=True)
    (root / "world.json").write_text(json.dumps(spec))
    return base_dir, ckpts


class AnonPeak:
    """Samples RssAnon of this process (every 20 ms) and keeps the maximum."""

    def __init__(self):
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def child(method: str, workdir: Path, models: int) -> None:
    """Run one merge in this (fresh) process and print its measurements as JSON."""
    import mergekit.config  # noqa: F401  (imports are loaded before the baseline: not merge memory)
    import mergekit.merge  # noqa: F401
    import torch  # noqa: F401

    from repro.merge import merge_checkpoints
    from repro.merge.mergekit_plugin import register_methods

    register_methods()
    base, ckpts = workdir / "base", [workdir / f"ft-{k + 1:02d}" for k in range(models)]
    out = workdir / f"out-{method}"
    with AnonPeak() as anon_before:
        pass
    baseline_kb = anon_before.peak_kb
    started = time.perf_counter()
    with AnonPeak() as anon:
        result = merge_checkpoints(base, ckpts, method, out_dir=out, shard_size_bytes=SHARD_BYTES)
    elapsed = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    print(
        json.dumps(
            {
                "method": method,
                "elapsed_s": elapsed,
                "merge_s": result.timings.get("merge_s"),
                "checks_s": result.timings.get("checks_s"),
                "norm_s": result.timings.get("norm_s"),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peak_anon_mb": anon.peak_kb / 1024,
                "baseline_anon_mb": baseline_kb / 1024,
                "task_vector_l2": result.task_vector_l2,
            }
        )
    )


def svd_counts(n_matrices: int, seed: int = 0) -> dict:
    """SVDs TSV-M runs over the paper's subset grid, without and with a per-checkpoint cache."""
    rng = random.Random(seed)
    subsets = [sorted(rng.sample(range(N_CHECKPOINTS), n)) for n, count in GRID for _ in range(count)]
    without = sum(len(s) for s in subsets) * n_matrices
    with_cache = len({c for s in subsets for c in s}) * n_matrices
    return {
        "merges": len(subsets),
        "matrices_per_checkpoint": n_matrices,
        "svds_without_cache": without,
        "svds_with_cache": with_cache,
        "saving_factor": without / with_cache,
        "subsets": subsets,
    }


def verify_cache_counts(workdir: Path, subsets: list[list[int]]) -> dict:
    """Run TSV-M over `subsets` for real with one SvdCache and report what it computed."""
    from repro.merge import SvdCache, merge_checkpoints

    cache = SvdCache()
    base = workdir / "base"
    started = time.perf_counter()
    for index, subset in enumerate(subsets):
        ckpts = [workdir / f"ft-{k + 1:02d}" for k in subset]
        merge_checkpoints(base, ckpts, "tsv_m", out_dir=None, svd_cache=cache)
        if index % 10 == 0:
            print(f"  cache check: merge {index + 1}/{len(subsets)}", flush=True)
    return {
        "computed": cache.stats.computed,
        "hits": cache.stats.hits,
        "elapsed_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models (a functional check)")
    parser.add_argument("--methods", nargs="*", default=list(METHOD_ORDER))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.workdir, N_CHECKPOINTS)
        return 0

    dims = QUICK if args.quick else FULL
    bench_dir = ROOT / "runs" / "bench"
    workdir = bench_dir / ("merge-world-quick" if args.quick else "merge-world")
    shapes = tensor_shapes(dims)
    n_params = sum(int.__mul__(*s) if len(s) == 2 else s[0] for s in shapes.values())
    need_gb = 2 * n_params * (N_CHECKPOINTS + 2) / 1e9
    free_gb = shutil.disk_usage(bench_dir.parent if bench_dir.parent.exists() else ROOT).free / 1e9
    if free_gb < need_gb * 1.2:
        print(f"need ~{need_gb:.1f} GB free disk, have {free_gb:.1f} GB", file=sys.stderr)
        return 1
    print(f"world: {N_CHECKPOINTS} checkpoints of {n_params / 1e9:.3f}B parameters (bf16) in {workdir}")
    started = time.perf_counter()
    build_world(workdir, dims)
    print(f"  ready in {time.perf_counter() - started:.0f}s", flush=True)

    largest = max(int.__mul__(*s) if len(s) == 2 else s[0] for s in shapes.values())
    bound_mb = largest * 4 * (N_CHECKPOINTS + 1) / 2**20
    rows = []
    for method in args.methods:
        print(f"== {method}", flush=True)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        proc = subprocess.run(
            [sys.executable, __file__, "--child", method, "--workdir", str(workdir)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"   {rows[-1]['elapsed_s']:.1f}s, peak anon {rows[-1]['peak_anon_mb']:.0f} MB", flush=True)

    n_matrices = sum(
        1 for name, s in shapes.items() if len(s) == 2 and "embed" not in name and "lm_head" not in name
    )
    cache = svd_counts(n_matrices)
    if args.quick:
        cache["verified"] = verify_cache_counts(workdir, cache["subsets"])
        assert cache["verified"]["computed"] == cache["svds_with_cache"], cache["verified"]

    print()
    print(
        f"merge of base + {N_CHECKPOINTS} checkpoints, {n_params / 1e9:.3f}B params, bf16 in/out, fp32 compute"
    )
    print(
        f"model size (bf16) {2 * n_params / 2**20:.0f} MB; streaming bound (largest tensor x 13, fp32) {bound_mb:.0f} MB"
    )
    print(
        f"{'method':<20}{'time s':>9}{'peak RSS MB':>13}{'peak anon MB':>14}{'baseline MB':>13}{'||dW||':>10}"
    )
    for row in rows:
        print(
            f"{row['method']:<20}{row['elapsed_s']:>9.1f}{row['peak_rss_mb']:>13.0f}{row['peak_anon_mb']:>14.0f}"
            f"{row['baseline_anon_mb']:>13.0f}{row['task_vector_l2']:>10.2f}"
        )
    print()
    print(
        f"TSV-M SVDs over the paper grid ({cache['merges']} merges, {n_matrices} matrices per checkpoint): "
        f"{cache['svds_without_cache']} without cache, {cache['svds_with_cache']} with cache "
        f"(x{cache['saving_factor']:.1f} fewer)"
    )
    report = {
        "quick": args.quick,
        "dims": dims,
        "n_checkpoints": N_CHECKPOINTS,
        "parameters": n_params,
        "model_bytes_bf16": 2 * n_params,
        "streaming_bound_mb": bound_mb,
        "shard_size_bytes": SHARD_BYTES,
        "cpu_count": os.cpu_count(),
        "methods": rows,
        "svd_cache": {k: v for k, v in cache.items() if k != "subsets"},
    }
    out = bench_dir / ("merge-quick.json" if args.quick else "merge.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
