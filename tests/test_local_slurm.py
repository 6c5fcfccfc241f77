"""tools/local_slurm.py: a real local SLURM cluster runs, cancels and cleans up after itself.

The cluster tests are marked `slurm` (skipped by default; `nox -s slurm` runs them as root with the
apt packages slurmctld slurmd slurm-client munge installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from slurm_cluster_fixture import LOCAL_SLURM_PATH, local_slurm

pytest_plugins = ["slurm_cluster_fixture"]


def _wait_until(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _job_state(cluster, job_id: str) -> str:
    line = cluster.command("scontrol", "show", "job", "--oneliner", job_id)
    return next(field.split("=", 1)[1] for field in line.split() if field.startswith("JobState="))


def _job_processes(command_line: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", command_line], capture_output=True, text=True).stdout.split()


def _alive(daemon: dict) -> bool:
    return local_slurm._process_start_time(daemon["pid"]) == daemon["start_time"]


def test_generated_slurm_conf_describes_one_local_node(tmp_path):
    conf = local_slurm.write_slurm_conf(tmp_path, tmp_path / "munge.socket.2").read_text()
    settings = dict(
        line.split("=", 1)
        for line in conf.splitlines()
        if line and not line.startswith(("#", "Node", "Part"))
    )
    assert settings["ClusterName"] == "repro"
    assert settings["SlurmctldHost"] == "localhost"
    assert settings["ProctrackType"] == "proctrack/linuxproc"
    assert settings["SelectType"] == "select/cons_tres"
    assert settings["AuthInfo"] == f"socket={tmp_path / 'munge.socket.2'}"
    assert settings["StateSaveLocation"].startswith(str(tmp_path))
    assert settings["SlurmctldPort"] != settings["SlurmdPort"]
    node_line = next(line for line in conf.splitlines() if line.startswith("NodeName="))
    assert f"CPUs={os.cpu_count()}" in node_line
    real_memory = int(node_line.split("RealMemory=")[1].split()[0])
    assert 0 < real_memory < local_slurm._memory_mb()
    assert "PartitionName=debug Nodes=localhost Default=YES" in conf


def test_start_failures_name_the_daemon_and_show_its_log(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "slurmd.log").write_text("fatal: Unable to determine this slurmd's NodeName\n")
    with pytest.raises(
        local_slurm.LocalSlurmError, match="timed out after 0s waiting for node idle"
    ) as timed_out:
        local_slurm._wait_for("node idle", lambda: False, tmp_path, [], timeout=0.2)
    assert "Unable to determine this slurmd's NodeName" in str(timed_out.value)
    gone = [{"name": "slurmd", "pid": 2**31 - 1, "start_time": "12345"}]
    with pytest.raises(
        local_slurm.LocalSlurmError, match="slurmd exited while waiting for node idle"
    ) as died:
        local_slurm._wait_for("node idle", lambda: False, tmp_path, gone, timeout=30)
    assert "slurmd.log" in str(died.value)


@pytest.mark.slurm
def test_sbatch_job_runs_and_writes_its_output(slurm_cluster, tmp_path):
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf_path)
    output = tmp_path / "hi.out"
    job_id = slurm_cluster.command(
        "sbatch", "--parsable", f"--output={output}", "--wrap", "echo hi; srun printenv SLURMD_NODENAME"
    ).strip()
    assert job_id.isdigit()
    _wait_until(
        lambda: _job_state(slurm_cluster, job_id) not in ("PENDING", "RUNNING", "COMPLETING"),
        what=f"job {job_id} to finish",
    )
    assert _job_state(slurm_cluster, job_id) == "COMPLETED"
    assert output.read_text().split() == ["hi", "localhost"]


@pytest.mark.slurm
def test_scancel_cancels_a_running_job(slurm_cluster, tmp_path):
    marker = tmp_path / "finished"
    job_id = slurm_cluster.command(
        "sbatch", "--parsable", f"--output={tmp_path / 'sleep.out'}", "--wrap", f"sleep 120; touch {marker}"
    ).strip()
    _wait_until(lambda: _job_state(slurm_cluster, job_id) == "RUNNING", what=f"job {job_id} to run")
    slurm_cluster.command("scancel", job_id)
    _wait_until(
        lambda: _job_state(slurm_cluster, job_id) == "CANCELLED", what=f"job {job_id} to be cancelled"
    )
    assert slurm_cluster.command("squeue", "--noheader", f"--jobs={job_id}").strip() == ""
    assert not marker.exists()


@pytest.mark.slurm
def test_context_manager_stops_every_daemon_it_started(tmp_path):
    previous = os.environ.get("SLURM_CONF")
    with local_slurm.local_slurm_cluster(tmp_path / "cluster") as cluster:
        daemons = local_slurm._read_daemons(cluster.state_dir)
        assert [d["name"] for d in daemons] == ["munged", "slurmctld", "slurmd"]
        assert all(_alive(d) for d in daemons)
        assert os.environ["SLURM_CONF"] == str(cluster.conf_path)
        munge_dir = (cluster.state_dir / "munge").resolve()
        assert munge_dir.is_dir()
        marker = tmp_path / "job-started"
        job_id = cluster.command(
            "sbatch",
            "--parsable",
            f"--output={tmp_path / 'job.out'}",
            "--wrap",
            f"touch {marker}; sleep 67.25",
        ).strip()
        _wait_until(marker.exists, what=f"job {job_id} to start")
        assert _job_processes("sleep 67.25")
    assert not any(_alive(d) for d in daemons)
    assert os.environ.get("SLURM_CONF") == previous
    assert not munge_dir.exists()
    assert local_slurm._read_daemons(cluster.state_dir) == []
    # The running job was cancelled before the daemons stopped: no process of it is left.
    assert _job_processes("sleep 67.25") == []


@pytest.mark.slurm
def test_command_line_start_status_stop(tmp_path):
    state = tmp_path / "cli-cluster"
    run = [sys.executable, str(LOCAL_SLURM_PATH)]
    started = subprocess.run(
        [*run, "start", "--state", str(state)], capture_output=True, text=True, timeout=180
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"export SLURM_CONF={state.resolve() / 'slurm.conf'}"
    daemons = local_slurm._read_daemons(state.resolve())
    try:
        assert len(daemons) == 3 and all(_alive(d) for d in daemons)
        again = subprocess.run(
            [*run, "start", "--state", str(state)], capture_output=True, text=True, timeout=60
        )
        assert again.returncode == 2 and "already running" in again.stderr
        status = subprocess.run(
            [*run, "status", "--state", str(state)], capture_output=True, text=True, timeout=60
        )
        assert status.stdout.count("running") == 3
    finally:
        stopped = subprocess.run(
            [*run, "stop", "--state", str(state)], capture_output=True, text=True, timeout=120
        )
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.split(":")[1].split() == [str(d["pid"]) for d in daemons]
    assert not any(_alive(d) for d in daemons)
