"""`repro reproduce`: pin -> preflight -> download -> run -> render -> verify, each only if needed.

What each step has to do is decided by repro.reproduce right before it runs; the step itself is the
kit's own sub-command (`repro lock resolve`, `repro preflight`, ...), called in this process, so
`repro reproduce` does exactly what those commands do and stops at the first one that fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

from repro import cli
from repro.facts.config import load_config
from repro.facts.paths import RUNS_DIR
from repro.reproduce_targets import STEPS, TARGETS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="pin, preflight, download, run, render and verify a config: only what is missing, resumable",
    )
    p.add_argument("--config", required=True, type=Path, help="experiment config, e.g. configs/paper.yaml")
    p.add_argument("--for", dest="target", choices=TARGETS, default="table1",
                   help="what to reproduce: the jobs one table needs, or all of the config's jobs (default table1)")
    p.add_argument("--base", action="append", default=None, metavar="NAME",
                   help="only this base, in every step (repeatable; default: all of the config's bases)")
    p.add_argument("--runs-dir", type=Path, default=None, help="results folder (default: runs/<config name>)")
    p.add_argument("--skip", action="append", default=[], choices=STEPS, help="leave out this step (repeatable)")
    p.add_argument("--costs", type=Path, default=None, help="per-model GPU costs (default configs/costs.yaml)")
    run = p.add_argument_group("run options (passed to `repro run`)")
    run.add_argument("--executor", choices=["local", "slurm"], default="local")
    run.add_argument("--workers", type=int, default=None, help="local worker processes")
    run.add_argument("--gpus", default=None, help="GPUs for the workers: 0,1,2,3 or all (one worker per GPU)")
    run.add_argument("--retry-failed", action="store_true", help="also rerun jobs that failed before")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(handler=cmd_reproduce)


def cmd_reproduce(args) -> int:
    # the library: loaded when the command runs, so that `repro --help` stays light
    from repro.reproduce import download_todo, pin_todo, plan_for, run_todo, select_bases

    config = str(args.config)
    bases = select_bases(load_config(args.config), args.base)
    base_args = [a for name in (args.base or []) for a in ("--base", name)]
    runs_args = ["--runs-dir", str(args.runs_dir)] if args.runs_dir else []
    print(f"== reproduce {args.target} of {config} for {', '.join(bases)}", flush=True)

    def step(name: str, decide, argv: list[str]) -> int:
        """Run step `name` (`repro ARGV`) if `decide()` (None: always) says there is something to do."""
        if name in args.skip:
            print(f"== {name}: skipped (--skip {name})", flush=True)
            return 0
        todo = decide() if decide is not None else None
        if todo is not None and todo.reason is None:
            print(f"== {name}: nothing to do", flush=True)
            return 0
        print(f"== {name}: {todo.reason if todo is not None else ' '.join(['repro', *argv])}", flush=True)
        for line in todo.cost if todo is not None else ():
            print(f"   {line}", flush=True)
        code = cli.main(argv)  # looked up when called, not bound at import
        if code:
            print(f"== {name} stopped (exit {code}); fix what it says and run the same command again: the "
                  "steps already done are not repeated", file=sys.stderr, flush=True)
        return code

    if code := step("pin", lambda: pin_todo(load_config(args.config), bases),
                    ["lock", "resolve", "--config", config, "--as-of", "config", *base_args]):
        return code
    elsewhere = ["--no-gpu-check"] if args.executor == "slurm" else []  # the GPUs are the cluster's
    if code := step("preflight", None, ["preflight", "--config", config, "--downloads-pending", *elsewhere,
                                        *base_args, *runs_args]):
        return code
    if code := step("download", lambda: download_todo(load_config(args.config), bases),
                    ["download", "--config", config, *base_args]):
        return code
    run_argv = ["run", "--config", config, *base_args, *runs_args]
    if args.target != "all":
        run_argv += ["--for", args.target]
    for flag, value in (("--executor", args.executor), ("--workers", args.workers), ("--gpus", args.gpus)):
        if value is not None:
            run_argv += [flag, str(value)]
    run_argv += [a for kv in args.slurm_option for a in ("--slurm-option", kv)]
    run_argv += ["--retry-failed"] * args.retry_failed + ["--no-progress"] * args.no_progress
    def decide_run():
        loaded = load_config(args.config)
        runs_dir = args.runs_dir or loaded.resolve(f"{RUNS_DIR}/{loaded.name}")
        return run_todo(loaded, plan_for(loaded, args.target, bases), runs_dir, args.costs,
                        retry_failed=args.retry_failed)

    if code := step("run", decide_run, run_argv):
        return code
    if code := step("render", None, ["report", "all", "--config", config, *runs_args]):
        return code
    return step("verify", None, ["verify", "--run", config, *runs_args])
