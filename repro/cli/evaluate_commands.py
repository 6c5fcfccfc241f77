"""`repro evaluate`: evaluate one saved model on a suite or a list of lm-eval tasks, print and store scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model directory with lm-evaluation-harness",
        description="Evaluate a saved model on a suite (configs/suites.yaml) or on lm-eval tasks; print the "
        "scores and store them under runs/evaluate/<model-name>-<hash>/.",
    )
    parser.add_argument("--model", required=True, type=Path, help="a Hugging Face model directory")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", help="a suite name from the suites file (e.g. smoke, paper16)")
    which.add_argument("--tasks", help="comma-separated lm-eval task names")
    parser.add_argument(
        "--include-path", type=Path, help="a folder of extra lm-eval task YAMLs (as lm_eval's option)"
    )
    parser.add_argument(
        "--suites", type=Path, default=None, help="suites file (default: configs/suites.yaml)"
    )
    parser.add_argument(
        "--limit", type=float, default=None, help="evaluate only the first N items of each task"
    )
    parser.add_argument(
        "--dtype",
        default=None,
        help="float16 (paper), bfloat16, float32 or auto. Default: with --suite the suite's (float16, the "
        "paper's, unless the suite sets eval_dtype); with --tasks lm_eval's own default, auto",
    )
    parser.add_argument(
        "--batch-size",
        default=None,
        help="an integer or auto. Default: auto (the paper's) with --suite; 1 (lm_eval's default) with --tasks",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:0... (default: cuda if available, else cpu)"
    )
    parser.add_argument(
        "--backend", default="hf", choices=("hf", "vllm"), help="hf (in-process, default) or vllm"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("runs/evaluate"), help="where scores are stored")
    parser.add_argument("--no-store", action="store_true", help="print only, do not store")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object {task: {metric: value}} instead"
    )
    parser.set_defaults(handler=run_evaluate)


def _limit(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() and value >= 1 else value


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _batch_size(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def run_evaluate(args: argparse.Namespace) -> int:
    from repro.errors import EvaluationError
    from repro.evaluate import evaluate_model
    from repro.evaluate.model_identity import model_content_hash
    from repro.evaluate.score_table import format_score_table
    from repro.evaluate.standalone_store import store_evaluation
    from repro.suites import DEFAULT_SUITES_PATH, TaskSpec, get_suite

    if args.suite:
        tasks = get_suite(args.suite, args.suites or DEFAULT_SUITES_PATH)
    else:
        names = [name.strip() for name in args.tasks.split(",") if name.strip()]
        if not names:
            raise EvaluationError("--tasks needs at least one task name", field="--tasks")
        tasks = [TaskSpec(name=name) for name in names]
    if args.limit is not None and args.limit <= 0:
        raise EvaluationError("--limit must be positive", field="--limit")
    # --suite: the paper's settings; --tasks: behave exactly like the stock lm_eval CLI by default.
    dtype = args.dtype if args.dtype is not None else (None if args.suite else "auto")
    batch_size = args.batch_size if args.batch_size is not None else ("auto" if args.suite else "1")
    content_hash = model_content_hash(args.model)
    outcome = evaluate_model(
        args.model,
        tasks,
        include_path=args.include_path,
        limit=_limit(args.limit),
        dtype=dtype,
        batch_size=_batch_size(str(batch_size)),
        device=args.device or _default_device(),
        identity={
            "name": args.model.resolve().name,
            "path": str(args.model.resolve()),
            "content_sha256": content_hash,
        },
        backend=args.backend,
    )
    stored = None if args.no_store else store_evaluation(outcome, args.model, args.out_dir, content_hash)
    if args.json:
        print(json.dumps(outcome.metrics_by_task(), indent=2, sort_keys=True))
    else:
        print(format_score_table(outcome))
        if stored is not None:
            print(f"stored in {stored}")
    return 0
