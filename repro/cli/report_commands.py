"""`repro report table1|table2|figures|homogeneous|table6`: paper tables and figures from stored results
(no models, no GPU needed)."""

from __future__ import annotations

from pathlib import Path

REPORTS = (
    ("table1", "Table 1: % of models beating the base / mean accuracy delta (%% points)"),
    ("table2", "Table 2: % of models beating the best single checkpoint / mean delta"),
    ("figures", "Figures 3 (accuracy vs n) and 4 (task-vector norm vs n) as PNG/PDF"),
    ("homogeneous", "Appendix E: homogeneous vs mixed-domain merges per suite"),
)


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="render the paper's tables and figures from stored results")
    sub = p.add_subparsers(dest="report", metavar="WHAT", required=True)
    for name, help_text in REPORTS:
        report = sub.add_parser(name, help=help_text)
        report.add_argument("--config", required=True, type=Path)
        report.add_argument("--runs-dir", type=Path, default=None)
        report.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/<config>)")
        report.set_defaults(handler=cmd_report, report=name)
    ci = sub.add_parser("ci", help="table1_ci/table2_ci/table3_ci: cells with paired bootstrap intervals")
    ci.add_argument("--config", required=True, type=Path)
    ci.add_argument("--runs-dir", type=Path, default=None)
    ci.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/<config>)")
    ci.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    ci.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ci.set_defaults(handler=cmd_report_ci)
    t6 = sub.add_parser("table6", help="Table 6: n-shot per benchmark, from configs/suites.yaml")
    t6.add_argument("--suites", type=Path, default=None, help="suites file (default configs/suites.yaml)")
    t6.add_argument("--suite", default="paper16")
    t6.add_argument("--out", type=Path, default=None, help="output folder (default paper_artifacts/)")
    t6.set_defaults(handler=cmd_table6)


def cmd_report(args) -> int:
    from repro.cli.run_commands import load_for_cli
    from repro.plan import build_plan
    from repro.results import ResultsStore

    loaded, runs_dir = load_for_cli(args)
    out = Path(args.out if args.out is not None else loaded.resolve(f"paper_artifacts/{loaded.name}"))
    plan, store = build_plan(loaded), ResultsStore(runs_dir)
    if args.report in ("table1", "table2"):
        from repro.report.results_view import collect
        from repro.report.table1 import build_table1, build_table2, to_markdown, write_table1

        table = (build_table1 if args.report == "table1" else build_table2)(collect(plan, store))
        print(to_markdown(table))
        paths = write_table1(table, out, stem=args.report)
    elif args.report == "figures":
        from repro.report.figures import write_figures

        paths = write_figures(plan, store, out)
    else:
        from repro.report.homogeneous_table import build_homogeneous_table, write_homogeneous_table

        paths = write_homogeneous_table(build_homogeneous_table(plan, store), out)
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_report_ci(args) -> int:
    from repro.cli.run_commands import load_for_cli
    from repro.errors import ReproError
    from repro.plan import build_plan
    from repro.report.ci_tables import write_ci_tables
    from repro.results import ResultsStore

    if args.resamples < 100:
        raise ReproError("--resamples must be at least 100 (10000 recommended)", field="--resamples")
    loaded, runs_dir = load_for_cli(args)
    out = Path(args.out if args.out is not None else loaded.resolve(f"paper_artifacts/{loaded.name}"))
    paths = write_ci_tables(build_plan(loaded), ResultsStore(runs_dir), out, loaded,
                            resamples=args.resamples, seed=args.seed)
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_table6(args) -> int:
    from repro.report.table6 import DEFAULT_SUITES_PATH, REPO_ROOT, write_table6

    out = args.out if args.out is not None else REPO_ROOT / "paper_artifacts"
    for path in write_table6(out, args.suites or DEFAULT_SUITES_PATH, args.suite):
        print(f"written: {path}")
    return 0
