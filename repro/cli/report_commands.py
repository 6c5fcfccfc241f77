"""`repro report table1|table2|table6`: render paper tables from stored results (no models needed)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="render the paper's tables from stored results")
    sub = p.add_subparsers(dest="report", metavar="TABLE", required=True)
    for name, help_text in (
        ("table1", "Table 1: % of models beating the base / mean accuracy delta (%% points)"),
        ("table2", "Table 2: % of models beating the best single checkpoint / mean delta"),
    ):
        table = sub.add_parser(name, help=help_text)
        table.add_argument("--config", required=True, type=Path)
        table.add_argument("--runs-dir", type=Path, default=None)
        table.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/<config>)")
        table.set_defaults(handler=cmd_table, table=name)
    fig = sub.add_parser("figures", help="Figures 3 (accuracy vs n) and 4 (task-vector norm vs n) as PNG/PDF")
    fig.add_argument("--config", required=True, type=Path)
    fig.add_argument("--runs-dir", type=Path, default=None)
    fig.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/<config>)")
    fig.set_defaults(handler=cmd_figures)
    hom = sub.add_parser("homogeneous", help="Appendix E: homogeneous vs mixed-domain merges per suite")
    hom.add_argument("--config", required=True, type=Path)
    hom.add_argument("--runs-dir", type=Path, default=None)
    hom.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/<config>)")
    hom.set_defaults(handler=cmd_homogeneous)
    t6 = sub.add_parser("table6", help="Table 6: n-shot per benchmark, from configs/suites.yaml")
    t6.add_argument("--suites", type=Path, default=None, help="suites file (default configs/suites.yaml)")
    t6.add_argument("--suite", default="paper16")
    t6.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/)")
    t6.set_defaults(handler=cmd_table6)


def cmd_figures(args) -> int:
    from repro.cli.run_commands import load_for_cli
    from repro.plan import build_plan
    from repro.report.figures import write_figures
    from repro.results import ResultsStore

    loaded, runs_dir = load_for_cli(args)
    out = args.out if args.out is not None else loaded.resolve(f"paper_artifacts/{loaded.name}")
    for path in write_figures(build_plan(loaded), ResultsStore(runs_dir), Path(out)):
        print(f"written: {path}")
    return 0


def cmd_homogeneous(args) -> int:
    from repro.cli.run_commands import load_for_cli
    from repro.plan import build_plan
    from repro.report.homogeneous_table import build_homogeneous_table, write_homogeneous_table
    from repro.results import ResultsStore

    loaded, runs_dir = load_for_cli(args)
    out = args.out if args.out is not None else loaded.resolve(f"paper_artifacts/{loaded.name}")
    table = build_homogeneous_table(build_plan(loaded), ResultsStore(runs_dir))
    for path in write_homogeneous_table(table, Path(out)):
        print(f"written: {path}")
    return 0


def cmd_table6(args) -> int:
    from repro.report.table6 import DEFAULT_SUITES_PATH, REPO_ROOT, write_table6

    out = args.out if args.out is not None else REPO_ROOT / "paper_artifacts"
    for path in write_table6(out, args.suites or DEFAULT_SUITES_PATH, args.suite):
        print(f"written: {path}")
    return 0


def cmd_table(args) -> int:
    from repro.cli.run_commands import load_for_cli
    from repro.plan import build_plan
    from repro.report.results_view import collect
    from repro.report.table1 import build_table1, build_table2, to_markdown, write_table1
    from repro.results import ResultsStore

    loaded, runs_dir = load_for_cli(args)
    out = args.out if args.out is not None else loaded.resolve(f"paper_artifacts/{loaded.name}")
    build = build_table1 if args.table == "table1" else build_table2
    table = build(collect(build_plan(loaded), ResultsStore(runs_dir)))
    paths = write_table1(table, Path(out), stem=args.table)
    print(to_markdown(table))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0
