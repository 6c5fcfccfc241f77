"""Grid merges in the runner: in-memory merge jobs of one (base, method, params) computed in one pass give
exactly the results of merging each job alone, stay resumable, and a broken checkpoint still fails only
the jobs that use it."""

from __future__ import annotations

from pathlib import Path

from smoke_project import smoke_project, write_config

from repro.facts.config import load_config
from repro.plan import Job, build_plan
from repro.results import ResultsStore
from repro.runner.grid_merges import grid_peers, merged_model_bytes, union_inputs
from repro.runner.local_runner import run_worker
from repro.runner.model_sources import ModelSources

ROOT = Path(__file__).resolve().parents[1]
METHODS = [
    {"name": "task_arithmetic", "params": {"weight": 1.0, "normalize": True, "lambda": 1.0}},
    {"name": "ties", "params": {"density": 0.3}},
    {"name": "model_stock"},
]


def _config(project: Path, grid_memory_gb: float) -> Path:
    data = smoke_project(project)
    data["methods"] = METHODS
    data["evaluation"].update(in_memory=True, limit=3)
    data["merge"].update(out_dtype="bfloat16", grid_memory_gb=grid_memory_gb)
    data.pop("report", None)
    path = write_config(project, data)
    return path


def _outcomes(store: ResultsStore, job_ids) -> dict:
    out = {}
    for job_id in job_ids:
        record = store.read_result(job_id)
        out[job_id] = ([(s["task"], s["metric"], s["value"], s["stderr"]) for s in record.scores],
                       record.average, record.task_vector_l2, record.merge["vocab_truncations"],
                       store.items_path(job_id).read_bytes())
    return out


def _merge_ids(plan, base="tiny-llama") -> list[str]:
    return [j.id for j in plan.jobs if j.kind == "merge" and j.base == base]


def test_grid_merged_jobs_equal_jobs_merged_alone_and_resume(tmp_path):
    alone_cfg = load_config(_config(tmp_path / "alone", 0.0))
    alone_plan = build_plan(alone_cfg)
    picked = _merge_ids(alone_plan)  # 3 methods x 6 subsets of the tiny Llama
    alone_runs = tmp_path / "alone-runs" / "smoke"
    summary = run_worker(alone_cfg, alone_plan, alone_runs, job_ids=set(picked), progress=False)
    assert summary.failed == [] and len(summary.done) == 18
    alone_store = ResultsStore(alone_runs)
    assert {alone_store.read_result(i).merge["grid_merges"] for i in picked} == {1}

    # Room for 4 merged models at a time: groups of 6 jobs are cut into grids of at most 4.
    sources = ModelSources(alone_cfg, alone_runs.parent)
    one_model_gb = merged_model_bytes(sources.base_dir("tiny-llama"), "bfloat16") / 2**30
    grid_cfg = load_config(_config(tmp_path / "grid", 4.5 * one_model_gb))
    grid_plan = build_plan(grid_cfg)
    assert _merge_ids(grid_plan) == picked  # the grid setting is not part of a job's identity
    grid_runs = tmp_path / "grid-runs" / "smoke"
    first = picked[:2] + picked[6:7]  # an interrupted run: some jobs already have results
    assert run_worker(grid_cfg, grid_plan, grid_runs, job_ids=set(first), progress=False).failed == []
    summary = run_worker(grid_cfg, grid_plan, grid_runs, job_ids=set(picked), progress=False)
    assert summary.failed == [] and sorted(summary.done) == sorted(set(picked) - set(first))
    grid_store = ResultsStore(grid_runs)
    sizes = [grid_store.read_result(i).merge["grid_merges"] for i in picked]
    assert max(sizes) == 4 and {2, 4} <= set(sizes), sizes  # resumed TA group: 4 left, one grid of 4
    assert all(grid_store.read_result(i).merge["in_memory"] for i in picked)

    assert _outcomes(grid_store, picked) == _outcomes(alone_store, picked)


def test_a_broken_checkpoint_fails_only_its_jobs_in_grid_mode(tmp_path, caplog):
    import logging

    import torch
    from safetensors.torch import load_file, save_file

    loaded = load_config(_config(tmp_path / "broken", 1.0))
    plan = build_plan(loaded)
    runs = tmp_path / "runs" / "smoke"
    sources = ModelSources(loaded, runs.parent)
    sources.prepare(["tiny-llama"])
    broken_dir = sources.checkpoint_dir("tiny-llama", 3)
    file = sorted(broken_dir.glob("*.safetensors"))[0]
    tensors = load_file(str(file))
    name = next(n for n, t in tensors.items() if t.is_floating_point() and t.ndim == 2)
    tensors[name][0, 0] = float("nan")
    save_file(tensors, str(file), metadata={"format": "pt"})

    jobs = [j for j in plan.jobs if j.kind == "merge" and j.base == "tiny-llama" and j.method == "task_arithmetic"]
    with_broken = {j.id for j in jobs if 3 in j.subset}
    assert with_broken and len(with_broken) < len(jobs)
    with caplog.at_level(logging.WARNING, logger="repro.runner.job_executor"):
        summary = run_worker(loaded, plan, runs, job_ids={j.id for j in jobs}, progress=False)
    assert "grid merge of 6 jobs failed" in caplog.text  # the grid met the broken input, then jobs ran alone
    assert set(summary.failed) == with_broken
    store = ResultsStore(runs)
    for job_id in with_broken:
        error = store.read_failure(job_id)["error"]
        assert "NaN" in error and str(broken_dir) in error, error
    assert all(torch.isfinite(torch.tensor(store.read_result(j).average)) for j in set(summary.done))


def _job(job_id: str, method="ties", params=None, kind="merge", subset=(1, 2)) -> Job:
    return Job(job_id, kind, "b", len(subset), subset, method, method, params or {"density": 0.2})


def test_grid_peers_follow_the_job_in_its_group_only():
    upcoming = [_job("a"), _job("x", method="task_arithmetic"), _job("b"), _job("c", params={"density": 0.5}),
                _job("d"), _job("e"), _job("s", kind="single", method=None)]
    assert [p.id for p in grid_peers(upcoming[2], upcoming, set(), 10)] == ["b", "d", "e"]
    assert [p.id for p in grid_peers(upcoming[0], upcoming, {"d"}, 10)] == ["a", "b", "e"]
    assert [p.id for p in grid_peers(upcoming[0], upcoming, set(), 2)] == ["a", "b"]
    assert [p.id for p in grid_peers(upcoming[6], upcoming, set(), 10)] == ["s"]


def test_union_inputs_keeps_each_jobs_order(tmp_path):
    a, b, c = (tmp_path / name for name in "abc")
    models, subsets = union_inputs([[b, a], [a, c], [c, b]])
    assert models == [b, a, c] and subsets == [(0, 1), (1, 2), (2, 0)]
