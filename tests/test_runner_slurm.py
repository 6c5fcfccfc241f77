"""The smoke config on a real single-node SLURM cluster (nox -s slurm; marked `slurm`, not in `make test`).

Checks: results equal a local run; an array task cancelled midway leaves its jobs pending and the rerun
completes them; the submitter never needs sacct.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_smoke_pipeline import CONFIG, ENV, run_and_report

pytest_plugins = ["slurm_cluster_fixture"]
pytestmark = pytest.mark.slurm


def _slurm_run(cluster, runs: Path, *extra: str, config: Path = CONFIG) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "repro", "run", "--config", str(config), "--runs-dir", str(runs), "--executor",
         "slurm", "--no-progress", "--slurm-option", "jobs_per_task=3", "--slurm-option", "array_parallelism=2",
         "--slurm-option", "mem_gb=3", *extra],
        env={**ENV, **cluster.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _queued(cluster) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T"], env=cluster.env,
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def test_slurm_run_matches_local_and_resumes_after_a_cancelled_task(slurm_cluster, tmp_path):
    local_tables = run_and_report(tmp_path / "local")
    work = tmp_path / "slurm"
    runs = work / "runs" / "smoke"
    proc = _slurm_run(slurm_cluster, runs)
    # Cancel the last array task while it is still queued or running.
    deadline = time.monotonic() + 300
    cancelled = None
    while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
        tasks = [i for i in _queued(slurm_cluster) if i.rsplit("_", 1)[-1].isdigit()]
        if len(tasks) >= 2:
            cancelled = max(tasks, key=lambda i: int(i.rsplit("_", 1)[-1]))
            subprocess.run(["scancel", cancelled], env=slurm_cluster.env, check=True)
        time.sleep(0.5)
    assert cancelled is not None, "no queued array tasks seen"
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 1, stderr[-3000:]
    assert "did not finish" in stderr
    plan = json.loads((runs / "plan.json").read_text())
    assert len(list((runs / "results").glob("*.json"))) < len(plan["jobs"])

    rerun = _slurm_run(slurm_cluster, runs)
    _, stderr = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, stderr[-3000:]
    assert len(list((runs / "results").glob("*.json"))) == len(plan["jobs"])
    assert run_and_report(work) == local_tables


def test_a_preempted_array_task_is_requeued_and_resumes(slurm_cluster, tmp_path):
    """`scontrol requeue` (what preemption does) stops the running array task midway (SIGTERM: the job in
    progress is finished, no other starts; SIGKILL after KillWait otherwise); SLURM starts it again (after
    its requeue delay), and the same batch resumes from the result files: every job finishes exactly once
    and the submitter, which reads result files and squeue only, waits through the requeue."""
    runs = tmp_path / "runs" / "smoke"
    proc = _slurm_run(slurm_cluster, runs, "--slurm-option", "jobs_per_task=100")
    results = runs / "results"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(results.glob("*.json")) if results.exists() else []) < 3:
        time.sleep(0.5)
    running = [line.split() for line in subprocess.run(
        ["squeue", "--noheader", "--format=%A %T"], env=slurm_cluster.env, capture_output=True, text=True,
        check=True).stdout.splitlines()]
    assert running and running[0][1] == "RUNNING", running
    subprocess.run(["scontrol", "requeue", running[0][0]], env=slurm_cluster.env, check=True)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    from repro.results import ResultsStore

    journal = ResultsStore(runs).read_journal()
    done = [e["job"] for e in journal if e["event"] == "done"]
    plan = json.loads((runs / "plan.json").read_text())
    assert sorted(done) == sorted(j["id"] for j in plan["jobs"])  # every job finished exactly once
    assert len({e["worker"] for e in journal}) == 2  # the preempted run and the requeued run
