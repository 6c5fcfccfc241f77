"""`repro report all` from stored results only: every table and figure of a config, byte-identical on
rerender, Table 1/3 in the paper's layout, the static page; the config's `report:` section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repro.errors import ConfigError
from repro.facts.config import load_config
from repro.plan import build_plan
from repro.report.render_all import render_all
from repro.results import ResultsStore

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_results import write_synthetic_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _render(config: str, runs: Path, out: Path, keep: float = 1.0):
    loaded = load_config(ROOT / "configs" / config)
    if not runs.exists():
        write_synthetic_results(loaded, runs, keep=keep)
    plan = build_plan(loaded)
    return render_all(loaded, plan, ResultsStore(runs), out)


def _files(folder: Path) -> dict[str, bytes]:
    """The rendered artifacts (not the CLI's hidden `.repro-output.json` folder marker)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def appendix(tmp_path_factory):
    """Synthetic results of the smoke appendix config, rendered once into `a`."""
    work = tmp_path_factory.mktemp("appendix")
    artifacts, _ = _render("smoke_appendix.yaml", work / "runs", work / "a")
    return work, artifacts


def test_smoke_appendix_renders_every_figure_and_rerenders_byte_identically(appendix, tmp_path):
    work, artifacts = appendix
    keys = [a.key for a in artifacts]
    assert keys == ["table6", "fig11_ta_lambda", "fig12_ta_lambda_nonorm", "fig13_ties_grid_tiny-llama",
                    "fig14_ties_grid_tiny-qwen3", "fig17_ties_density", "fig18_sb_beta", "fig19_cosine_tiny-llama",
                    "fig20_cosine_tiny-qwen3", "fig23_layer_signs_tiny-llama", "fig24_layer_signs_tiny-qwen3"]
    first = _files(work / "a")
    for key in keys[1:]:
        assert first[f"{key}.png"][:8] == b"\x89PNG\r\n\x1a\n" and first[f"{key}.pdf"][:4] == b"%PDF"
        assert b"CreationDate" not in first[f"{key}.pdf"]
    assert "fig19_cosine_tiny-llama.csv" in first and "fig23_layer_signs_tiny-llama.csv" in first
    _render("smoke_appendix.yaml", work / "runs", tmp_path / "b")  # a fresh folder, same results
    assert _files(tmp_path / "b") == first  # byte-identical, PNG and PDF included


def test_png_metadata_is_software_only(appendix):
    from PIL import Image

    work, _ = appendix
    image = Image.open(work / "a" / "fig11_ta_lambda.png")
    assert set(image.text) == {"Software"}


def test_paper_config_tables_in_the_papers_layout(tmp_path):
    """Paper-sized synthetic results (4 bases, 12 checkpoints, 7 methods), a few results missing."""
    loaded = load_config(ROOT / "configs/paper.yaml")
    runs = tmp_path / "runs"
    write_synthetic_results(loaded, runs, keep=0.98)
    from repro.report.results_view import collect
    from repro.report.table1 import build_table1, incomplete_cells

    results = collect(build_plan(loaded), ResultsStore(runs))
    table1 = build_table1(results, loaded.report_labels("table1"))
    table3 = build_table1(results, loaded.report_labels("table3"))
    assert table1.headers[:3] == ["Model", "Method", "Base"] and table1.headers[3].startswith("n=1 (")
    assert [h.split(" ")[0] for h in table1.headers[3:]] == ["n=1", "n=2", "n=4", "n=6", "n=8", "n=10", "n=12"]
    assert [row[1] for row in table1.rows] == ["TA", "Model Stock", "TIES"] * 5
    assert [row[0] for row in table1.rows if row[0]] == ["llama-3.2-3b", "llama-3.1-8b", "qwen3-4b", "qwen3-8b",
                                                          "Average"]
    assert [row[1] for row in table3.rows[:4]] == ["TA + SB", "TIES + SB", "TSV-M", "Iso-C"]
    # header k = combinations evaluated: with results missing, a range such as "13–15"
    evaluated = {job.id for job in build_plan(loaded).jobs} & ResultsStore(runs).finished_ids()
    assert len(evaluated) < len(build_plan(loaded).jobs)
    missing = incomplete_cells(results, loaded.report_labels("table1"))
    assert missing and all(" of " in cell or "not evaluated" in cell for cell in missing)
    starred = sum(cell.endswith("*") for row in table1.rows for cell in row)
    assert starred > 0


def test_homogeneous_config_renders_tables_4_5_and_figures_27_28(tmp_path):
    artifacts, skipped = _render("homogeneous.yaml", tmp_path / "runs", tmp_path / "out")
    keys = [a.key for a in artifacts]
    assert keys == ["table4", "table5", "table6", "appendix_e", "fig27_homogeneous_qwen3-8b",
                    "fig28_homogeneous_qwen3-4b"]
    table4 = (tmp_path / "out" / "table4.md").read_text()
    assert "prithivMLmods/Draconis-Qwen3_Math-4B-Preview" in table4 and "unresolved" in table4
    table5 = (tmp_path / "out" / "table5.csv").read_text().splitlines()
    assert table5[0] == "Medical Tasks,Math Tasks" and table5[1] == "medmcqa,mmlu_abstract_algebra"
    assert len(table5) == 1 + 9  # nine math tasks, eight medical
    assert any("Table 1" in s for s in skipped)


def test_index_html_lists_every_artifact_with_counts_config_and_provenance(appendix):
    work, artifacts = appendix
    page = (work / "a" / "index.html").read_text()
    assert "<script" not in page
    for artifact in artifacts:
        assert f'id="{artifact.key}"' in page
        for path in artifact.files:
            assert f'href="{path.name}"' in page
    assert "stored result(s)" in page and "Provenance summary" in page and "torch" in page
    assert "Incomplete Table 1 cells" in page and "name: smoke_appendix" in page
    manifest = json.loads((work / "a" / "manifest.json").read_text())
    assert [a["key"] for a in manifest["artifacts"]] == [a.key for a in artifacts]


def test_report_section_defaults_and_errors(tmp_path):
    paper = load_config(ROOT / "configs/paper.yaml")
    assert paper.report_tables == {"table1": ("task_arithmetic", "model_stock", "ties"),
                                   "table2": ("task_arithmetic",),
                                   "table3": ("task_arithmetic_sb", "ties_sb", "tsv_m", "iso_c")}
    smoke = load_config(ROOT / "configs/smoke.yaml")
    assert smoke.report_tables["table3"] == () and smoke.report_labels("table1") == ["Task Arithmetic"]
    text = (ROOT / "configs/smoke.yaml").read_text().replace("table2: [task_arithmetic]", "table2: [tsv_mm]")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "suites.yaml").write_text((ROOT / "configs/suites.yaml").read_text())
    bad = tmp_path / "configs" / "bad.yaml"
    bad.write_text(text.replace("appendix_configs: [smoke_appendix.yaml, smoke_homogeneous.yaml]", "appendix_configs: []"))
    with pytest.raises(ConfigError, match=r"report.table2\[0\]: method 'tsv_mm' is not a merge method name or a label"):
        load_config(bad)
    # a registry method the config does not run is simply absent from the table
    bad.write_text(text.replace("tsv_mm", "tsv_m").replace("appendix_configs: [smoke_appendix.yaml, smoke_homogeneous.yaml]", "appendix_configs: []"))
    assert load_config(bad).report_tables["table2"] == ()


