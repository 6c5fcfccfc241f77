"""`repro report table1`: render paper tables from stored results (no models needed)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="render the paper's tables from stored results")
    sub = p.add_subparsers(dest="report", metavar="TABLE", required=True)
    t1 = sub.add_parser("table1", help="Table 1: % of merges beating the base / mean accuracy delta")
    t1.add_argument("--config", required=True, type=Path)
    t1.add_argument("--runs-dir", type=Path, default=None)
    t1.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/<config>)")
    t1.set_defaults(handler=cmd_table1)


def cmd_table1(args) -> int:
    from repro.cli.run_commands import load_for_cli
    from repro.plan import build_plan
    from repro.report.results_view import collect
    from repro.report.table1 import build_table1, to_markdown, write_table1
    from repro.results import ResultsStore

    loaded, runs_dir = load_for_cli(args)
    out = args.out if args.out is not None else loaded.resolve(f"paper_artifacts/{loaded.name}")
    table = build_table1(collect(build_plan(loaded), ResultsStore(runs_dir)))
    paths = write_table1(table, Path(out))
    print(to_markdown(table))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0
