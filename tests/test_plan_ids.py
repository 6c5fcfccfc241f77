"""Job ids are content hashes that existing runs resume by: they are pinned here, one job of every kind and
part of the study, from configs whose inputs are a world (offline) or the lockfile. A change to what
decides an id (`repro.job_ids.job_content`) fails this test; then either the change is wrong or every stored
run of that config starts over (say so in the changelog and bump what versions the content)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.facts.config import load_config
from repro.plan import Job, JobKind, Part, PartOf, build_plan

ROOT = Path(__file__).resolve().parents[1]

PINNED = [  # config, kind, stored experiment, subset, label, id (computed before the plan was typed)
    ("smoke.yaml", "base", None, (), None, "4fe0c471f0d3acfe"),
    ("smoke.yaml", "single", None, (1,), None, "7d12ccf759863858"),
    ("smoke.yaml", "merge", None, (2, 3), "Task Arithmetic", "8d5167ea5e71ab3b"),
    ("smoke_appendix.yaml", "merge", "ta_lambda", (1, 2, 3, 4, 5, 6), "TA", "303de9966975cd77"),
    ("smoke_appendix.yaml", "geometry", "geometry", (1, 2, 3, 4, 5, 6), None, "f17b5b076b55e073"),
    ("smoke_homogeneous.yaml", "base", "homogeneous", (), None, "980cc441eb0cf402"),
    ("smoke_homogeneous.yaml", "homogeneous", "numeric_only", (1, 2, 3), "Task Arithmetic", "e697185c438fb168"),
    ("homogeneous.yaml", "base", "homogeneous", (), None, "f0d0df61192cf543"),
    ("homogeneous.yaml", "homogeneous", "medical_only", (), "TA", "292846404e573226"),
    ("paper.yaml", "base", None, (), None, "267bfbfcd88bf9d7"),
    ("paper.yaml", "single", None, (1,), None, "31801b8f6af6641d"),
    ("paper.yaml", "merge", None, (1, 4), "TA", "0455c2a6f3234fac"),
    # the demo world's spec gained `pretrain_threads: 2` (2026-12-07; same weights): its runs started over
    ("demo_quick.yaml", "base", None, (), None, "633a6386c08871f6"),
    ("demo_quick.yaml", "merge", None, (8, 11), "TA", "909e244f395428b5"),
]


@pytest.mark.parametrize("config", sorted({row[0] for row in PINNED}))
def test_job_ids_stay_what_existing_runs_resume_by(config):
    plan = build_plan(load_config(ROOT / "configs" / config))
    ids = {job.id: job for job in plan.jobs}
    for _, kind, experiment, subset, label, job_id in (row for row in PINNED if row[0] == config):
        assert job_id in ids, f"{config}: the {kind} job {subset} {label} has a new id: existing runs would rerun it"
        job = ids[job_id]
        assert (job.kind, job.experiment, job.subset, job.label) == (kind, experiment, subset, label)


def test_stored_jobs_read_back_typed_and_write_back_unchanged():
    plan = build_plan(load_config(ROOT / "configs" / "smoke_appendix.yaml"))
    for job in plan.jobs:
        stored = json.dumps(job.to_json())
        restored = Job.from_json(json.loads(stored))
        assert restored == job and json.dumps(restored.to_json()) == stored
    parts = {job.part_of.part for job in plan.jobs}
    assert parts == {Part.GRID, Part.SWEEP, Part.GEOMETRY}
    assert {job.part_of for job in plan.jobs if job.kind is JobKind.MERGE and not job.in_main_grid} == {
        PartOf(Part.SWEEP, name) for name in {point.sweep for point in plan.sweep_points}}


def test_the_plan_answers_what_tables_and_experiments_need():
    plan = build_plan(load_config(ROOT / "configs" / "smoke_appendix.yaml"))
    grid = plan.main_grid()
    assert grid and all(job.experiment is None for job in grid)
    assert {job.kind for job in plan.references()} == {JobKind.BASE, JobKind.SINGLE}
    base = plan.jobs[0].base
    assert plan.base_reference(base).kind is JobKind.BASE
    labels = plan.grid_labels()
    ids = lambda jobs: {job.id for job in jobs}  # noqa: E731
    assert ids(plan.table_jobs(labels[:1])) == ids(plan.references()) | ids(plan.grid_merges(labels[:1]))
    assert all(job.kind is JobKind.GEOMETRY for job in plan.of_part(Part.GEOMETRY))
    homogeneous = build_plan(load_config(ROOT / "configs" / "smoke_homogeneous.yaml"))
    assert homogeneous.main_grid() == [] and homogeneous.homogeneous_jobs() == list(homogeneous.jobs)
    assert {job.part_of.name for job in homogeneous.homogeneous_jobs() if job.kind is JobKind.BASE} == {None}


@pytest.mark.parametrize("kind, experiment", [("single", "x"), ("base", "sweep-name"), ("homogeneous", None)])
def test_a_kind_and_experiment_that_do_not_fit_are_refused(kind, experiment):
    with pytest.raises(ValueError, match="cannot belong"):
        Job("x", kind, "m", 1, (1,), experiment=experiment)
