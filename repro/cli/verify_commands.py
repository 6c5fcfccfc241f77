"""`repro verify --published` (the published tables' own arithmetic) and `repro verify --run CONFIG`
(a run's regenerated Tables 1-3 against the published cells). Findings are information: exit 0."""

from __future__ import annotations

from pathlib import Path

from repro.atomic_io import atomic_write_text
from repro.cli.run_commands import load_for_cli
from repro.errors import ReproError
from repro.facts.paths import PAPER_ARTIFACTS_DIR, repo_path
from repro.facts.reference import load_reference


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="check the published tables, or a run against them")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--published", action="store_true",
                      help="offline: Average rows, Table 2 vs 1, roundings, logic, text vs tables")
    what.add_argument("--run", type=Path, metavar="CONFIG", help="compare CONFIG's stored results with the paper")
    p.add_argument("--reference", type=Path, default=None,
                   help="folder with tables.csv (+ text_claims.yaml, names.yaml); default paper_artifacts/reference")
    p.add_argument("--runs-dir", type=Path, default=None, help="results folder of --run (default runs/<config>)")
    p.add_argument("--out", type=Path, default=None,
                   help="Markdown report (default paper_artifacts/verify/published.md or <config>/verify_run.md)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples for --run (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed for --run")
    p.set_defaults(handler=cmd_verify)


def cmd_verify(args) -> int:
    if args.resamples < 100:
        raise ReproError("must be at least 100 (10000 recommended)", field="--resamples")
    reference = load_reference(args.reference)
    if args.published:
        # loaded when the command runs, so that `repro --help` stays light
        from repro.report.published_checks import check_published, render_markdown, summary_line

        findings = check_published(reference)
        out = args.out or repo_path(PAPER_ARTIFACTS_DIR) / "verify" / "published.md"
        atomic_write_text(out, render_markdown(reference, findings))
        print(f"{summary_line(reference, findings)}; report: {out}")
        return 0

    # numpy and the library: loaded when the command runs, so that `repro --help` stays light
    from repro.plan import build_plan
    from repro.report.verify_run import compare_run, render_comparison
    from repro.results import ResultsStore

    args.config = args.run
    loaded, runs_dir = load_for_cli(args)
    plan = build_plan(loaded)
    comparison = compare_run(plan, ResultsStore(runs_dir), reference, loaded=loaded,
                             resamples=args.resamples, seed=args.seed)
    out = args.out or loaded.resolve(f"{PAPER_ARTIFACTS_DIR}/{loaded.name}/verify_run.md")
    atomic_write_text(out, render_comparison(comparison))
    print(f"{comparison.summary_line()}; report: {out}")
    # loaded when the command runs, so that `repro --help` stays light
    from repro.report.fidelity_checks import ordering_summary

    for count in comparison.boosting:
        print(f"subspace boosting: {count.sentence()}")
    print(ordering_summary(comparison.norm_orders))
    return 0
