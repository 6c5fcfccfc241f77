"""`repro report all|table1|table2|table3|figures|homogeneous|table6`: paper tables and figures from stored
results (no models, no GPU needed); `repro geometry`: run a config's task-vector geometry jobs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from repro.cli.run_commands import load_for_cli
from repro.errors import ConfigError, ReproError
from repro.facts.config import load_config
from repro.facts.paths import PAPER_ARTIFACTS_DIR, repo_path
from repro.output_folder import check_output_folder, mark_output_folder

REPORTS = (
    ("all", "every table and figure the stored results support, manifest.json and index.html"),
    ("table1", "Table 1: %% of models beating the base / mean accuracy delta (%% points)"),
    ("table2", "Table 2: %% of models beating the best single checkpoint / mean delta"),
    ("table3", "Table 3: as Table 1 for the subspace methods of the config's report: section"),
    ("figures", "every figure the stored results support (Figs 3-4, 6-28) as PNG/PDF"),
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
        if name in ("all", "figures"):
            report.add_argument("--jobs", type=int, default=None, metavar="N",
                                help="processes drawing the figures (default: the CPUs available, used from 4 "
                                     "figures on; 1: one after the other in this process); same files either way")
        if name == "all":
            report.add_argument("--no-appendix", action="store_true",
                                help="leave out the results of the config's report.appendix_configs (by default "
                                     "their tables and figures join this page where they have results)")
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

    g = subparsers.add_parser("geometry", help="Appendix D: pairwise task-vector dot products and norms of a "
                              "config's bases (streamed from the checkpoints), stored as results")
    g.add_argument("--config", required=True, type=Path)
    g.add_argument("--runs-dir", type=Path, default=None)
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(handler=cmd_geometry)


def cmd_report(args) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import build_plan
    from repro.results import ResultsStore

    if getattr(args, "jobs", None) is not None:
        # the library: loaded when the command runs, so that `repro --help` stays light
        from repro.report.figure_pool import check_jobs

        check_jobs(args.jobs)
    loaded, runs_dir = load_for_cli(args)
    out = _checked_out(args.out) or Path(loaded.resolve(f"{PAPER_ARTIFACTS_DIR}/{loaded.name}"))
    plan, store = build_plan(loaded), ResultsStore(runs_dir)
    if args.report == "all":
        # numpy: deferred so that importing this module does not load it
        from repro.report.render_all import render_all

        appendix = [] if args.no_appendix else _appendix_results(loaded, runs_dir)
        artifacts, skipped = render_all(loaded, plan, store, out, appendix, jobs=args.jobs)
        for artifact in artifacts:
            print(f"{artifact.title} ({artifact.n_results} results): {', '.join(p.name for p in artifact.files)}")
        for reason in skipped:
            print(f"not rendered: {reason}")
        _mark(out)
        print(f"written: {out / 'index.html'} ({len(artifacts)} tables and figures)")
        return 0
    if args.report in ("table1", "table2", "table3"):
        # numpy and the library: loaded when the command runs, so that `repro --help` stays light
        from repro.report.results_view import collect
        from repro.report.table1 import build_table1, build_table2
        from repro.report.table_text import to_markdown, write_table

        build = build_table2 if args.report == "table2" else build_table1
        table = build(collect(plan, store), loaded.report_labels(args.report))
        print(to_markdown(table))
        paths = write_table(table, out, stem=args.report)
    elif args.report == "figures":
        # numpy and the library: loaded when the command runs, so that `repro --help` stays light
        from repro.report.artifacts import load_records
        from repro.report.figure_pool import FigureRenderer
        from repro.report.render_all import render_figures

        with FigureRenderer(args.jobs) as renderer:
            figures = render_figures(loaded, plan, load_records(plan, store), out, renderer=renderer)
        paths = [path for f in figures for path in f.files]
    else:
        # loaded when the command runs, so that `repro --help` stays light
        from repro.report.homogeneous_table import build_homogeneous_table, write_homogeneous_table

        paths = write_homogeneous_table(build_homogeneous_table(plan, store), out)
    _mark(out)
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def _appendix_results(loaded, runs_dir: Path) -> list:
    """The config's appendix configs that have results in runs/ beside its own (runs/<appendix name>/),
    each with its plan and store. One that does not load is named and left out."""
    # numpy and the library: loaded when the command runs, so that `repro --help` stays light
    from repro.plan import build_plan
    from repro.report.render_all import AppendixResults
    from repro.results import ResultsStore

    parts = []
    for path in loaded.appendix_config_paths():
        try:
            other = load_config(path)
        except ReproError as error:
            print(f"appendix config {path} left out of the page: {error}", file=sys.stderr)
            continue
        store = ResultsStore(runs_dir.parent / other.name)
        if store.finished_ids():
            parts.append(AppendixResults(other, build_plan(other), store))
    return parts


def cmd_report_ci(args) -> int:
    # numpy and the library: loaded when the command runs, so that `repro --help` stays light
    from repro.plan import build_plan
    from repro.report.ci_tables import write_ci_tables
    from repro.results import ResultsStore

    if args.resamples < 100:
        raise ReproError("--resamples must be at least 100 (10000 recommended)", field="--resamples")
    loaded, runs_dir = load_for_cli(args)
    out = _checked_out(args.out) or Path(loaded.resolve(f"{PAPER_ARTIFACTS_DIR}/{loaded.name}"))
    paths = write_ci_tables(build_plan(loaded), ResultsStore(runs_dir), out, loaded,
                            resamples=args.resamples, seed=args.seed)
    _mark(out)
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_table6(args) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.report.table6 import DEFAULT_SUITES_PATH, write_table6

    out = _checked_out(args.out) or repo_path(PAPER_ARTIFACTS_DIR)
    for path in write_table6(out, args.suites or DEFAULT_SUITES_PATH, args.suite):
        print(f"written: {path}")
    _mark(args.out)
    return 0


def _checked_out(out: Path | None) -> Path | None:
    """An explicit --out: refused when it holds files no `repro report` wrote (see repro.output_folder)."""
    if out is None:
        return None
    return check_output_folder(out, "repro report", provenance_files=("manifest.json",))


def _mark(out: Path | None) -> None:
    """Mark a folder as written by `repro report` (every config's artifacts folder; table6's only when
    --out names one, as its default is paper_artifacts/ itself)."""
    if out is not None:
        mark_output_folder(out, "repro report")


def cmd_geometry(args) -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")
    # loaded when the command runs, so that `repro --help` stays light
    from repro.plan import JobKind, build_plan, write_plan
    from repro.results import ResultsStore
    from repro.runner.local_runner import run_worker
    from repro.runner.model_sources import ModelSources

    loaded, runs_dir = load_for_cli(args)
    if loaded.config.geometry is None:
        raise ConfigError("no `geometry:` section: add one (see configs/geometry.yaml) to compute the "
                          "task-vector geometry of this config's bases", path=str(args.config), field="geometry")
    plan = build_plan(loaded)
    write_plan(plan, runs_dir)
    ModelSources(loaded, runs_dir.parent).prepare(loaded.base_names)
    summary = run_worker(loaded, plan, runs_dir, kinds={JobKind.GEOMETRY}, progress=not args.no_progress)
    store = ResultsStore(runs_dir)
    store.rebuild_index()
    # loaded when the command runs, so that `repro --help` stays light
    from repro.report.geometry_figures import cosine_matrix

    for job in plan.of_kind(JobKind.GEOMETRY):
        if not store.has_result(job.id):
            continue
        geometry = store.read_result(job.id).geometry
        cos = cosine_matrix(geometry["total"])
        off = [c for i, row in enumerate(cos) for j, c in enumerate(row) if i < j and c is not None]
        print(f"{job.base}: {len(geometry['tensors'])} tensors, {len(geometry['layers'])} blocks; pairwise cosine "
              f"min {min(off, default=0):+.4f} max {max(off, default=0):+.4f} "
              f"-> {store.result_path(job.id)}")
    return 1 if summary.failed else 0
