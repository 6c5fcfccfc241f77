"""`repro run --with-appendix`: a config and then its appendix configs (`report.appendix_configs`) in one
run, with one set of local workers (repro.runner.multi_run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from repro.errors import ConfigError, ReproError, RunnerError
from repro.facts.config import load_config
from repro.facts.paths import RUNS_DIR

FLAG = "--with-appendix"


def _conflicts(args) -> list[tuple[str, str]]:
    """The options `--with-appendix` does not combine with (each selects jobs or bases of one config, or
    runs on SLURM, where each config is its own array job)."""
    out = []
    if args.executor != "local":
        out.append((f"--executor {args.executor}",
                    f"{FLAG} runs the configs with one set of local workers; on SLURM run each config "
                    "with its own `repro run --executor slurm`"))
    for option, value in (("--only", args.only), ("--for", getattr(args, "for_table", None)),
                          ("--base", args.base)):
        if value:
            out.append((option, f"selects jobs of one config and cannot be combined with {FLAG}; run "
                                "`repro run` of each config separately to select jobs"))
    return out


def load_all(config_path: Path) -> list:
    """The config and its appendix configs, loaded and validated; every problem of every file is reported
    together (ConfigError)."""
    loaded = load_config(config_path)
    others, problems = [], []
    for path in loaded.appendix_config_paths():
        try:
            others.append(load_config(path))
        except ReproError as error:
            problems += [(None, line) for line in str(error).splitlines()]
    if problems:
        raise ConfigError(problems=problems)
    configs = [loaded, *others]
    names = [config.name for config in configs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"configs named {', '.join(twice)} more than once would share one results folder; "
                          "give each appendix config its own `name`", path=str(loaded.path),
                          field="report.appendix_configs")
    return configs


def cmd_run_with_appendix(args) -> int:
    conflicts = _conflicts(args)
    if conflicts:
        raise RunnerError(problems=conflicts)
    os.environ.setdefault("TQDM_DISABLE", "1")  # as `repro run`: library bars off before tqdm is imported
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import build_plan, write_plan
    from repro.results import ResultsStore
    from repro.runner.gpus import auto_workers, worker_gpus
    from repro.runner.model_sources import ModelSources
    from repro.runner.multi_run import RunTarget, run_targets_in_worker, run_targets_parallel
    from repro.runner.reuse import reuse_finished_jobs

    configs = load_all(args.config)
    main = configs[0]
    runs_dir = Path(args.runs_dir if args.runs_dir is not None else main.resolve(f"{RUNS_DIR}/{main.name}"))
    targets = []
    for loaded in configs:
        # appendix configs beside the config's folder: where their `reuse_results_from` and `repro report all`
        # look for them, and where the worlds folder is shared
        target_dir = runs_dir if loaded is main else runs_dir.parent / loaded.name
        plan = build_plan(loaded)
        write_plan(plan, target_dir)
        for name, count in reuse_finished_jobs(loaded, plan, target_dir).items():
            if count:
                print(f"{loaded.name}: reused {count} finished job(s) of runs/{name}/ (same content ids)",
                      file=sys.stderr)
        # worlds are built here, in config order (a later world may copy an earlier one's base)
        ModelSources(loaded, target_dir.parent).prepare(list(loaded.base_names))
        targets.append(RunTarget(loaded.path, plan, target_dir))
    workers = auto_workers(main) if args.workers == "auto" else args.workers
    gpus = worker_gpus(args.gpus, workers, main)
    workers = workers or (len(gpus) if gpus else 1)
    if workers > 1 or gpus:
        summaries = run_targets_parallel(targets, workers, retry_failed=args.retry_failed,
                                         progress=not args.no_progress, gpus=gpus)
    else:
        summaries = run_targets_in_worker(targets, retry_failed=args.retry_failed, progress=not args.no_progress,
                                          loaded=configs)
    code = 0
    for loaded, target, summary in zip(configs, targets, summaries, strict=True):
        if summary.unfinished:
            print(f"{loaded.name}: {len(summary.unfinished)} job(s) did not finish (a worker died or was "
                  "cancelled); rerun `repro run` to run them", file=sys.stderr)
        store = ResultsStore(target.runs_dir)
        store.rebuild_index()
        failed = store.failed_ids() & {j.id for j in target.plan.jobs}
        if failed:
            shown = args.config if loaded is main else loaded.path
            print(f"{len(failed)} job(s) failed; see `repro status --config {shown}`; "
                  "rerun with --retry-failed after fixing the cause", file=sys.stderr)
        if failed or not summary.ok:
            code = 1
    return code
