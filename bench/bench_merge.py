"""Merge benchmark: the streaming engine vs stock `mergekit-yaml` on identical inputs, in the same run.

    python bench/bench_merge.py            # 12 synthetic Llama checkpoints of 0.21B parameters (bf16)
    python bench/bench_merge.py --quick    # the same protocol on 7M-parameter models (minutes)

Synthetic families (base + 12 checkpoints, seeded, bf16) are built under runs/bench/ and reused. For each
method (TA, TIES, Model Stock; n = 12, fp32 compute, bf16 out), repeated --reps times with the order of
the variants rotated every repetition, each run from a cold page cache (the inputs are evicted with
posix_fadvise first):
  ours (in process)   merge_checkpoints(out_dir=...) in a process that has already imported everything,
                      as the runner calls it
  ours (repro merge)  the `repro merge` command (interpreter start-up included)
  stock               `mergekit-yaml` on the mergekit configuration the engine records (repro_merge.yaml)
Reported: median wall time, median CPU time (user + sys), peak RSS (the kernel's high-water mark of
the process: anonymous memory plus mapped file pages), input GB/s (input bytes / wall) and the ratios,
next to the time to read the inputs cold. The outputs are compared: TA and Model Stock must be
identical to stock's; for TIES the share of differing entries is reported (ties at the cut-off).
Peak RSS of a TA merge is also measured on a second family twice as deep.

Grid mode: the paper's 76 TA merges of one base (15 subsets for n = 2, 4, 6, 8, 10 and all 12, drawn
by the kit's subset sampler) with `merge_grid` in one process vs one `mergekit-yaml` run per subset;
--stock-grid-runs K times only K of the 76 stock runs (spread over n) and extrapolates per n.
Per-call overhead: `merge_checkpoints(out_dir=None)` of a 0.7M-parameter family, in process.

Timing runs take /tmp/repro-bench.lock (other benchmarks on the machine wait). Results:
runs/bench/merge[-quick].json and the Markdown summary runs/bench/merge[-quick].md.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pages import provenance, write_page  # bench/pages.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
N_CHECKPOINTS = 12
FULL = dict(hidden=1024, intermediate=2816, layers=12, vocab=32000, heads=16, kv_heads=8)
QUICK = dict(hidden=256, intermediate=704, layers=4, vocab=8000, heads=4, kv_heads=2)
TINY = dict(hidden=128, intermediate=352, layers=2, vocab=2048, heads=4, kv_heads=2)
GRID = ((2, 15), (4, 15), (6, 15), (8, 15), (10, 15), (12, 1))
METHODS = ("task_arithmetic", "ties", "model_stock")
VARIANTS = ("ours (in process)", "ours (repro merge)", "stock mergekit-yaml")
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
DEVICE = os.environ.get("REPRO_BENCH_DEVICE", "cpu")  # set by --device (children inherit it)


def repro_merge_cmd() -> list[str]:
    """`repro merge`: the installed command, or the package run by this interpreter (no venv, e.g. GPU)."""
    command = BIN / "repro"
    return ([str(command)] if command.exists() else [sys.executable, "-m", "repro"]) + ["merge", "--device", DEVICE]


def stock_cmd(config: Path, out: Path) -> list[str]:
    """Stock `mergekit-yaml` (its console script, or its entry point run by this interpreter); --cuda on GPU."""
    command = BIN / "mergekit-yaml"
    head = [str(command)] if command.exists() else [
        sys.executable, "-c", "import sys; from mergekit.scripts.run_yaml import main; sys.exit(main())"]
    return head + [str(config), str(out), "--no-write-model-card", "--quiet"] + (["--cuda"] if DEVICE == "cuda" else [])


# -- synthetic families ------------------------------------------------------------------------------
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


def n_parameters(dims: dict) -> int:
    total = 0
    for shape in tensor_shapes(dims).values():
        count = 1
        for d in shape:
            count *= d
        total += count
    return total


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
    print(f"  building {root.name}: {N_CHECKPOINTS} checkpoints of {n_parameters(dims) / 1e6:.1f}M parameters", flush=True)
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
    (root / "world.json").write_text(json.dumps(spec))
    return base_dir, ckpts


def weight_files(dirs) -> list[Path]:
    return [f for d in dirs for f in sorted(Path(d).glob("*.safetensors"))]


def evict(dirs) -> None:
    """Drop the files' pages from the page cache (no root needed), so the next read is cold."""
    for file in weight_files(dirs):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cold_read_seconds(dirs) -> float:
    evict(dirs)
    started = time.perf_counter()
    buffer = bytearray(8 << 20)
    for file in weight_files(dirs):
        with open(file, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
    return time.perf_counter() - started


# -- one timed run ------------------------------------------------------------------------------------
def child_measure(argv: list[str]) -> None:
    """Run argv as this process's only child; print its wall, CPU (user + sys), peak RSS and stdout."""
    started = time.perf_counter()
    proc = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(proc.returncode)
    print(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                      "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": proc.stdout}))


