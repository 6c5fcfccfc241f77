"""Runner behaviour that needs no real models: failures, --retry-failed, status, SLURM requeue hook."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.cli.run_commands import status_table
from repro.facts.config import load_config
from repro.plan import build_plan
from repro.results import ResultRecord, ResultsStore
from repro.runner import local_runner
from repro.runner.claims import ClaimBoard

ROOT = Path(__file__).resolve().parents[1]


class FakeExecutor:
    """Stands in for JobExecutor: fails on the jobs in `fail`, otherwise returns a minimal record."""

    fail: set[str] = set()
    ran: list[str] = []

    def __init__(self, loaded, runs_dir, store):
        pass

    def run(self, job):
        FakeExecutor.ran.append(job.id)
        if job.id in FakeExecutor.fail:
            raise RuntimeError("simulated out-of-memory")
        return ResultRecord(job, config={"name": "smoke", "hash": "x"}, average=0.5)


@pytest.fixture
def smoke(monkeypatch):
    import repro.runner.job_executor as job_executor

    monkeypatch.setattr(job_executor, "JobExecutor", FakeExecutor)
    loaded = load_config(ROOT / "configs/smoke.yaml")
    return loaded, build_plan(loaded)


def test_failed_job_is_recorded_and_retried_only_on_request(smoke, tmp_path):
    loaded, plan = smoke
    FakeExecutor.fail, FakeExecutor.ran = {plan.jobs[3].id}, []
    summary = local_runner.run_worker(loaded, plan, tmp_path, progress=False)
    store = ResultsStore(tmp_path)
    assert summary.failed == [plan.jobs[3].id]
    assert store.failed_ids() == {plan.jobs[3].id}
    assert "simulated out-of-memory" in store.read_failure(plan.jobs[3].id)["error"]
    assert len(store.finished_ids()) == len(plan.jobs) - 1

    FakeExecutor.ran = []
    local_runner.run_worker(loaded, plan, tmp_path, progress=False)
    assert FakeExecutor.ran == []  # finished jobs never redone, failed ones not retried

    FakeExecutor.fail = set()
    local_runner.run_worker(loaded, plan, tmp_path, retry_failed=True, progress=False)
    assert FakeExecutor.ran == [plan.jobs[3].id]
    assert store.failed_ids() == set() and len(store.finished_ids()) == len(plan.jobs)


def test_status_counts_done_running_failed_pending(smoke, tmp_path):
    loaded, plan = smoke
    store = ResultsStore(tmp_path)
    board = ClaimBoard(tmp_path / "claims")
    FakeExecutor.fail, FakeExecutor.ran = set(), []
    local_runner.run_worker(loaded, plan, tmp_path, progress=False, job_ids={plan.jobs[0].id})
    store.write_failure(plan.jobs[1].to_json(), "boom")
    claim = board.try_claim(plan.jobs[2].id, "someone")
    rows = {(r["base"], r["what"]): r for r in status_table(plan, store, board)}
    claim.release()
    assert rows[("tiny-llama", "base")]["done"] == 1
    singles = rows[("tiny-llama", "single")]
    assert (singles["failed"], singles["running"], singles["pending"]) == (1, 1, 4)
    assert rows[("tiny-qwen3", "Task Arithmetic")]["pending"] == 6


def test_slurm_batch_requeues_itself_on_preemption():
    submitit = pytest.importorskip("submitit")
    from repro.runner.slurm_executor import SlurmBatch

    batch = SlurmBatch("configs/smoke.yaml", "/tmp/runs", ["a", "b"], False, 60.0)
    delayed = batch.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is batch


def test_preflight_names_everything_missing_for_the_paper_run(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "HF_TOKEN"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU visible on any host, so the property holds everywhere
    proc = subprocess.run([sys.executable, "-m", "repro", "preflight", "--config", str(ROOT / "configs/paper.yaml"),
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "no CUDA GPU" in proc.stderr
    assert "compatibility not checked" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr
    assert "no pinned revision" in proc.stderr and "make lock" in proc.stderr
    assert "not downloaded" in proc.stderr and "make download" in proc.stderr
    assert "HF_TOKEN" in proc.stderr


def test_short_disk_stops_the_run_with_one_message_and_fails_no_job(tmp_path):
    import shutil
    import subprocess
    import sys

    import yaml

    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs/suites.yaml", tmp_path / "configs/suites.yaml")
    shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    data = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    data["merge"]["min_free_disk_gb"] = 10**6
    config = tmp_path / "configs/smoke.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    runs = tmp_path / "runs" / "smoke"
    proc = subprocess.run([sys.executable, "-m", "repro", "run", "--config", str(config), "--runs-dir", str(runs),
                           "--only", "merge", "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "min_free_disk_gb" in proc.stderr.strip().splitlines()[-1]
    store = ResultsStore(runs)
    assert store.failed_ids() == set() and store.finished_ids() == set()
