"""`repro evaluate`: evaluate one saved model on a suite or a list of lm-eval tasks, print and store scores."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from repro.atomic_io import atomic_write_json
from repro.cli import hidden_alias
from repro.cli.lm_eval_cli import run_lm_eval_cli
from repro.cli.token_budget_output import run_count_tokens
from repro.errors import EvaluationError
from repro.facts.choices import BACKENDS, DEFAULT_BACKEND, SHARED_MODEL_NAME
from repro.facts.paths import EVALUATE_DIR
from repro.facts.suites import DEFAULT_SUITES_PATH, TaskSpec, get_suite


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model directory with lm-evaluation-harness",
        description="Evaluate a saved model on a suite (configs/suites.yaml) or on lm-eval tasks; print the "
        "scores and store them under runs/evaluate/<model-name>-<hash>/.",
    )
    parser.add_argument(
        "--model",
        required=True,
        type=Path,
        action="append",
        help="a Hugging Face model directory (repeat to evaluate several in one process: tasks and "
        "tokenized requests are built once)",
    )
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
        "--backend",
        default=DEFAULT_BACKEND,
        choices=BACKENDS,
        help="shared (default: lm-eval's HF backend, each shared context computed once; scores equal "
        "to hf within float noise), hf (lm-eval's stock HF path) or vllm (GPU, needs `pip install vllm`)",
    )
    parser.add_argument("--out", dest="out_dir", type=Path, default=Path(EVALUATE_DIR), metavar="DIR",
                        help=f"where scores are stored (default {EVALUATE_DIR})")
    hidden_alias(parser, "--out-dir", "out_dir", type=Path)
    parser.add_argument("--no-store", action="store_true", help="print only, do not store")
    parser.add_argument(
        "--log-loglikelihoods",
        type=Path,
        default=None,
        help="also write DIR/<model-folder>.json: {task: {doc id: [log-likelihood of each choice]}} "
        "(to compare numerics with the stock CLI's --log_samples)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object {task: {metric: value}} instead"
    )
    parser.add_argument(
        "--compare-backends",
        action="store_true",
        help="instead of scoring: run the items through stock hf at two batch sizes (--batch-sizes) and "
        "through shared, report per task the items whose prediction differs (stock vs stock, stock vs shared) "
        "and exit 1 when shared disagrees with stock more often than stock with itself plus a margin of "
        "max(1, 1%% of the items) (docs/reviewers.md)",
    )
    parser.add_argument(
        "--batch-sizes", default="16,1", help="with --compare-backends: the two stock batch sizes A,B (default 16,1)"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="with --compare-backends: also write the report as JSON here"
    )
    parser.add_argument(
        "--count-tokens",
        action="store_true",
        help="run no model: print per task items, requests and forward tokens of stock lm-eval, the "
        "item-level scorer and prefix sharing, from the tokenized requests (tokenizer and context length "
        "of the first --model; hub suites need their datasets cached)",
    )
    parser.add_argument("--leaves", action="store_true", help="with --count-tokens: one row per leaf task")
    parser.add_argument(
        "--update-costs",
        nargs="?",
        const=True,
        default=None,
        metavar="COSTS",
        help="with --count-tokens --suite S: write each task's counted items and tokens per item into the "
        "costs file (default configs/costs.yaml), which the budget planner then uses",
    )
    parser.set_defaults(handler=run_evaluate)

    lm_eval_cmd = subparsers.add_parser(
        "lm-eval",
        help=f"stock lm_eval CLI with repro's {SHARED_MODEL_NAME} model registered",
        description=f"Run lm_eval ARGS with `--model {SHARED_MODEL_NAME}` (shared-context scoring) available; all "
        "arguments are passed to lm-eval unchanged.",
        add_help=False,
        prefix_chars="\0",  # no options of its own: every argument (--model, -h...) goes to lm-eval
    )
    lm_eval_cmd.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="lm_eval arguments")
    lm_eval_cmd.set_defaults(handler=_lm_eval)


def _lm_eval(args: argparse.Namespace) -> int:
    return run_lm_eval_cli(list(args.lm_eval_args))


def _import_evaluation_stack(backend: str) -> None:
    """Import torch, transformers and lm-eval's evaluator and model class now, once per process (what the
    stock `lm_eval` CLI does before it starts its clock), so "evaluated in" is the model's own time."""
    import lm_eval.evaluator  # noqa: F401
    import transformers  # noqa: F401

    if backend == "shared":
        import repro.evaluate.shared_context  # noqa: F401
    elif backend == "hf":
        import lm_eval.models.huggingface  # noqa: F401