def timed(argv: list[str]) -> dict:
    """Wall, CPU time and peak RSS of one process running argv (measured by a wrapper process whose
    only child it is, so the high-water mark is that run's own)."""
    proc = subprocess.run([sys.executable, __file__, "--child", "measure", "--", *argv], env=ENV,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_inprocess(args) -> None:
    """In one process: import everything, evict the inputs, then time one merge (or the grid)."""
    import mergekit.merge_methods  # noqa: F401
    import torch  # noqa: F401

    from repro.merge import merge_checkpoints, merge_grid
    from repro.merge.mergekit_plugin import register_methods

    register_methods()
    base, ckpts = Path(args.base), [Path(c) for c in args.model]
    evict([base, *ckpts])
    usage0, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if args.grid:
        subsets = json.loads(Path(args.grid).read_text())
        results = merge_grid(base, ckpts, subsets, args.method, device=DEVICE)
        extra = {"merges": len(results)}
        if args.keep:
            from safetensors.torch import save_file

            for number in json.loads(Path(args.keep).read_text()):
                save_file(results[number].state_dict, str(Path(args.out) / f"grid-{number}.safetensors"))
    else:
        result = merge_checkpoints(base, ckpts, args.method, out_dir=args.out, device=DEVICE)
        extra = {"task_vector_l2": result.task_vector_l2}
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": usage.ru_maxrss / 1024, **extra}))


def child_overhead(args) -> None:
    """Per-call time of in-memory merges of a tiny family, in a warm process."""
    from repro.merge import merge_checkpoints

    base, ckpts = Path(args.base), [Path(c) for c in args.model]
    rows = {}
    for method in METHODS:
        for n in (2, 12):
            merge_checkpoints(base, ckpts[:n], method, out_dir=None)
            times = []
            for _ in range(15):
                started = time.perf_counter()
                merge_checkpoints(base, ckpts[:n], method, out_dir=None)
                times.append(time.perf_counter() - started)
            rows[f"{method} n={n}"] = 1000 * statistics.median(times)
    print(json.dumps(rows))


# -- the protocol -------------------------------------------------------------------------------------
def measure_variant(variant: str, method: str, base: Path, ckpts: list[Path], out: Path, config: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    models = [x for c in ckpts for x in ("--model", str(c))]
    if variant.startswith("ours (in"):
        argv = [sys.executable, __file__, "--child", "inprocess", "--method", method, "--base", str(base), *models]
        row = timed(argv + ["--out", str(out)])
        inner = json.loads(row.pop("stdout").strip().splitlines()[-1])  # the merge alone, in process
        return {**row, "process_wall_s": row["wall_s"], "wall_s": inner["wall_s"], "cpu_s": inner["cpu_s"]}
    evict([base, *ckpts])
    if variant.startswith("ours (repro"):
        argv = [*repro_merge_cmd(), "--base", str(base), *models, "--method", method, "--out", str(out)]
    else:
        argv = stock_cmd(config, out)
    row = timed(argv)
    row.pop("stdout", None)
    return row


def compare_outputs(ours: Path, stock: Path) -> dict:
    import torch

    from repro.merge.engine import load_state_dict

    a, b = load_state_dict(ours), load_state_dict(stock)
    differing = sum(int((a[k] != b[k]).sum()) for k in b)
    total = sum(b[k].numel() for k in b)
    return {"same_names": a.keys() == b.keys(), "differing": differing, "entries": total,
            "share": differing / total, "identical": a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)}


def stock_config(method: str, base: Path, ckpts: list[Path], path: Path) -> Path:
    import yaml

    from repro.merge import build_mergekit_config, resolve_method_params
    from repro.merge.mergekit_plugin import register_methods

    register_methods()
    config = build_mergekit_config(base, ckpts, method, resolve_method_params(method, {}), "bfloat16")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def bench_methods(args, base, ckpts, work: Path) -> dict:
    results = {}
    for method in args.methods:
        config = stock_config(method, base, ckpts, work / f"{method}.yaml")
        rows = {v: [] for v in VARIANTS}
        for rep in range(args.reps):
            order = VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]
            for variant in order:
                out = work / f"out-{method}-{VARIANTS.index(variant)}"
                row = measure_variant(variant, method, base, ckpts, out, config)
                rows[variant].append(row)
                print(f"   {method:<16} {variant:<20} rep {rep + 1}: {row['wall_s']:7.1f}s", flush=True)
        equality = compare_outputs(work / f"out-{method}-1", work / f"out-{method}-2")
        for index in range(3):
            shutil.rmtree(work / f"out-{method}-{index}", ignore_errors=True)
        results[method] = {
            "runs": rows,
            "median": {v: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s")} for v, rs in rows.items()},
            "peak_rss_mb": {v: max(r["peak_rss_mb"] for r in rs) for v, rs in rows.items()},
            "equality": equality,
        }
    return results


def grid_subsets() -> list[list[int]]:
    from repro.facts.subset_sampler import sample_subsets

    subsets = []
    for n, count in GRID:
        for subset in sample_subsets(N_CHECKPOINTS, n, count, seed=0, base="bench"):
            subsets.append([i - 1 for i in subset])
    return subsets


def bench_grid(args, base, ckpts, work: Path) -> dict:
    subsets = grid_subsets()
    (work / "grid.json").write_text(json.dumps(subsets))
    by_n: dict[int, list[int]] = {}
    for number, subset in enumerate(subsets):
        by_n.setdefault(len(subset), []).append(number)
    per_n = max(1, args.stock_grid_runs // len(by_n)) if args.stock_grid_runs else None
    chosen = sorted(i for numbers in by_n.values() for i in (numbers if per_n is None else numbers[:per_n]))
    (work / "keep.json").write_text(json.dumps(chosen))
    out = work / "grid-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    models = [x for c in ckpts for x in ("--model", str(c))]
    ours = timed([sys.executable, __file__, "--child", "inprocess", "--method", "task_arithmetic", "--base",
                  str(base), *models, "--grid", str(work / "grid.json"), "--keep", str(work / "keep.json"),
                  "--out", str(out)])
    ours_process_wall = ours["wall_s"]
    ours.update(json.loads(ours.pop("stdout").strip().splitlines()[-1]))
    stock_times: dict[int, list[float]] = {}
    identical = True
    for number in chosen:
        subset = subsets[number]
        config = stock_config("task_arithmetic", base, [ckpts[i] for i in subset], work / "grid-stock.yaml")
        target = work / "grid-stock-out"
        shutil.rmtree(target, ignore_errors=True)
        evict([base, *ckpts])
        row = timed(stock_cmd(config, target))
        stock_times.setdefault(len(subset), []).append(row["wall_s"])
        from safetensors.torch import load_file

        from repro.merge.engine import load_state_dict

        mine, theirs = load_file(str(out / f"grid-{number}.safetensors")), load_state_dict(target)
        identical = identical and mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)
        print(f"   grid stock run {len(sum(stock_times.values(), []))}/{len(chosen)}: {row['wall_s']:.1f}s", flush=True)
    stock_total = sum(statistics.mean(stock_times[n]) * len(by_n[n]) for n in by_n)
    return {
        "merges": len(subsets),
        "ours_wall_s": ours["wall_s"],
        "ours_process_wall_s": ours_process_wall,
        "ours_cpu_s": ours["cpu_s"],
        "stock_runs_timed": len(chosen),
        "stock_wall_s": stock_total,
        "stock_extrapolated": len(chosen) < len(subsets),
        "identical_to_stock": bool(identical),
    }


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    gpu = None
    if DEVICE == "cuda":
        import torch

        gpu = torch.cuda.get_device_name(0)
    return {"cpu": model, "cores": os.cpu_count(), "ram_gib": round(mem / 2**20, 1), "python": platform.python_version(),
            "gpu": gpu, "device": DEVICE}


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7M-parameter models (a quick, complete run)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--skip-extras", action="store_true",
                        help="only the method table: no deep-family RSS, grid or per-call overhead runs")
    parser.add_argument("--tiny", action="store_true", help="0.9M-parameter models: a functional check, not a benchmark")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=DEVICE,
                        help="merge on this device: ours with device=..., stock mergekit-yaml with --cuda")
    parser.add_argument("--stock-grid-runs", type=int, default=12,
                        help="stock runs of the 76-merge grid actually timed (0: all 76)")
    parser.add_argument("--child", choices=("inprocess", "overhead", "measure"), help=argparse.SUPPRESS)
    for name in ("--method", "--base", "--out", "--grid", "--keep"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--model", action="append", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:3] == ["--child", "measure", "--"]:
        child_measure(argv[3:])
        return 0
    args = parser.parse_args(argv)
    if args.child == "inprocess":
        child_inprocess(args)
        return 0
    if args.child == "overhead":
        child_overhead(args)
        return 0

    os.environ["REPRO_BENCH_DEVICE"] = ENV["REPRO_BENCH_DEVICE"] = args.device
    DEVICE = args.device
    if args.skip_extras:
        args.skip_grid = True
    label = ("merge-tiny" if args.tiny else "merge-quick" if args.quick else "merge") + ("-cuda" if DEVICE == "cuda" else "")
    bench_dir = ROOT / "runs" / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    dims = TINY if args.tiny else QUICK if args.quick else FULL
    deep = dict(dims, layers=2 * dims["layers"])
    need_gb = 2 * (n_parameters(dims) + n_parameters(deep)) * (N_CHECKPOINTS + 3) / 1e9
    if shutil.disk_usage(bench_dir).free / 1e9 < need_gb * 1.2:
        print(f"need ~{need_gb:.1f} GB free disk under {bench_dir}", file=sys.stderr)
        return 1
    worlds = {"main": build_world(bench_dir / f"world-{label.removesuffix('-cuda')}", dims),
              "deep": build_world(bench_dir / f"world-{label}-deep", deep),
              "tiny": build_world(bench_dir / "world-tiny", TINY)}
    if not args.quick and not args.skip_grid:
        worlds["grid"] = build_world(bench_dir / "world-merge-quick", QUICK)
    work = bench_dir / f"work-{label}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with open("/tmp/repro-bench.lock", "w") as lock:
        if os.environ.get("REPRO_BENCH_NO_LOCK") != "1":  # a functional check only: timings are not meant
            print("waiting for /tmp/repro-bench.lock ...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        load_before = os.getloadavg()
        started = time.time()
        base, ckpts = worlds["main"]
        input_bytes = sum(f.stat().st_size for f in weight_files([base, *ckpts]))
        cold = statistics.median(cold_read_seconds([base, *ckpts]) for _ in range(3))
        print(f"inputs {input_bytes / 1e9:.2f} GB, cold read {cold:.2f}s ({input_bytes / 1e9 / cold:.2f} GB/s)", flush=True)
        methods = bench_methods(args, base, ckpts, work)
        deep_base, deep_ckpts = worlds["deep"]
        deep_rss = {}
        for variant, argv in () if args.skip_extras else (
            ("ours (repro merge)", [*repro_merge_cmd(), "--base", str(deep_base),
                                    *[x for c in deep_ckpts for x in ("--model", str(c))],
                                    "--method", "task_arithmetic", "--out", str(work / "deep-out")]),
            ("stock mergekit-yaml", stock_cmd(stock_config("task_arithmetic", deep_base, deep_ckpts, work / "deep.yaml"),
                                              work / "deep-out")),
        ):
            shutil.rmtree(work / "deep-out", ignore_errors=True)
            evict([deep_base, *deep_ckpts])
            deep_rss[variant] = timed(argv)["peak_rss_mb"]
            print(f"   deep family peak RSS {variant}: {deep_rss[variant]:.0f} MB", flush=True)
        shutil.rmtree(work / "deep-out", ignore_errors=True)
        grid = None
        if not args.skip_grid:
            grid_base, grid_ckpts = worlds["main" if args.quick else "grid"]
            if args.stock_grid_runs == 0:
                args.stock_grid_runs = None
            grid = bench_grid(args, grid_base, grid_ckpts, work)
        tiny_base, tiny_ckpts = worlds["tiny"]
        overhead = {} if args.skip_extras else json.loads(timed(
            [sys.executable, __file__, "--child", "overhead", "--base", str(tiny_base),
             *[x for c in tiny_ckpts for x in ("--model", str(c))]])["stdout"].strip().splitlines()[-1])
        load_after = os.getloadavg()
        elapsed = time.time() - started
    report = {
        "label": label, "machine": machine(), "load_before": load_before, "load_after": load_after,
        "bench_wall_s": elapsed, "reps": args.reps, "dims": dims, "deep_dims": deep,
        "parameters": n_parameters(dims), "deep_parameters": n_parameters(deep), "input_bytes": input_bytes,
        "cold_read_s": cold, "methods": methods, "deep_rss_mb": deep_rss, "grid": grid, "tiny_overhead_ms": overhead,
        "tiny_parameters": n_parameters(TINY), "provenance": provenance(),
    }
    (bench_dir / f"{label}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    markdown = render_markdown(report)
    (bench_dir / f"{label}.md").write_text(markdown)
    if bench_dir == ROOT / "runs" / "bench":
        print(f"page: {write_page(label, report)}")
    print()
    print(markdown)
    print(f"wrote {bench_dir / (label + '.md')} and {bench_dir / (label + '.json')}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _size(parameters: int) -> str:
    return f"{parameters / 1e9:.2f}B" if parameters >= 1e8 else f"{parameters / 1e6:.1f}M"


def _goal(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render_markdown(r: dict) -> str:
    """The Markdown summary of the run (the page docs/benchmarks/<label>.md shows it)."""
    m, titles = r["machine"], {"task_arithmetic": "TA", "ties": "TIES", "model_stock": "Model Stock"}
    # the load before the runs tells whether others used the machine; the load after includes our own runs
    # (2 merging threads keep it near 2 on an otherwise idle 2-core machine)
    shared = r["load_before"][0] > 1.5
    lines = [
        f"# Merge benchmark ({r['label']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, "
        + (f"GPU {m['gpu']}; merges on CUDA (ours device=cuda, stock mergekit-yaml --cuda). " if m.get("gpu") else "no GPU. ")
        +
        f"Load average {r['load_before'][0]:.1f} before / {r['load_after'][0]:.1f} after (the benchmark's own runs)"
        + (" — **the machine had other load**, so absolute times are noisy; ratios come from "
           "runs alternated in the same window." if shared else "."),
        f"Inputs: base + {N_CHECKPOINTS} synthetic Llama checkpoints of {_size(r['parameters'])} parameters "
        f"(bf16), {r['input_bytes'] / 1e9:.2f} GB; read cold in {r['cold_read_s']:.2f} s "
        f"({r['input_bytes'] / 1e9 / r['cold_read_s']:.2f} GB/s). Every run starts from a cold page cache; "
        f"medians of {r['reps']} alternated repetitions; peak RSS is the process high-water mark "
        "(anonymous + mapped file pages).",
        "",
    ]
    goals = []
    for method, res in r["methods"].items():
        med, rss, eq = res["median"], res["peak_rss_mb"], res["equality"]
        ours_p, ours_c, stock = (med[v] for v in VARIANTS)
        lines += [
            f"| {titles[method]}, n = 12 (fp32 compute, bf16 out) | ours, in process | `repro merge` | "
            "stock `mergekit-yaml` | stock / `repro merge` | stock / in process |",
            "|---|---|---|---|---|---|",
            f"| wall time | {ours_p['wall_s']:.1f} s | {ours_c['wall_s']:.1f} s | {stock['wall_s']:.1f} s | "
            f"{stock['wall_s'] / ours_c['wall_s']:.2f}× | {stock['wall_s'] / ours_p['wall_s']:.2f}× |",
            f"| CPU time | {ours_p['cpu_s']:.1f} s | {ours_c['cpu_s']:.1f} s | {stock['cpu_s']:.1f} s | "
            f"{stock['cpu_s'] / ours_c['cpu_s']:.2f}× | {stock['cpu_s'] / ours_p['cpu_s']:.2f}× |",
            f"| peak RSS | {rss[VARIANTS[0]]:.0f} MB | {rss[VARIANTS[1]]:.0f} MB | {rss[VARIANTS[2]]:.0f} MB | "
            f"{rss[VARIANTS[1]] / rss[VARIANTS[2]]:.2f} of stock | {rss[VARIANTS[0]] / rss[VARIANTS[2]]:.2f} of stock |",
            f"| input GB/s | {r['input_bytes'] / 1e9 / ours_p['wall_s']:.2f} | {r['input_bytes'] / 1e9 / ours_c['wall_s']:.2f} | "
            f"{r['input_bytes'] / 1e9 / stock['wall_s']:.2f} | {stock['wall_s'] / ours_c['wall_s']:.2f}× | "
            f"{stock['wall_s'] / ours_p['wall_s']:.2f}× |",
            "| output vs stock | " + ("identical (every tensor bit for bit)" if eq["identical"] else
                                     f"{eq['differing']} of {eq['entries']} entries differ ({100 * eq['share']:.4f} %)")
            + " | | | | |",
            "",
        ]
        speedup = stock["wall_s"] / ours_c["wall_s"]
        target = {"task_arithmetic": 2.5, "ties": 5.0, "model_stock": 1.5}[method]
        goals.append(f"- {titles[method]}: `repro merge` {speedup:.2f}× faster than stock (goal ≥ {target}×): {_goal(speedup >= target)}")
        goals.append(f"- {titles[method]} output: " + ("identical to stock" if eq["identical"] else
                     f"{100 * eq['share']:.4f} % of entries differ from stock") + f": {_goal(eq['identical'])}")
        if method != "task_arithmetic":
            share = rss[VARIANTS[1]] / rss[VARIANTS[2]]
            goals.append(f"- {titles[method]} peak RSS: {rss[VARIANTS[1]]:.0f} MB vs stock {rss[VARIANTS[2]]:.0f} MB = "
                         f"{share:.2f} (goal ≤ 0.33): {_goal(share <= 1 / 3)}")
        if method == "task_arithmetic":
            factor = ours_p["wall_s"] / r["cold_read_s"]
            goals.append(f"- TA in process: {factor:.2f}× the cold read of its inputs (goal ≤ 3×): {_goal(factor <= 3)}")
            share = rss[VARIANTS[1]] / rss[VARIANTS[2]]
            goals.append(f"- TA peak RSS, {_size(r['parameters'])} family: {rss[VARIANTS[1]]:.0f} MB vs stock "
                         f"{rss[VARIANTS[2]]:.0f} MB = {share:.2f} (goal ≤ 0.33): {_goal(share <= 1 / 3)}")
    deep = r["deep_rss_mb"]
    if deep:
        share = deep[VARIANTS[1]] / deep[VARIANTS[2]]
        main = r["methods"].get("task_arithmetic", {}).get("peak_rss_mb", {}).get(VARIANTS[1])
        goals.append(f"- TA peak RSS, {_size(r['deep_parameters'])} family (twice as deep): {deep[VARIANTS[1]]:.0f} MB "
                     f"vs stock {deep[VARIANTS[2]]:.0f} MB = {share:.2f} (goal ≤ 0.33): {_goal(share <= 1 / 3)}"
                     + (f"; ours grew {deep[VARIANTS[1]] / main:.2f}× with the model, stock "
                        f"{deep[VARIANTS[2]] / r['methods']['task_arithmetic']['peak_rss_mb'][VARIANTS[2]]:.2f}×" if main else ""))
    grid = r.get("grid")
    if grid:
        ratio = grid["stock_wall_s"] / grid["ours_wall_s"]
        lines += [
            f"| TA grid, {grid['merges']} merges | ours (`merge_grid`, one pass, in memory) | stock, one `mergekit-yaml` per merge | ratio |",
            "|---|---|---|---|",
            f"| wall time | {grid['ours_wall_s']:.1f} s ({grid['ours_process_wall_s']:.1f} s with start-up) | "
            f"{grid['stock_wall_s']:.1f} s" + (f" (extrapolated from {grid['stock_runs_timed']} timed runs, per n)"
                                               if grid["stock_extrapolated"] else "") + f" | {ratio:.1f}× |",
            f"| results | identical to stock on the {grid['stock_runs_timed']} compared merges: "
            f"{'yes' if grid['identical_to_stock'] else '**no**'} | | |",
            "",
        ]
        goals.append(f"- 76-merge TA grid {ratio:.1f}× faster than 76 stock runs (goal ≥ 10×): {_goal(ratio >= 10)}")
    overhead = r.get("tiny_overhead_ms") or {}
    if overhead:
        lines += [f"Per-call time of an in-memory merge of a {r['tiny_parameters'] / 1e6:.1f}M-parameter family "
                  "(warm process, median of 15): " + ", ".join(f"{k} {v:.1f} ms" for k, v in overhead.items()) + ".", ""]
    lines += ["Goals:", *goals, ""]
    if not m.get("gpu"):
        lines += ["GPU (`device=\"cuda\"`): not measured here (no GPU on this machine; `bench/gpu_merge.sh` runs "
                  "this benchmark on CUDA).", ""]
    return "\n".join(lines)

if __name__ == "__main__":
    sys.exit(main())
