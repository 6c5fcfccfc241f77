"""`repro evaluate` gives exactly the numbers (and per-item results, task hashes) of the stock lm_eval CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE_DIR = REPO / "tasks" / "smoke"
SMOKE_TASKS = ["smoke_arithmetic", "smoke_antonyms", "smoke_capitals"]


def _stock_lm_eval(model_dir: Path, out_dir: Path, defaults: bool = False) -> tuple[dict, dict]:
    """Run the stock `lm_eval` CLI (with its own defaults, or float32 + batch size auto); return its
    results JSON and its per-sample records by task."""
    lm_eval = Path(sys.executable).parent / "lm_eval"
    settings = [] if defaults else ["--batch_size", "auto"]
    command = [
        str(lm_eval), "--model", "hf",
        "--model_args", f"pretrained={model_dir}" + ("" if defaults else ",dtype=float32"),
        "--tasks", ",".join(SMOKE_TASKS), "--include_path", str(SMOKE_DIR), "--device", "cpu",
        *settings, "--output_path", str(out_dir), "--log_samples",
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    subprocess.run(
        command, check=True, capture_output=True, text=True, env=env, cwd=out_dir.parent, timeout=300
    )
    (results_path,) = out_dir.rglob("results_*.json")
    samples = {}
    for task in SMOKE_TASKS:
        (path,) = out_dir.rglob(f"samples_{task}_*.jsonl")
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return json.loads(results_path.read_text()), samples


def test_repro_evaluate_gives_exactly_the_stock_lm_eval_numbers(tiny_llama_world, tmp_path, capsys):
    from repro.cli import main

    stock, samples = _stock_lm_eval(tiny_llama_world.base, tmp_path / "stock")
    code = main(
        ["evaluate", "--model", str(tiny_llama_world.base), "--tasks", ",".join(SMOKE_TASKS),
         "--include-path", str(SMOKE_DIR), "--dtype", "float32", "--batch-size", "auto", "--device", "cpu",
         "--json", "--out-dir", str(tmp_path / "store"), "--log-loglikelihoods", str(tmp_path / "ll")]
    )  # fmt: skip
    assert code == 0
    ours = json.loads(capsys.readouterr().out)
    # --log-loglikelihoods: every choice's log-likelihood, equal to the stock CLI's logged ones (float noise)
    (logged,) = (tmp_path / "ll").glob("base-*.json")
    loglikelihoods = json.loads(logged.read_text())
    for task in SMOKE_TASKS:
        assert set(loglikelihoods[task]) == {str(s["doc_id"]) for s in samples[task]}
        for sample in samples[task]:
            mine = loglikelihoods[task][str(sample["doc_id"])]
            theirs = [float(r[0][0]) for r in sample["resps"]]
            assert len(mine) == len(theirs) and max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-4
    for task in SMOKE_TASKS:
        theirs = stock["results"][task]
        for metric in ("acc", "acc_norm"):
            assert ours[task][metric] == theirs[f"{metric},none"], (task, metric)
            assert ours[task][f"{metric}_stderr"] == theirs[f"{metric}_stderr,none"], (task, metric)

    # The stored per-item results and task hashes agree with lm_eval's logged samples.
    from repro.evaluate.standalone_store import load_evaluation

    (folder,) = (tmp_path / "store").iterdir()
    assert folder.name.startswith("base-")
    stored = load_evaluation(folder)
    for task in SMOKE_TASKS:
        expected = sorted((str(s["doc_id"]), int(s["acc"])) for s in samples[task])
        assert sorted(stored.items[task]) == expected
        assert stored.task_hashes[task] == stock["task_hashes"][task]


def test_with_tasks_and_no_settings_repro_evaluate_matches_a_default_lm_eval_run(tiny_qwen3_world, tmp_path, capsys):
    """`--tasks` without --dtype/--batch-size uses lm_eval's own defaults (dtype auto, batch size 1)."""
    from repro.cli import main

    stock, _ = _stock_lm_eval(tiny_qwen3_world.checkpoints[2], tmp_path / "stock", defaults=True)
    code = main(["evaluate", "--model", str(tiny_qwen3_world.checkpoints[2]), "--tasks", ",".join(SMOKE_TASKS),
                 "--include-path", str(SMOKE_DIR), "--device", "cpu", "--json", "--no-store"])
    assert code == 0
    ours = json.loads(capsys.readouterr().out)
    for task in SMOKE_TASKS:
        for metric in ("acc", "acc_norm"):
            assert ours[task][metric] == stock["results"][task][f"{metric},none"], (task, metric)
            assert ours[task][f"{metric}_stderr"] == stock["results"][task][f"{metric}_stderr,none"], (task, metric)
