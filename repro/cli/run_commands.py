"""`repro plan`, `repro run`, `repro status`, `repro index`, `repro preflight`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from repro.errors import RunnerError
from repro.facts.config import load_config
from repro.facts.paths import RUNS_DIR


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="experiment config, e.g. configs/smoke.yaml")
    parser.add_argument("--runs-dir", type=Path, default=None, help="results folder (default: runs/<config name>)")


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of workers (1 or more) or `auto`")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("plan", help="write the job plan of a config and print its counts")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    p.add_argument("--costs", type=Path, default=None, help="per-model GPU costs (default configs/costs.yaml)")
    p.add_argument("--budget-gpu-hours", type=float, default=None, metavar="H",
                   help="pick the bases, methods, subsets and item sample with the most evidence within H GPU-hours")
    p.add_argument("--max-methods", type=int, default=2, help="methods the budget planner may pick (default 2)")
    p.add_argument("--write-config", type=Path, default=None, help="with --budget-gpu-hours: write the chosen config")
    p.add_argument("--update-costs", action="store_true",
                   help="update the costs file from this config's recorded timings and per-item results")
    p.add_argument("--appendix-configs", action="store_true",
                   help="only print the appendix configs of the config's `report:` section, one per line")
    p.set_defaults(handler=cmd_plan)

    p = subparsers.add_parser("run", help="run all pending jobs of a config (resumable)")
    _add_config(p)
    p.add_argument("--executor", choices=["local", "slurm"], default="local")
    p.add_argument("--workers", type=_workers, default=None, metavar="N | auto",
                   help="local worker processes (default 1, or one per GPU of --gpus); `auto`: one per visible "
                        "GPU, or on CPU one per CPU for configs with evaluation.threads: 1")
    p.add_argument("--gpus", default=None, metavar="0,1,.. | all",
                   help="the GPUs the local workers use, one each (CUDA_VISIBLE_DEVICES per worker); `all` = every "
                        "visible GPU. Default with several workers and device auto/cuda: one visible GPU per worker")
    p.add_argument("--base", action="append", default=None, metavar="NAME",
                   help="only the jobs of this base (repeatable; default all of the config's bases)")
    p.add_argument("--retry-failed", action="store_true", help="also rerun jobs that failed before")
    p.add_argument("--only", default=None,
                   help="comma-separated job kinds to run: base,single,merge,homogeneous,geometry")
    p.add_argument("--for", dest="for_table", choices=["table1", "table2", "table3"], default=None,
                   help="only the jobs a table needs: bases, single checkpoints and the merges of the "
                        "methods the config's `report:` section puts in that table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override a slurm setting of the config (slurm executor)")
    p.add_argument("--with-appendix", action="store_true",
                   help="then run the config's appendix configs (`repro plan --appendix-configs`) with the same "
                        "worker processes, each into runs/<its name> beside the config's results folder; "
                        "local executor only, not with --only, --for or --base")
    p.set_defaults(handler=cmd_run)

    p = subparsers.add_parser("status", help="done / running / failed / pending jobs per base and method")
    _add_config(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = subparsers.add_parser("index", help="rebuild runs/<config>/index.sqlite from the result files")
    _add_config(p)
    p.set_defaults(handler=cmd_index)

    p = subparsers.add_parser(
        "preflight",
        help="check that this machine can run a config (GPU, downloads) and that its checkpoints will merge "
        "(reads only their config.json and tokenizer_config.json)",
    )
    _add_config(p)
    p.add_argument("--no-hub", action="store_true", help="skip the checkpoint compatibility report (offline)")
    p.add_argument("--base", action="append", default=None, metavar="NAME",
                   help="only this base (repeatable; default all of the config's bases)")
    p.add_argument("--no-gpu-check", action="store_true",
                   help="the jobs run on other machines (SLURM, from a login node): skip this machine's GPU check")
    p.add_argument("--downloads-pending", action="store_true",
                   help="checkpoints not downloaded yet are not a problem (a download follows, as in `repro "
                        "reproduce`); a gated one without HF_TOKEN still is")
    p.set_defaults(handler=cmd_preflight)


def load_for_cli(args):
    """(loaded config, runs dir) for a sub-command with --config/--runs-dir."""
    loaded = load_config(args.config)
    runs_dir = args.runs_dir if args.runs_dir is not None else loaded.resolve(f"{RUNS_DIR}/{loaded.name}")
    return loaded, Path(runs_dir)


def cmd_plan(args) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import Part, build_plan, write_plan

    loaded, runs_dir = load_for_cli(args)
    if getattr(args, "appendix_configs", False):
        for config_path in loaded.appendix_config_paths():
            print(config_path)
        return 0
    plan = build_plan(loaded)
    path = write_plan(plan, runs_dir)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2, sort_keys=True))
        return 0
    for base, counts in plan.base_counts().items():
        merges, sweeps = counts.merges, counts.sweeps
        if merges or counts.singles:
            merge_text = ", ".join(f"{label} {v}" for label, v in merges.items())
            line = f"{base}: {counts.base_evaluations} base + {counts.singles} single-checkpoint evaluations"
            if merges:
                line += f"; merges: {merge_text} ({sum(merges.values())} total)"
            if sweeps:
                line += "; sweep merges: " + ", ".join(f"{sweep} {label} {v}" for (sweep, label), v in sweeps.items())
            print(line)
        if counts.geometry:
            print(f"{base}: {counts.geometry} geometry job (task vectors of all {counts.pool} checkpoints)")
        homogeneous = counts.homogeneous
        if homogeneous:
            print(f"{base} (appendix E): {counts.homogeneous_bases} base evaluation + "
                  f"{sum(homogeneous.values())} homogeneous merges ({len(homogeneous)} experiment x method)")
    experiments = experiment_job_counts(plan)
    if len(experiments) > 1 or plan.sweep_points or plan.of_part(Part.GEOMETRY):
        print("jobs per experiment (a job two experiments share, e.g. a base evaluation, counts in each and runs once):")
        for name, count in experiments.items():
            print(f"  {name}: {count}")
    if loaded.config.reuse_results_from:
        # loaded when the command runs, so that `repro --help` stays light
        from repro.results import ResultsStore

        ids = {job.id for job in plan.jobs}
        for name in loaded.config.reuse_results_from:
            done = len(ids & ResultsStore(runs_dir.parent / name).finished_ids())
            print(f"reusable from runs/{name}/ (same content ids, already finished): {done}")
    print(f"{len(plan.jobs)} jobs; plan written to {path}")
    # loaded when the command runs, so that `repro --help` stays light
    from repro.cli.budget_output import print_budget

    return print_budget(args, loaded, plan, runs_dir)


def experiment_job_counts(plan) -> dict[str, int]:
    """Experiment -> number of distinct jobs it needs: the in-the-wild grid, each sweep (its points plus
    the base and single-checkpoint evaluations of its bases), the geometry and each homogeneous experiment."""
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import Part

    jobs = {job.id: job for job in plan.jobs}
    out: dict[str, set[str]] = {}
    references = {job.base: set() for job in plan.jobs}
    for job in plan.references():
        references[job.base].add(job.id)
    grid = {job.id for job in plan.grid_merges()}
    if grid:
        out["in-the-wild grid (Tables 1-3, Figs 3-10)"] = grid | set().union(*references.values())
    for point in plan.sweep_points:
        out.setdefault(f"sweep {point.sweep}", set()).update({point.job_id} | references[point.base])
    geometry = {job.id for job in plan.of_part(Part.GEOMETRY)}
    if geometry:
        out["geometry (Figs 19-26)"] = geometry
    homogeneous_bases = set()
    for job in plan.homogeneous_jobs():
        if job.part_of.name is None:  # the base evaluation of the homogeneous experiments
            homogeneous_bases.add(job.id)
        else:
            out.setdefault(f"homogeneous {job.part_of.name}", set()).add(job.id)
    for name in out:
        if name.startswith("homogeneous "):
            out[name] |= {i for i in homogeneous_bases if jobs[i].base in {jobs[j].base for j in out[name]}}
    return {name: len(ids) for name, ids in out.items()}


def cmd_run(args) -> int:
    # Library progress bars (lm-eval, transformers, mergekit) would bury the runner's own bar: tqdm reads
    # TQDM_* defaults when first imported, so set this before anything imports it. Our bar passes
    # `disable=` explicitly and is unaffected.
    os.environ.setdefault("TQDM_DISABLE", "1")
    if getattr(args, "with_appendix", False):
        # loaded when the command runs, so that `repro --help` stays light
        from repro.cli.run_with_appendix import cmd_run_with_appendix

        return cmd_run_with_appendix(args)
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import build_plan, write_plan
    from repro.reproduce import only_bases, plan_for_table, select_bases
    from repro.runner.local_runner import run_parallel, run_worker

    loaded, runs_dir = load_for_cli(args)
    plan = build_plan(loaded)
    write_plan(plan, runs_dir)
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import JobKind

    kinds = set(args.only.split(",")) if args.only else None
    if kinds and not kinds <= set(JobKind):
        raise RunnerError(f"--only takes {', '.join(JobKind)}, not {args.only!r}")
    kinds = {JobKind(kind) for kind in kinds} if kinds else None
    # loaded when the command runs, so that `repro --help` stays light
    from repro.runner.reuse import reuse_finished_jobs

    for name, count in reuse_finished_jobs(loaded, plan, runs_dir).items():
        if count:
            print(f"reused {count} finished job(s) of runs/{name}/ (same content ids)", file=sys.stderr)
    if getattr(args, "for_table", None):
        plan = plan_for_table(loaded, plan, args.for_table)
    bases = select_bases(loaded, args.base)
    plan = only_bases(plan, bases)
    # Build offline worlds / check downloads once, before any worker or array task starts.
    from repro.runner.model_sources import ModelSources

    ModelSources(loaded, runs_dir.parent).prepare(bases)
    # loaded when the command runs, so that `repro --help` stays light
    from repro.runner.gpus import auto_workers, worker_gpus

    if args.workers == "auto":
        args.workers = auto_workers(loaded) if args.executor == "local" else None
    gpus = worker_gpus(args.gpus, args.workers, loaded) if args.executor == "local" else None
    workers = args.workers or (len(gpus) if gpus else 1)
    if args.executor == "slurm":
        # loaded when the command runs, so that `repro --help` stays light
        from repro.runner.slurm_executor import run_on_slurm

        summary = run_on_slurm(loaded, plan, runs_dir, args.config, retry_failed=args.retry_failed, kinds=kinds,
                               overrides=args.slurm_option, progress=not args.no_progress)
    elif workers > 1 or gpus:
        summary = run_parallel(args.config, runs_dir, plan, workers, retry_failed=args.retry_failed,
                               kinds=kinds, progress=not args.no_progress, gpus=gpus)
    else:
        summary = run_worker(loaded, plan, runs_dir, retry_failed=args.retry_failed, kinds=kinds,
                             progress=not args.no_progress)
    if summary.unfinished:
        print(f"{len(summary.unfinished)} job(s) did not finish (a worker or array task died or was cancelled); "
              "rerun `repro run` to run them", file=sys.stderr)
    # loaded when the command runs, so that `repro --help` stays light
    from repro.results import ResultsStore

    store = ResultsStore(runs_dir)
    store.rebuild_index()
    failed = store.failed_ids() & {j.id for j in plan.jobs}
    if failed:
        print(f"{len(failed)} job(s) failed; see `repro status --config {args.config}`; "
              "rerun with --retry-failed after fixing the cause", file=sys.stderr)
        return 1
    return 0 if summary.ok else 1


def status_table(plan, store, board) -> list[dict]:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import JobKind

    finished, failed, running = store.finished_ids(), store.failed_ids(), set(board.live_claims())
    rows: dict[tuple[str, str], dict] = {}
    for job in plan.jobs:
        key = (job.base, job.label if job.kind is JobKind.MERGE else str(job.kind))
        if job.experiment:
            key = (job.base, f"{job.experiment}: {job.label}" if job.label else f"{job.kind} ({job.experiment})")
        row = rows.setdefault(key, {"base": key[0], "what": key[1], "done": 0, "running": 0, "failed": 0,
                                    "pending": 0})
        if job.id in finished:
            row["done"] += 1
        elif job.id in running:
            row["running"] += 1
        elif job.id in failed:
            row["failed"] += 1
        else:
            row["pending"] += 1
    return list(rows.values())


def cmd_status(args) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from tabulate import tabulate

    from repro.plan import build_plan
    from repro.results import ResultsStore
    from repro.runner.claims import ClaimBoard

    loaded, runs_dir = load_for_cli(args)
    plan = build_plan(loaded)
    store = ResultsStore(runs_dir)
    rows = status_table(plan, store, ClaimBoard(runs_dir / "claims"))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(tabulate(rows, headers="keys"))
        for job_id in sorted(store.failed_ids() & {j.id for j in plan.jobs}):
            print(f"failed {job_id}: {store.read_failure(job_id)['error']}")
    return 0


def cmd_index(args) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.results import ResultsStore

    _, runs_dir = load_for_cli(args)
    print(ResultsStore(runs_dir).rebuild_index())
    return 0


def cmd_preflight(args) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.reproduce import restricted, select_bases
    from repro.runner.preflight import checkpoint_report, preflight_problems

    loaded, runs_dir = load_for_cli(args)
    loaded = restricted(loaded, select_bases(loaded, args.base))
    problems = preflight_problems(loaded, downloads_pending=args.downloads_pending, gpu_here=not args.no_gpu_check)
    if loaded.config.lockfile is not None and not args.no_hub:
        report = checkpoint_report(loaded, token=os.environ.get("HF_TOKEN") or None)
        for line in report.lines:
            print(line)
        for note in report.notes:
            print(f"note: {note}")
        problems += report.blocking
    if problems:
        print(f"cannot run {args.config} on this machine:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    print(f"{args.config}: ready to run")
    return 0
