"""`repro report all`: every table and figure the stored results of one config support, plus its page.

Reads the config (facts), its plan (which job ids hold what) and its results store; writes into
paper_artifacts/<config name>/ (or `out_dir`):
- Tables 1, 2, 3 (main grid; methods per table from the config's `report:` section) and their companions
  table{1,2,3}_ci (bootstrap intervals, repro.report.ci_tables), Table 4 (lockfile
  groups) and Table 5 (domain suites) for homogeneous configs, Table 6 (n-shot of the config's suite);
- Figures 3, 4, 6, 7-10 (main grid; Figures 3/6 with 95% error bars from the item data), 11-18 (sweeps), 19-26 (geometry), 27-28 (homogeneous) and the
  Appendix E table;
- manifest.json (what was rendered, from how many results) and index.html.
With `appendix` (the config's `report.appendix_configs` that have results, each with its plan and store),
their Tables 4-5, Figures 11-28 and the Appendix E table go into the same folder and onto the same page,
so one page holds the whole paper of a world.
A table or figure without any result is skipped (listed under "not rendered" on the page). Rendering
twice from the same results gives byte-identical files. The figures are drawn by worker processes while the
tables are built (`jobs`, repro.report.figure_pool; `jobs` = 1: one after the other, here): the files are
the same either way, and manifest.json and index.html are written once every figure is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.atomic_io import atomic_write_json
from repro.errors import ReproError
from repro.facts.config import load_config
from repro.facts.suites import load_suites
from repro.report.artifacts import Artifact, load_records
from repro.report.ci_tables import ci_artifacts
from repro.report.fidelity_checks import boosting_counts, norm_ordering, ordering_summary
from repro.report.figure_pool import FigureRenderer
from repro.report.figures import main_figures
from repro.report.geometry_figures import geometry_figures
from repro.report.homogeneous_figures import homogeneous_figures
from repro.report.homogeneous_table import build_homogeneous_table, write_homogeneous_table
from repro.report.html_page import write_page
from repro.report.paper_correspondence import paper_caption
from repro.report.paper_readings import NOTES
from repro.report.protocol_tables import build_table4, build_table5
from repro.report.results_view import collect
from repro.report.sweep_figures import sweep_figures
from repro.report.table1 import build_table1, build_table2, incomplete_cells
from repro.report.table6 import build_table6, write_table6
from repro.report.table_text import write_table
from repro.results import ResultRecord

TABLE_TITLES = {
    "table1": "Table 1: constructive interference of Task-Arithmetic-based methods (vs. the base model)",
    "table2": "Table 2: Task Arithmetic vs. the best fine-tuned checkpoint",
    "table3": "Table 3: constructive interference of subspace-based methods (vs. the base model)",
    "table4": "Table 4: domain-specific checkpoints of the homogeneous merges",
    "table5": "Table 5: evaluation tasks of the homogeneous merges, by domain",
    "table6": "Table 6: n-fewshot per evaluation task",
    "appendix_e": "Appendix E (Figs 27-28 as a table): suite averages of homogeneous vs. mixed merges",
}


@dataclass(frozen=True)
class AppendixResults:
    """An appendix config of the rendered one (its `report.appendix_configs`), with its plan and store."""

    loaded: Any
    plan: Any
    store: Any


def _grid_count(results, plan, labels: list[str], records) -> int:
    return sum(1 for job in plan.table_jobs(labels) if job.id in records)


def render_all(loaded, plan, store, out_dir: Path, appendix: Sequence[AppendixResults] = (),
               jobs: int | None = None) -> tuple[list[Artifact], list[str]]:
    """Render everything supported (with `appendix`: also what its configs' results support); returns
    (artifacts, what was skipped and why). `jobs`: processes drawing the figures (default: the CPUs; 1: here)."""
    with FigureRenderer(jobs) as renderer:
        return _render_all(loaded, plan, store, Path(out_dir), appendix, renderer)


def _render_all(loaded, plan, store, out_dir: Path, appendix: Sequence[AppendixResults], renderer: FigureRenderer
                ) -> tuple[list[Artifact], list[str]]:
    records = load_records(plan, store)
    artifacts: list[Artifact] = []
    skipped: list[str] = []
    made_by: dict[str, Any] = {}  # artifact key -> the appendix config whose results made it
    appendix_records: dict[str, dict] = {}
    appendix_artifacts: list[Artifact] = []
    for part in appendix:
        part_records = load_records(part.plan, part.store)
        for artifact in _appendix_artifacts(part, part_records, out_dir, renderer):
            if artifact.key not in made_by:
                made_by[artifact.key] = part.loaded
                appendix_artifacts.append(artifact)
        appendix_records.update(part_records)
    results = collect(plan, store)
    grid_results = results.n_results > 0 and bool(results.sizes)
    for table, build in (("table1", build_table1), ("table2", build_table2), ("table3", build_table1)):
        labels = [label for label in loaded.report_labels(table) if label in results.method_labels]
        if not grid_results or not labels:
            why = (f"{NOT_SUPPORTED} (no in-the-wild grid results: merge.sizes)" if not grid_results else
                   f"{NOT_SUPPORTED} (none of the table's methods, report: section, has results)")
            skipped.append(f"{TABLE_TITLES[table]}: {why}")
            continue
        built = build(results, labels)
        artifacts.append(Artifact(table, TABLE_TITLES[table], "table", write_table(built, out_dir, stem=table),
                                  _grid_count(results, plan, labels, records),
                                  notes=[built.footnote, *NOTES[table]], table=(built.headers, built.rows)))
    suites = load_suites(loaded.resolve(loaded.config.evaluation.suites_file))
    for key, built in (("table4", build_table4(loaded)), ("table5", build_table5(loaded, suites))):
        if built is None and key in made_by:
            continue
        if built is None:
            makers = _appendix_makers(loaded).get("homogeneous", [])
            skipped.append(f"{TABLE_TITLES[key]}: {NOT_SUPPORTED} (the config has no homogeneous experiments"
                           f"{'; made by its appendix config ' + ' and '.join(makers) if makers else ''})")
            continue
        artifacts.append(_protocol_table(key, built, out_dir))
    artifacts.append(_table6(loaded, out_dir))
    ci_tables, intervals, ci_skipped = ci_artifacts(loaded, plan, store, out_dir)
    artifacts += ci_tables
    skipped += ci_skipped
    figures = render_figures(loaded, plan, records, out_dir, suites, intervals=intervals, renderer=renderer)
    artifacts += [Artifact(f.key, f.title, "figure", f.files, f.n_results) for f in figures]
    artifacts += appendix_artifacts
    skipped += _missing_figures(loaded, [a.key for a in artifacts if a.kind == "figure"],
                                [part.loaded for part in appendix])
    table = None if "appendix_e" in made_by else _appendix_e(plan, store, records, out_dir)
    if table is not None:
        artifacts.append(table)
    artifacts.sort(key=_order)
    for artifact in artifacts:  # which paper table/figure it is, and what differs (base, suite, ...)
        caption = paper_caption(made_by.get(artifact.key, loaded), artifact.key)
        if caption:
            artifact.notes.insert(0, caption)
    _fidelity_notes(loaded, plan, records, artifacts)
    incomplete = incomplete_cells(results, loaded.report_labels("table1")) if grid_results else []
    every_record = {**appendix_records, **records}
    renderer.finish()  # every figure file is written before the manifest and the page name it
    _write_manifest(loaded, artifacts, skipped, incomplete, every_record, out_dir, appendix)
    write_page(loaded, artifacts, skipped, incomplete, every_record, provenance(every_record), out_dir)
    return artifacts, skipped


def _protocol_table(key: str, built, out_dir: Path) -> Artifact:
    """Table 4 or 5 (homogeneous experiments: checkpoints and domain suites) as an artifact."""
    return Artifact(key, TABLE_TITLES[key], "table", write_table(built, out_dir, stem=key), 0,
                    notes=[built.footnote], table=(built.headers, built.rows))


def _appendix_e(plan, store, records: dict, out_dir: Path) -> Artifact | None:
    """The Appendix E table from the plan's homogeneous jobs that have results (None without any)."""
    count = sum(1 for job in plan.homogeneous_jobs() if job.id in records)
    if not count:
        return None
    built = build_homogeneous_table(plan, store)
    return Artifact("appendix_e", TABLE_TITLES["appendix_e"], "table", write_homogeneous_table(built, out_dir),
                    count, table=(built.headers, built.rows))


def appendix_figures(loaded, plan, records: dict, out_dir: Path, renderer: FigureRenderer | None = None) -> list:
    """Figures 11-18 (sweeps), 19-26 (geometry) and 27-28 (homogeneous) of a config (FigureFile list)."""
    renderer = renderer or FigureRenderer(jobs=1)
    return (sweep_figures(loaded, plan, records, out_dir, renderer)
            + geometry_figures(loaded, plan, records, out_dir, renderer)
            + homogeneous_figures(plan, records, out_dir, renderer))


def _appendix_artifacts(part: AppendixResults, records: dict, out_dir: Path, renderer: FigureRenderer
                        ) -> list[Artifact]:
    """What an appendix config adds: Tables 4-5 (homogeneous), Figures 11-28 and the Appendix E table.
    Its main-grid figures and Tables 1-3 and 6 are the main config's, never drawn from here."""
    loaded = part.loaded
    out: list[Artifact] = []
    if not records:
        return out
    suites = load_suites(loaded.resolve(loaded.config.evaluation.suites_file))
    for key, built in (("table4", build_table4(loaded)), ("table5", build_table5(loaded, suites))):
        if built is not None:
            out.append(_protocol_table(key, built, out_dir))
    out += [Artifact(f.key, f.title, "figure", f.files, f.n_results)
            for f in appendix_figures(loaded, part.plan, records, out_dir, renderer)]
    table = _appendix_e(part.plan, part.store, records, out_dir)
    return out + ([table] if table is not None else [])


def _fidelity_notes(loaded, plan, records, artifacts) -> None:
    """Tables: how many Subspace Boosting merges raised numerically-zero singular values; Figure 4: whether
    the paper's norm ordering holds (`repro.report.fidelity_checks`)."""
    tables = {table: loaded.report_labels(table) for table in ("table1", "table2", "table3")}
    counts = {count.table: count for count in boosting_counts(plan, records, tables)}
    for artifact in artifacts:
        if artifact.key in counts:
            artifact.notes.append(counts[artifact.key].sentence() + " (their tensors depend on the SVD library; "
                                  "see docs/methods.md)")
        elif artifact.key == "fig04_task_vector_norm":
            shown = list(dict.fromkeys(tables["table1"] + tables["table3"]))
            artifact.notes.append(ordering_summary(norm_ordering(plan, records, shown)))


def render_figures(loaded, plan, records: dict, out_dir: Path, suites: dict | None = None,
                   intervals: dict | None = None, renderer: FigureRenderer | None = None) -> list:
    """Every figure the results support: 3, 4, 6, 7-10, 11-18, 19-26, 27-28 (FigureFile list). `renderer`
    draws them (default: here, one after the other); its files exist once its `finish()` returned."""
    renderer = renderer or FigureRenderer(jobs=1)
    if suites is None:
        suites = load_suites(loaded.resolve(loaded.config.evaluation.suites_file))
    all_labels = plan.grid_labels()
    suite = suites[loaded.config.evaluation.suite]
    figures = main_figures(plan, records, out_dir, table1_labels=loaded.report_labels("table1"),
                           table3_labels=loaded.report_labels("table3"), all_labels=all_labels,
                           tasks=[t.name for t in suite.tasks], intervals=intervals,
                           order=loaded.config.report.panel_order, renderer=renderer)
    return figures + appendix_figures(loaded, plan, records, out_dir, renderer)


NOT_SUPPORTED = "not supported by these results"
# The paper's sweep figures (Appendix C) by the first number of each: what it shows.
SWEEP_FIGURES = {11: "Figure 11 (TA λ sweep)", 12: "Figure 12 (TA λ sweep, no normalization)",
                 13: "Figures 13-16 (TIES λ x density vs. norm)", 17: "Figure 17 (TIES density)",
                 18: "Figure 18 (Subspace Boosting β)"}


def _missing_figures(loaded, rendered: list[str], appendix: Sequence[Any] = ()) -> list[str]:
    """Every paper figure (3-28) this config did not render, and why: its experiment is in the config but
    has no results yet, or the config does not cover it ("not supported by these results", with where the
    kit makes it), so the page lists all 28 figures one way or the other."""
    cfg = loaded.config
    makers = _appendix_makers(loaded)

    def where(part: str) -> str:
        names = makers.get(part, [])
        return f"; made by its appendix config {' and '.join(names)}" if names else ""

    out: list[str] = []

    def account(present: bool, covered: bool, what: str, why_not: str) -> None:
        if present:
            return
        out.append(f"{what}: no results yet" if covered else f"{what}: {NOT_SUPPORTED} ({why_not})")

    def has(fragment: str) -> bool:
        return any(fragment in key for key in rendered)

    grid = bool(cfg.merge.sizes)
    no_grid = "the config has no in-the-wild grid: merge.sizes is empty"
    account(has("fig03_"), grid and bool(loaded.report_labels("table1")), "Figure 3 (accuracy vs. n, Table 1 methods)",
            no_grid if not grid else "the config runs none of Table 1's methods")
    account(has("fig04_"), grid, "Figure 4 (task-vector norm vs. n)", no_grid)
    account(has("fig06_"), grid and bool(loaded.report_labels("table3")), "Figure 6 (accuracy vs. n, Table 3 methods)",
            no_grid if not grid else "the config runs none of Table 3's methods, report.table3")
    account(has("_taskwise_"), grid, "Figures 7-10 (task-wise accuracy)", no_grid)
    stems = [key.split("_", 1)[1] for key in rendered if "_" in key]  # "fig13_ties_grid_b" -> "ties_grid_b"
    swept = {sweep.figure: sweep for other in appendix for sweep in other.config.sweeps}
    swept.update({sweep.figure: sweep for sweep in cfg.sweeps})
    for number, what in SWEEP_FIGURES.items():
        sweep = swept.get(number)
        done = sweep is not None and any(
            stem == sweep.name or (sweep.per_base and stem.startswith(f"{sweep.name}_")) for stem in stems)
        account(done, sweep is not None, what, f"no sweep of the config draws it{where(f'fig{number}')}")
    for sweep in cfg.sweeps:  # sweeps under figure numbers the paper does not use for sweeps
        if sweep.figure not in SWEEP_FIGURES:
            done = any(stem == sweep.name or stem.startswith(f"{sweep.name}_") for stem in stems)
            account(done, True, f"Figure {sweep.figure} ({sweep.name})", "")
    geometry = cfg.geometry is not None or any(other.config.geometry is not None for other in appendix)
    homogeneous = cfg.homogeneous is not None or any(other.config.homogeneous is not None for other in appendix)
    account(has("_cosine_"), geometry, "Figures 19-22 (cosine heatmaps)",
            f"the config has no geometry section{where('geometry')}")
    account(has("_layer_signs_"), geometry, "Figures 23-26 (layer signs)",
            f"the config has no geometry section{where('geometry')}")
    account(has("_homogeneous_"), homogeneous, "Figures 27-28 (homogeneous merges)",
            f"the config has no homogeneous section{where('homogeneous')}")
    return out


def _appendix_makers(loaded) -> dict[str, list[str]]:
    """Which of the config's `report.appendix_configs` make what: "fig11".. (sweeps), "geometry",
    "homogeneous" -> config file names. An appendix config that does not load is left out (its own
    `repro report all` names the problem)."""
    out: dict[str, list[str]] = {}
    try:
        paths = loaded.appendix_config_paths()
    except ReproError:
        return out
    for path in paths:
        try:
            other = load_config(path, check_methods=False, check_suite=False).config
        except ReproError:
            continue
        parts = [f"fig{s.figure}" for s in other.sweeps] + (["geometry"] if other.geometry is not None else []) + (
            ["homogeneous"] if other.homogeneous is not None else [])
        for part in parts:
            out.setdefault(part, []).append(path.name)
    return out


def _order(artifact: Artifact) -> tuple:
    key = artifact.key
    if key.startswith("table"):
        return (0, key)
    if key == "appendix_e":
        return (1, key)
    return (2, key)


def _table6(loaded, out_dir: Path) -> Artifact:
    suites_path = loaded.resolve(loaded.config.evaluation.suites_file)
    suite = loaded.config.evaluation.suite
    built = build_table6(suites_path, suite)
    return Artifact("table6", TABLE_TITLES["table6"] + f" (suite {suite})", "table",
                    write_table6(out_dir, suites_path, suite), 0, notes=built.footnotes,
                    table=(list(built.headers), [[name, str(shots)] for name, shots in built.rows]))


def provenance(records: dict[str, ResultRecord]) -> dict:
    """Package versions and input checkpoints (revisions or world spec) over all results, de-duplicated."""
    packages: dict[str, set] = {}
    checkpoints: dict[str, set] = {}
    worlds: set[str] = set()
    config_hashes: set[str] = set()
    for record in records.values():
        for name, version in (record.packages or {}).items():
            packages.setdefault(name, set()).add(str(version))
        config_hashes.add(record.config_hash[:12])
        models = record.models or {}
        if "world" in models:
            worlds.add(json.dumps(models["world"], sort_keys=True))
            continue
        entries = [models.get("base")] + list(models.get("checkpoints") or [])
        for entry in entries:
            if isinstance(entry, dict) and entry.get("repo_id"):
                checkpoints.setdefault(entry["repo_id"], set()).add(str(entry.get("revision") or "unresolved"))
    return {
        "packages": {k: sorted(v) for k, v in sorted(packages.items())},
        "checkpoints": {k: sorted(v) for k, v in sorted(checkpoints.items())},
        "worlds": sorted(worlds),
        "config_hashes": sorted(h for h in config_hashes if h),
    }


def _write_manifest(loaded, artifacts, skipped, incomplete, records, out_dir: Path,
                    appendix: Sequence[AppendixResults] = ()) -> Path:
    parts = {"appendix_configs": [{"name": part.loaded.name, "hash": part.loaded.config_hash}
                                  for part in appendix]} if appendix else {}
    return atomic_write_json(out_dir / "manifest.json", {
        "config": {"name": loaded.name, "hash": loaded.config_hash},
        **parts,
        "artifacts": [{"key": a.key, "title": a.title, "kind": a.kind, "files": sorted(p.name for p in a.files),
                       "n_results": a.n_results, "notes": a.notes} for a in artifacts],
        "not_rendered": skipped,
        "incomplete_table1_cells": incomplete,
        "results": len(records),
        "provenance": provenance(records),
    })
