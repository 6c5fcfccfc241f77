"""End to end on the smoke config: plan -> merge -> evaluate -> results -> Table 1, and kill -9 resumption.

Each subprocess run is the real CLI (`python -m repro run` / `report table1`), exactly what `make smoke` calls.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/smoke.yaml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def repro(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repro", *args], env=ENV, capture_output=True, text=True, **kwargs)


def run_and_report(work: Path) -> dict[str, bytes]:
    runs, out = work / "runs" / "smoke", work / "artifacts"
    proc = repro("run", "--config", str(CONFIG), "--runs-dir", str(runs), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = repro("report", "table1", "--config", str(CONFIG), "--runs-dir", str(runs), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: (out / name).read_bytes() for name in ("table1.md", "table1.csv", "table1.tex")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke-ref")
    started = time.monotonic()
    tables = run_and_report(work)
    return work, tables, time.monotonic() - started


def test_smoke_writes_results_index_and_tables(reference):
    work, tables, _ = reference
    runs = work / "runs" / "smoke"
    plan = json.loads((runs / "plan.json").read_text())
    assert len(plan["jobs"]) == 2 * (1 + 6 + 2 * 3)
    results = sorted((runs / "results").glob("*.json"))
    assert len(results) == len(plan["jobs"])
    record = json.loads(results[0].read_text())
    for key in ("job", "config", "models", "evaluation", "scores", "average", "packages", "finished_at"):
        assert key in record
    assert (runs / "index.sqlite").is_file()
    merges = [json.loads(p.read_text()) for p in results]
    merges = [r for r in merges if r["job"]["kind"] == "merge"]
    assert merges and all(r["merge"]["task_vector_l2"] > 0 for r in merges)
    md = tables["table1.md"].decode()
    assert "| tiny-llama | Task Arithmetic |" in md and "| tiny-qwen3 | Task Arithmetic |" in md
    table_part = md.split("\n\n")[0]
    assert "| Average | Task Arithmetic |" in table_part
    assert "*" not in table_part and "–" not in table_part  # complete: no missing or partial cells


def test_kill_9_at_random_points_then_resume_gives_identical_tables(reference, tmp_path):
    _, tables, duration = reference
    runs = tmp_path / "runs" / "smoke"
    rng = random.Random(os.getpid())
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "repro", "run", "--config", str(CONFIG), "--runs-dir", str(runs), "--no-progress"],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        time.sleep(rng.uniform(0.5, max(1.0, 0.6 * duration)))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for path in (runs / "results").glob("*.json") if (runs / "results").exists() else []:
            json.loads(path.read_text())  # every committed result is complete
    assert run_and_report(tmp_path) == tables


def test_two_local_workers_run_every_job_exactly_once(reference, tmp_path):
    _, tables, _ = reference
    runs = tmp_path / "runs" / "smoke"
    proc = repro("run", "--config", str(CONFIG), "--runs-dir", str(runs), "--workers", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from repro.results import ResultsStore

    journal = ResultsStore(runs).read_journal()
    done = [e["job"] for e in journal if e["event"] == "done"]
    started = [e["job"] for e in journal if e["event"] == "start"]
    plan = json.loads((runs / "plan.json").read_text())
    assert sorted(done) == sorted(started) == sorted(j["id"] for j in plan["jobs"])
    assert len({e["worker"] for e in journal}) == 2  # both workers did work
    assert run_and_report(tmp_path) == tables  # a rerun has nothing left to do and gives the same tables


def test_ci_tables_and_verify_run_on_the_smoke_world(reference):
    """table1_ci renders on the kit's own world; verify --run lists the paper's cells as not run there."""
    work, tables, _ = reference
    runs, out = work / "runs" / "smoke", work / "ci"
    proc = repro("report", "ci", "--config", str(CONFIG), "--runs-dir", str(runs), "--out", str(out),
                 "--resamples", "2000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ci = (out / "table1_ci.md").read_text()
    plain = tables["table1.md"].decode()
    for row in ("tiny-llama", "tiny-qwen3", "Average"):
        assert f"| {row} | Task Arithmetic |" in ci
    # the point values are Table 1's: its first cell "50 / +0.42" style text opens each CI cell
    first_cell = plain.splitlines()[2].split("|")[4].strip()
    assert ci.splitlines()[2].split("|")[3].strip().startswith(first_cell.split(" / ")[0] + " [")
    proc = repro("verify", "--run", str(CONFIG), "--runs-dir", str(runs), "--out", str(work / "verify.md"),
                 "--resamples", "500")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "0 agree, 0 disagree, 280 not run" in proc.stdout


def test_appendix_reuses_the_main_run_and_report_all_is_byte_identical(reference, tmp_path):
    """What `make reproduce-all CONFIG=configs/smoke.yaml` does after the main run: the appendix config
    (sweeps + geometry) reuses the smoke run's base and single evaluations by content id, then
    `repro report all` renders every supported table and figure of both, byte-identical on a rerender."""
    import shutil

    work, _, _ = reference
    runs_root = tmp_path / "runs"
    shutil.copytree(work / "runs" / "smoke", runs_root / "smoke")  # a copied runs/ folder
    appendix = ROOT / "configs/smoke_appendix.yaml"
    proc = repro("run", "--config", str(appendix), "--runs-dir", str(runs_root / "smoke_appendix"), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reused 14 finished job(s) of runs/smoke/" in proc.stderr  # 2 bases + 2 x 6 single checkpoints
    rendered = {}
    for config, name in ((CONFIG, "smoke"), (appendix, "smoke_appendix")):
        for attempt in ("first", "second"):
            out = tmp_path / attempt / name
            proc = repro("report", "all", "--config", str(config), "--runs-dir", str(runs_root / name), "--out", str(out))
            assert proc.returncode == 0, proc.stderr[-3000:]
            rendered[(name, attempt)] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        assert rendered[(name, "first")] == rendered[(name, "second")]
    smoke_files = set(rendered[("smoke", "first")])
    assert {"table1.md", "table2.csv", "table6.tex", "fig03_accuracy_vs_n.png", "fig04_task_vector_norm.pdf",
            "fig07_taskwise_tiny-llama.png", "fig08_taskwise_tiny-qwen3.png", "index.html",
            "table1_ci.md", "table2_ci.csv"} <= smoke_files
    appendix_files = set(rendered[("smoke_appendix", "first")])
    for stem in ("fig11_ta_lambda", "fig12_ta_lambda_nonorm", "fig13_ties_grid_tiny-llama", "fig14_ties_grid_tiny-qwen3",
                 "fig17_ties_density", "fig18_sb_beta", "fig19_cosine_tiny-llama", "fig24_layer_signs_tiny-qwen3"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= appendix_files