def _limit(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() and value >= 1 else value


def _default_device() -> str:
    # torch: deferred so that importing this module does not load it
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _batch_size(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def run_evaluate(args: argparse.Namespace) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.evaluate import EvaluationSession, evaluate_model
    from repro.evaluate.model_identity import model_content_hash
    from repro.evaluate.score_table import format_score_table
    from repro.evaluate.standalone_store import store_evaluation

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
    not_models = [str(model) for model in args.model if not (model / "config.json").is_file()]
    if not_models:
        raise EvaluationError(f"not a model directory (no config.json): {', '.join(not_models)}", field="--model")
    if args.count_tokens or args.update_costs is not None:
        return run_count_tokens(args, tasks)
    # loaded when the command runs, so that `repro --help` stays light
    from repro.merge.tensor_checks import inspect_checkpoint

    for model in args.model:  # refuse remote code, broken headers, pickle-only weights before loading any
        inspect_checkpoint(model)
    if args.compare_backends:
        return _compare_backends(args, tasks, dtype)
    session = EvaluationSession()  # tasks and tokenized requests built once for all --model
    _import_evaluation_stack(args.backend)  # process start-up, as the stock CLI's: not any one model's time
    by_model = {}
    for model in args.model:
        started, cpu_started = time.monotonic(), time.process_time()
        loglikelihoods = {} if args.log_loglikelihoods is not None else None
        content_hash = model_content_hash(model)
        outcome = evaluate_model(
            model,
            tasks,
            include_path=args.include_path,
            limit=_limit(args.limit),
            dtype=dtype,
            batch_size=_batch_size(str(batch_size)),
            device=args.device or _default_device(),
            identity={
                "name": model.resolve().name,
                "path": str(model.resolve()),
                "content_sha256": content_hash,
            },
            backend=args.backend,
            session=session,
            loglikelihoods_out=loglikelihoods,
        )
        if loglikelihoods is not None:
            # loaded when the command runs, so that `repro --help` stays light
            from repro.evaluate.model_identity import evaluation_folder_name

            args.log_loglikelihoods.mkdir(parents=True, exist_ok=True)
            atomic_write_json(args.log_loglikelihoods / f"{evaluation_folder_name(model, content_hash)}.json",
                              loglikelihoods)
        stored = None if args.no_store else store_evaluation(outcome, model, args.out_dir, content_hash)
        by_model[str(model)] = outcome.metrics_by_task()
        if not args.json:
            if len(args.model) > 1:
                print(f"== {model}")
            print(format_score_table(outcome))
            tokens = "" if outcome.forward_tokens is None else f", {outcome.forward_tokens} forward tokens"
            print(f"evaluated in {time.monotonic() - started:.1f} s ({args.backend} backend{tokens}; "
                  f"{time.process_time() - cpu_started:.1f} s CPU)")
            if stored is not None:
                print(f"stored in {stored}")
    if args.json:  # one model: {task: {metric: value}}; several: {model: {task: ...}}
        print(json.dumps(by_model if len(args.model) > 1 else by_model[str(args.model[0])], indent=2, sort_keys=True))
    return 0


def _compare_backends(args: argparse.Namespace, tasks, dtype: str | None) -> int:
    """`repro evaluate --compare-backends`: exit 0 when the agreement rule holds, 1 when it does not."""
    # loaded when the command runs, so that `repro --help` stays light
    from repro.evaluate.backend_agreement import compare_backend_agreement, format_agreement

    problems = []
    if len(args.model) != 1:
        problems.append("--compare-backends takes exactly one --model")
    try:
        sizes = tuple(int(part) for part in args.batch_sizes.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 2 or min(sizes) < 1 or sizes[0] == sizes[1]:
        problems.append(f"--batch-sizes must be two different positive integers A,B, got {args.batch_sizes!r}")
    if args.backend != "shared":
        problems.append("--compare-backends compares hf with shared itself; leave --backend out")
    if problems:
        raise EvaluationError("; ".join(problems), field="--compare-backends")
    report = compare_backend_agreement(
        args.model[0], tasks, include_path=args.include_path, limit=_limit(args.limit),
        dtype=dtype or "float16", batch_sizes=sizes, device=args.device or _default_device(),
    )
    print(format_agreement(report))
    if args.report is not None:
        atomic_write_json(args.report, {"model": str(args.model[0].resolve()), **report.as_dict()})
    return 0 if report.passed else 1
