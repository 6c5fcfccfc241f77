"""The real-checkpoint path of the runner, offline: a lockfile whose "checkpoints" are tiny models laid
out like `repro download` lays them out (models_dir/<org>/<name>), with an in-the-wild grid and
homogeneous (Appendix E) experiments."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from repro.facts.config import load_config
from repro.plan import build_plan
from repro.report.results_view import collect
from repro.report.table1 import build_table1
from repro.results import ResultsStore
from repro.runner.local_runner import run_worker

ROOT = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path, world) -> Path:
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs/suites.yaml", tmp_path / "configs/suites.yaml")
    shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    models = tmp_path / "models"
    ids = ["tiny-org/base"] + [f"tiny-org/ft-{i}" for i in range(1, 5)]
    for repo_id, src in zip(ids, [world.base, *world.checkpoints[:4]], strict=True):
        shutil.copytree(src, models / repo_id)
    lock = {
        "version": 1,
        # one pinned revision: the runner then keys that checkpoint's SVD-cache entries by repo@revision
        "checkpoints": {r: {"revision": "a" * 40 if r == ids[1] else None, "gated": False, "files": []} for r in ids},
        "bases": {"tiny": {"model": ids[0], "in_the_wild": ids[1:], "homogeneous": {"a": ids[1:3], "b": ids[3:5]}}},
    }
    (tmp_path / "checkpoints.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    config = {
        "name": "lockpath",
        "seed": 5,
        "lockfile": "checkpoints.lock",
        "bases": ["tiny"],
        "models_dir": str(models),
        "methods": [{"name": "task_arithmetic", "params": {}}, {"name": "ties", "params": {"lambda": 1.0}},
                    {"name": "tsv_m", "params": {}}],
        "merge": {"sizes": [2, 4], "subsets_per_size": 2, "out_dtype": "float32", "device": "cpu"},
        "homogeneous": {"bases": ["tiny"], "experiments": [
            {"name": "a_only", "groups": ["a"], "suites": ["smoke"]},
            {"name": "all", "groups": ["a", "b"], "suites": ["smoke"]},
        ]},
        "evaluation": {"suite": "smoke", "dtype": "float32", "device": "cpu", "limit": 10},
    }
    path = tmp_path / "configs/lockpath.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_lockfile_grid_and_homogeneous_jobs_run_end_to_end(tmp_path, tiny_llama_world):
    loaded = load_config(_project(tmp_path, tiny_llama_world))
    plan = build_plan(loaded)
    kinds = [job.kind for job in plan.jobs]
    # grid: base + 4 singles + 2 methods x (2 subsets at n=2 + the one full set at n=4); Appendix E: base + 2 x 2
    assert kinds.count("single") == 4 and kinds.count("merge") == 3 * 3
    assert kinds.count("homogeneous") == 6 and kinds.count("base") == 2
    homogeneous = [j for j in plan.jobs if j.kind == "homogeneous"]
    assert {j.checkpoints for j in homogeneous} == {("tiny-org/ft-1", "tiny-org/ft-2"), tuple(f"tiny-org/ft-{i}" for i in range(1, 5))}

    runs = tmp_path / "runs" / "lockpath"
    summary = run_worker(loaded, plan, runs, progress=False)
    assert summary.failed == [] and len(summary.done) == len(plan.jobs)
    store = ResultsStore(runs)
    record = store.read_result(homogeneous[-1].id)
    assert record.models["checkpoints"][0] == {"repo_id": "tiny-org/ft-1", "revision": "a" * 40}
    assert set(record.suite_averages) == {"smoke"} and record.task_vector_l2 > 0
    from repro.report.homogeneous_table import build_homogeneous_table

    appendix = build_homogeneous_table(plan, store)
    assert appendix.headers == ["Model", "Method", "base: smoke", "a_only: smoke", "all: smoke"]
    assert [row[1] for row in appendix.rows] == ["Task Arithmetic", "TIES-Merging", "TSV-Merge"]
    assert all(cell != "–" for row in appendix.rows for cell in row[2:])
    table = build_table1(collect(plan, store))
    assert [row[1] for row in table.rows] == ["Task Arithmetic", "TIES-Merging", "TSV-Merge"]
    assert all("–" not in cell and "*" not in cell for row in table.rows for cell in row)
