"""Run a plan's pending jobs as a SLURM job array through submitit.

Pending jobs are cut into batches of `slurm.jobs_per_task` (several merges per allocation, so model
loading and imports are paid once per batch); each array task runs `SlurmBatch`, which is an ordinary
worker (claims + atomic result files) restricted to its batch. On preemption or timeout submitit calls
`SlurmBatch.checkpoint` and requeues the task, which simply resumes: finished jobs have result files and
are skipped. The submitting process waits by reading the result files and asking `squeue` whether array
tasks are still alive — never `sacct`, so a cluster without an accounting database does not hang it. A
cancelled task leaves its remaining jobs pending; the next `repro run` submits them again.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from repro.errors import RunnerError
from repro.facts.config import LoadedConfig, load_config
from repro.plan import JobKind, Plan, build_plan
from repro.results import ResultsStore
from repro.runner.local_runner import RunSummary, pending_jobs, run_worker, watch_results


class SlurmBatch:
    """The callable one array task runs: a worker over a fixed batch of job ids (requeue-safe)."""

    def __init__(self, config_path: str, runs_dir: str, job_ids: list[str], retry_failed: bool, claim_ttl_s: float):
        self.config_path = config_path
        self.runs_dir = runs_dir
        self.job_ids = job_ids
        self.retry_failed = retry_failed
        self.claim_ttl_s = claim_ttl_s

    def __call__(self) -> dict:
        """Run the batch. SIGTERM (SLURM's notice before it kills a preempted, requeued or cancelled task;
        submitit itself ignores it) lets the job in progress finish and starts no other: the requeued
        task resumes from the result files instead of losing a job cut off by SIGKILL."""
        stop = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            loaded = load_config(self.config_path)
            summary = run_worker(
                loaded, build_plan(loaded), Path(self.runs_dir), retry_failed=self.retry_failed,
                job_ids=set(self.job_ids), progress=False, claim_ttl_s=self.claim_ttl_s,
                stop_requested=stop.is_set,
            )
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return {"done": summary.done, "failed": summary.failed, "stopped": summary.stopped}

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption/timeout: requeue the same batch (it resumes from results)."""
        # submitit: deferred so that importing this module does not load it
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


if TYPE_CHECKING:
    from repro.runner.local_runner import RunSummary


def _parse_overrides(overrides: list[str]) -> dict:
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise RunnerError(f"--slurm-option takes KEY=VALUE, not {item!r}")
        out[key.strip()] = value.strip()
    return out


def _alive_array_ids(array_job_ids: list[str]) -> set[str]:
    """SLURM job ids (array tasks included) of ours that squeue still lists (pending or running)."""
    if not array_job_ids:
        return set()
    proc = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i", "--jobs", ",".join(array_job_ids)],
        capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return set()
        raise RunnerError(f"squeue failed: {proc.stderr.strip()}")
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def run_on_slurm(
    loaded: LoadedConfig,
    plan: Plan,
    runs_dir: Path,
    config_path: Path,
    *,
    retry_failed: bool,
    kinds: set[JobKind] | None,
    overrides: list[str],
    progress: bool = True,
    poll_s: float = 2.0,
) -> RunSummary:
    """Submit the pending jobs as a SLURM job array, follow them, and return what the result files say
    (done, failed, unfinished: an array task cancelled or dead)."""
    # submitit: deferred so that importing this module does not load it
    import submitit

    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise RunnerError("the slurm executor needs `sbatch` and `squeue` on PATH (run on a SLURM login node)")
    try:
        settings = type(loaded.config.slurm).model_validate(
            {**loaded.config.slurm.model_dump(), **_parse_overrides(overrides)}
        )
    except ValueError as exc:  # pydantic's ValidationError
        raise RunnerError(f"bad --slurm-option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc
    store = ResultsStore(runs_dir)
    todo = pending_jobs(plan, store, retry_failed=retry_failed, kinds=kinds)
    if not todo:
        print("nothing to do: every job has a result", file=sys.stderr)
        return RunSummary()
    batches = [todo[i : i + settings.jobs_per_task] for i in range(0, len(todo), settings.jobs_per_task)]
    executor = submitit.SlurmExecutor(folder=str(runs_dir / "slurm" / "%j"), max_num_timeout=settings.max_requeues,
                                      python=settings.python)
    params = dict(
        job_name=f"repro-{loaded.name}", time=settings.time_min, cpus_per_task=settings.cpus_per_task,
        mem=f"{settings.mem_gb}G", array_parallelism=settings.array_parallelism,
        signal_delay_s=settings.signal_delay_s,
    )
    if settings.partition:
        params["partition"] = settings.partition
    if settings.gpus_per_node:
        params["gpus_per_node"] = settings.gpus_per_node
    executor.update_parameters(**params)
    calls = [
        SlurmBatch(str(Path(config_path).resolve()), str(runs_dir.resolve()), [j.id for j in batch], retry_failed,
                   settings.claim_ttl_s)
        for batch in batches
    ]
    with executor.batch():
        submitted = [executor.submit(call) for call in calls]
    array_ids = sorted({job.job_id.split("_")[0] for job in submitted})
    print(f"submitted {len(todo)} jobs as {len(batches)} array task(s): SLURM job {', '.join(array_ids)}",
          file=sys.stderr)
    wanted = {j.id for j in todo}
    watch_results(store, wanted, lambda: bool(_alive_array_ids(array_ids)), f"{loaded.name} (slurm)",
                  progress=progress, poll_s=poll_s)
    return RunSummary.from_results(store, wanted)
