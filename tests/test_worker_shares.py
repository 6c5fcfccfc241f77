"""Local workers share a plan by whole grid groups (repro.runner.local_runner), and `repro run --workers
auto` picks one worker per CPU for single-threaded CPU configs, one per GPU for GPU configs."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from repro.facts.config import load_config
from repro.plan import build_plan
from repro.runner import gpus
from repro.runner.grid_merges import grid_key
from repro.runner.local_runner import worker_order, worker_shares

ROOT = Path(__file__).resolve().parents[1]


def _group(job):
    return grid_key(job) or ("job", job.id)


@pytest.mark.parametrize("config,workers,seed", [("demo_quick.yaml", 2, 0), ("demo_quick.yaml", 3, 1),
                                                 ("demo.yaml", 2, 2), ("smoke_appendix.yaml", 4, 3)])
def test_shares_are_whole_groups_balanced_and_orders_cover_every_job_once(config, workers, seed):
    todo = list(build_plan(load_config(ROOT / "configs" / config)).jobs)
    random.Random(seed).shuffle(todo)  # any pending order
    shares = worker_shares(todo, workers)
    assert sorted(j.id for share in shares for j in share) == sorted(j.id for j in todo)
    owner = {}
    for i, share in enumerate(shares):
        assert share == [j for j in todo if j in share]  # the pending order within a share
        for job in share:
            assert owner.setdefault(_group(job), i) == i  # a group is never split between workers
    largest_group = max(sum(1 for j in todo if _group(j) == key) for key in owner)
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= largest_group
    for i in range(workers):
        order = worker_order(todo, i, workers)
        assert sorted(j.id for j in order) == sorted(j.id for j in todo)
        assert order[: len(shares[i])] == shares[i]  # its own share first
        # then the others' shares from their ends
        assert order[len(shares[i]): len(shares[i]) + len(shares[(i + 1) % workers])] == shares[(i + 1) % workers][::-1]
    assert worker_order(todo, 0, 1) == todo


def test_workers_auto(monkeypatch):
    def loaded(threads, device="cpu", world=True):
        evaluation = SimpleNamespace(threads=threads, device=device)
        return SimpleNamespace(config=SimpleNamespace(evaluation=evaluation, world=object() if world else None))

    monkeypatch.setattr(gpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(gpus, "visible_gpus", lambda: [])
    assert gpus.auto_workers(loaded(1)) == 4
    assert gpus.auto_workers(loaded(2)) == 2
    assert gpus.auto_workers(loaded(8)) == 1
    assert gpus.auto_workers(loaded(None)) == 1  # torch's default: every CPU for one worker
    monkeypatch.setattr(gpus, "visible_gpus", lambda: ["0", "1", "2"])
    assert gpus.auto_workers(loaded(None, device="auto", world=False)) == 3
    assert gpus.auto_workers(loaded(1, device="cpu", world=False)) == 4  # a CPU config ignores the GPUs


def test_workers_flag_takes_a_count_or_auto(capsys):
    from repro.cli import main

    for bad in ("0", "two", "-1"):
        assert main(["run", "--config", str(ROOT / "configs/smoke.yaml"), "--workers", bad]) == 2
        assert "a number of workers (1 or more) or `auto`" in capsys.readouterr().err


def test_results_do_not_depend_on_the_number_of_workers(tmp_path):
    """The same plan run by one worker and by two (each computing its own groups' grid passes in memory)
    gives the same scores and merged-model norms for every job."""
    from smoke_project import smoke_project, write_config

    from repro.plan import build_plan
    from repro.results import ResultsStore
    from repro.runner.local_runner import run_parallel, run_worker
    from repro.runner.model_sources import ModelSources

    project = tmp_path / "project"
    data = smoke_project(project)
    data["world"]["checkpoints_per_base"] = 4
    data["methods"] = [{"name": "task_arithmetic", "params": {"weight": 1.0, "normalize": True, "lambda": 1.0}},
                       {"name": "ties", "params": {"weight": 1.0, "density": 0.5, "normalize": True, "lambda": 1.0}}]
    data["merge"].update(sizes=[2, 3], subsets_per_size=2)
    data["evaluation"].update(limit=4, in_memory=True)
    data["report"] = {"appendix_configs": []}
    path = write_config(project, data)
    loaded = load_config(path)
    plan = build_plan(loaded)
    ModelSources(loaded, project / "runs").prepare(loaded.base_names)
    assert run_worker(loaded, plan, project / "runs/one", progress=False).ok
    assert run_parallel(path, project / "runs/two", plan, 2, retry_failed=False, kinds=None, progress=False).ok

    def outcome(runs_dir):
        store = ResultsStore(runs_dir)
        out = {}
        for job in plan.jobs:
            record = store.read_result(job.id).to_json()
            merge = record.get("merge") or {}
            scores = [{k: v for k, v in row.items() if k != "date"} for row in record["scores"]]
            out[job.id] = (scores, record["average"], merge.get("task_vector_l2"))
        return out

    one, two = outcome(project / "runs/one"), outcome(project / "runs/two")
    assert len(one) == len(plan.jobs) > 10
    assert one == two