def test_repro_plan_prints_jobs_per_appendix_experiment(tmp_path):
    for config, expected in (("ablation_ta_lambda.yaml", "sweep ta_lambda: 100"),
                             ("ablation_ties_grid.yaml", "sweep ties_grid: 136"),
                             ("geometry.yaml", "geometry (Figs 19-26): 4")):
        proc = subprocess.run([sys.executable, "-m", "repro", "plan", "--config", str(ROOT / "configs" / config),
                               "--runs-dir", str(tmp_path / config)], capture_output=True, text=True)
        assert expected in proc.stdout, proc.stdout + proc.stderr


def test_report_all_needs_no_torch_or_models(appendix, tmp_path):
    """The report layer reads stored results only: no torch, transformers, lm-eval or mergekit import."""
    work, _ = appendix
    code = (
        "import sys\nfrom repro.cli import main\n"
        f"code = main(['report', 'all', '--config', {str(ROOT / 'configs/smoke_appendix.yaml')!r}, "
        f"'--runs-dir', {str(work / 'runs')!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'lm_eval', 'mergekit'))\n"
        "print(code, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr
    assert _files(tmp_path / "out") == _files(work / "a")  # another process, same bytes


def test_report_all_joins_the_appendix_configs_that_have_results(tmp_path):
    """`repro report all` of a config puts its appendix configs' tables and figures (Tables 4-5, Figures
    11-28, Appendix E) on its own page where they have results in runs/ beside it; --no-appendix leaves
    them out; an appendix config without results is only listed as not rendered."""
    from repro.cli import main

    runs = tmp_path / "runs"
    for config in ("smoke.yaml", "smoke_appendix.yaml", "smoke_homogeneous.yaml"):
        loaded = load_config(ROOT / "configs" / config)
        write_synthetic_results(loaded, runs / loaded.name)
    own, _ = _render("smoke.yaml", runs / "smoke", tmp_path / "own")
    assert main(["report", "all", "--config", str(ROOT / "configs/smoke.yaml"), "--runs-dir", str(runs / "smoke"),
                 "--out", str(tmp_path / "all")]) == 0
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    keys = [a["key"] for a in manifest["artifacts"]]
    appendix_keys = {"table4", "table5", "appendix_e", "fig11_ta_lambda", "fig17_ties_density", "fig18_sb_beta",
                     "fig19_cosine_tiny-llama", "fig23_layer_signs_tiny-llama"}
    assert appendix_keys <= set(keys) and set(a.key for a in own) <= set(keys)
    assert any(key.startswith("fig27_homogeneous_") for key in keys)
    assert not any(s.startswith(("Figure 1", "Figure 2", "Table 4", "Table 5")) for s in manifest["not_rendered"])
    assert [c["name"] for c in manifest["appendix_configs"]] == ["smoke_appendix", "smoke_homogeneous"]
    page = (tmp_path / "all" / "index.html").read_text()
    assert all(f'id="{key}"' in page for key in keys)
    # the main grid's figures are the main config's own files, byte for byte
    for artifact in own:
        for path in artifact.files:
            if path.suffix in (".png", ".csv", ".md"):
                assert (tmp_path / "all" / path.name).read_bytes() == path.read_bytes(), path.name
    assert main(["report", "all", "--config", str(ROOT / "configs/smoke.yaml"), "--runs-dir", str(runs / "smoke"),
                 "--out", str(tmp_path / "again")]) == 0
    assert _files(tmp_path / "again") == _files(tmp_path / "all")  # byte-identical rerender

    assert main(["report", "all", "--config", str(ROOT / "configs/smoke.yaml"), "--runs-dir", str(runs / "smoke"),
                 "--out", str(tmp_path / "alone"), "--no-appendix"]) == 0
    alone = json.loads((tmp_path / "alone" / "manifest.json").read_text())
    assert not appendix_keys & {a["key"] for a in alone["artifacts"]} and "appendix_configs" not in alone
    assert any("made by its appendix config smoke_appendix.yaml" in s for s in alone["not_rendered"])

    import shutil

    shutil.rmtree(runs / "smoke_homogeneous")  # no results: only the sweeps and geometry join
    assert main(["report", "all", "--config", str(ROOT / "configs/smoke.yaml"), "--runs-dir", str(runs / "smoke"),
                 "--out", str(tmp_path / "partial")]) == 0
    partial = json.loads((tmp_path / "partial" / "manifest.json").read_text())
    assert [c["name"] for c in partial["appendix_configs"]] == ["smoke_appendix"]
    assert "fig11_ta_lambda" in {a["key"] for a in partial["artifacts"]}
    assert any(s.startswith("Figures 27-28") for s in partial["not_rendered"])
