"""Appendix sweeps as plans: merge jobs of all checkpoints with stable content ids shared with the main run,
reuse of the main run's finished jobs, config validation of sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.errors import ConfigError
from repro.facts.config import load_config
from repro.plan import build_plan
from repro.results import ResultRecord, ResultsStore
from repro.runner.reuse import reuse_finished_jobs

ROOT = Path(__file__).resolve().parents[1]


def test_sweep_points_are_merge_jobs_of_all_checkpoints_sharing_ids_with_the_main_run():
    paper = build_plan(load_config(ROOT / "configs/paper.yaml"))
    paper_ids = {job.id: job for job in paper.jobs}
    loaded = load_config(ROOT / "configs/ablation_ta_lambda.yaml")
    plan = build_plan(loaded)
    jobs = {job.id: job for job in plan.jobs}
    assert len(plan.sweep_points) == 4 * 12  # 4 bases x 12 lambda values
    for point in plan.sweep_points:
        job = jobs[point.job_id]
        assert job.kind == "merge" and job.subset == tuple(range(1, 13)) and job.params["lambda"] == point.values["lambda"]
        assert job.params["normalize"] is True
    # lambda = 1 is the main run's n = 12 TA merge: same content, same id
    shared = [p for p in plan.sweep_points if p.values["lambda"] == 1.0]
    assert all(p.job_id in paper_ids and paper_ids[p.job_id].label == "TA" for p in shared)
    others = [p for p in plan.sweep_points if p.values["lambda"] != 1.0]
    assert not any(p.job_id in paper_ids for p in others)
    # base and single-checkpoint evaluations are the main run's jobs
    references = [job for job in plan.jobs if job.kind in ("base", "single")]
    assert len(references) == 4 * 13 and all(job.id in paper_ids for job in references)
    assert build_plan(loaded).to_json() == plan.to_json()  # stable


def test_points_shared_by_two_sweeps_are_one_job():
    plan = build_plan(load_config(ROOT / "configs/smoke_appendix.yaml"))
    ids = [job.id for job in plan.jobs]
    assert len(ids) == len(set(ids))
    grid = {p.job_id for p in plan.sweep_points if p.sweep == "ties_grid" and p.values["lambda"] == 0.1}
    density = {p.job_id for p in plan.sweep_points if p.sweep == "ties_density" and p.values["density"] in (0.1, 0.5)}
    assert density == grid  # TIES lambda 0.1 at densities 0.1 and 0.5 is in both sweeps
    assert sum(job.kind == "geometry" for job in plan.jobs) == 2


def test_reuse_copies_finished_jobs_of_the_main_run(tmp_path):
    main = load_config(ROOT / "configs/smoke.yaml")
    sweep = load_config(ROOT / "configs/smoke_appendix.yaml")
    main_store = ResultsStore(tmp_path / "smoke")
    main_plan = build_plan(main)
    for job in main_plan.jobs[:5]:
        main_store.write_result(ResultRecord(job, config={"name": "smoke", "hash": "x"}, average=0.5))
        main_store.items_path(job.id).parent.mkdir(parents=True, exist_ok=True)
        main_store.items_path(job.id).write_bytes(b"items")
    plan = build_plan(sweep)
    adopted = reuse_finished_jobs(sweep, plan, tmp_path / "smoke_appendix")
    shared = {job.id for job in main_plan.jobs[:5]} & {job.id for job in plan.jobs}
    assert adopted == {"smoke": len(shared)} and len(shared) == 5  # base + singles of tiny-llama
    store = ResultsStore(tmp_path / "smoke_appendix")
    assert store.finished_ids() == shared
    record = store.read_result(sorted(shared)[0])
    assert record.reused_from == {"config": "smoke", "runs_dir": "smoke"}
    assert store.items_path(sorted(shared)[0]).read_bytes() == b"items"
    assert reuse_finished_jobs(sweep, plan, tmp_path / "smoke_appendix") == {"smoke": 0}  # idempotent


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / "suites.yaml").write_text((ROOT / "configs/suites.yaml").read_text())
    path = tmp_path / "configs" / "x.yaml"
    path.write_text(text)
    return path


def test_bad_sweeps_are_one_clear_config_error(tmp_path):
    base = (ROOT / "configs/smoke_appendix.yaml").read_text()
    bad_param = base.replace("grid: {beta: [0.0, 0.05, 1.0]}", "grid: {beta: [0.0, 0.05, 2.0]}")
    with pytest.raises(ConfigError, match=r"sweeps\[4\].grid: TA \+ SB: beta: must be <= 1.0, got 2.0"):
        load_config(_write(tmp_path, bad_param))
    bad_method = base.replace("methods: [TA + SB, TIES + SB,", "methods: [TA + SB, TSV-M,")
    with pytest.raises(ConfigError, match=r"sweeps\[4\].methods\[1\]: method 'TSV-M' is not in `methods`"):
        load_config(_write(tmp_path, bad_method))
    bad_axis = base.replace("x: task_vector_l2, series: density", "x: task_vector_l2, series: beta")
    with pytest.raises(ConfigError, match=r"sweeps\[2\]"):
        load_config(_write(tmp_path, bad_axis))
    duplicate = base.replace("name: ties_density", "name: ties_grid")
    with pytest.raises(ConfigError, match="sweep names must be distinct"):
        load_config(_write(tmp_path, duplicate))
