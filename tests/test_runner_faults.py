"""Runner faults without real models (fast; the full-scale versions run in `nox -s reliability`): a full
disk stops the run and fails no job; a claim whose holder dies during the pass is taken over; a truncated
result file never counts as a result."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from repro.errors import InsufficientDiskError, MergeError
from repro.facts.config import load_config
from repro.plan import Job, JobKind, build_plan
from repro.results import ResultRecord, ResultsStore
from repro.runner import local_runner
from repro.runner.claims import ClaimBoard

ROOT = Path(__file__).resolve().parents[1]


class Executor:
    """Stands in for JobExecutor; `on_run(job)` decides what each job does."""

    on_run = staticmethod(lambda job: None)

    def __init__(self, loaded, runs_dir, store):
        pass

    def run(self, job):
        Executor.on_run(job)
        return ResultRecord(job, config={"name": "smoke", "hash": "x"}, average=0.5)


@pytest.fixture
def smoke(monkeypatch):
    import repro.runner.job_executor as job_executor

    monkeypatch.setattr(job_executor, "JobExecutor", Executor)
    loaded = load_config(ROOT / "configs/smoke.yaml")
    return loaded, build_plan(loaded)


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device", "/runs/x"),
    OSError(errno.EFBIG, "File too large"),
    "wrapped",
], ids=["enospc", "efbig", "inside-a-merge-error"])
def test_a_full_disk_stops_the_run_and_fails_no_job(smoke, tmp_path, error):
    loaded, plan = smoke

    def run(job):
        if job.id == plan.jobs[2].id:
            if error == "wrapped":  # what the merge engine raises around a writer's failure
                try:
                    raise RuntimeError("Error while serializing: IoError(File too large (os error 27))")
                except RuntimeError as cause:
                    raise MergeError("mergekit failed merging with ties") from cause
            raise error

    Executor.on_run = staticmethod(run)
    with pytest.raises(InsufficientDiskError, match="free space"):
        local_runner.run_worker(loaded, plan, tmp_path, progress=False)
    store = ResultsStore(tmp_path)
    assert store.failed_ids() == set()
    assert store.finished_ids() == {plan.jobs[0].id, plan.jobs[1].id}
    Executor.on_run = staticmethod(lambda job: None)
    local_runner.run_worker(loaded, plan, tmp_path, progress=False)  # space freed: the rerun completes
    assert store.finished_ids() == {job.id for job in plan.jobs}


def test_a_claim_whose_holder_dies_during_the_pass_is_taken_over(smoke, tmp_path):
    loaded, plan = smoke
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        board = ClaimBoard(tmp_path / "claims", ttl_s=3600)
        board.dir.mkdir(parents=True)
        held = plan.jobs[1].id
        board.path(held).write_text(json.dumps({"owner": f"{socket.gethostname()}:{holder.pid}:live"}))

        def run(job):
            if job.id == plan.jobs[-1].id:  # the holder dies (kill -9) while we work on the last job
                holder.kill()
                holder.wait()

        Executor.on_run = staticmethod(run)
        summary = local_runner.run_worker(loaded, plan, tmp_path, progress=False, claim_ttl_s=3600)
    finally:
        holder.kill()
        Executor.on_run = staticmethod(lambda job: None)
    assert held in summary.done and summary.skipped_claimed == []
    assert ResultsStore(tmp_path).finished_ids() == {job.id for job in plan.jobs}


def test_a_stop_request_finishes_the_job_in_progress_and_starts_no_other(smoke, tmp_path):
    """SIGTERM of a preempted SLURM task (SlurmBatch turns it into `stop_requested`): the job running
    then is committed, no further job starts, and a rerun does exactly the rest."""
    import os
    import signal

    from repro.runner.slurm_executor import SlurmBatch

    loaded, plan = smoke
    asked = []

    def run(job):
        if job.id == plan.jobs[1].id:
            asked.append(job.id)
            os.kill(os.getpid(), signal.SIGTERM)  # what SLURM sends; SlurmBatch's handler only sets a flag

    Executor.on_run = staticmethod(run)
    before = signal.getsignal(signal.SIGTERM)
    try:
        outcome = SlurmBatch(str(ROOT / "configs/smoke.yaml"), str(tmp_path), [j.id for j in plan.jobs], False, 60)()
    finally:
        Executor.on_run = staticmethod(lambda job: None)
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back
    assert asked and outcome["done"] == [plan.jobs[0].id, plan.jobs[1].id]
    assert outcome["stopped"] == [job.id for job in plan.jobs[2:]] and outcome["failed"] == []
    store = ResultsStore(tmp_path)
    assert store.finished_ids() == {plan.jobs[0].id, plan.jobs[1].id}
    summary = local_runner.run_worker(loaded, plan, tmp_path, progress=False)
    assert summary.done == [job.id for job in plan.jobs[2:]] and summary.stopped == []
    assert store.finished_ids() == {job.id for job in plan.jobs}


def test_a_truncated_result_file_is_not_a_result(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_result(ResultRecord(Job("a", JobKind.BASE, "m", 0), average=0.5, scores=[{"task": "t", "value": 1}]))
    store.write_result(ResultRecord(Job("b", JobKind.BASE, "m", 0), average=0.5))
    raw = store.result_path("b").read_bytes()
    for cut in range(1, len(raw)):  # whatever prefix a cut-short copy holds
        store.result_path("b").write_bytes(raw[:cut])
        assert store.finished_ids() == {"a"} and not store.has_result("b"), raw[:cut]
    store.result_path("b").write_bytes(raw)
    assert store.finished_ids() == {"a", "b"}
