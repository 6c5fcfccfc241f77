"""Run the pending jobs of a plan on this machine, resumably, with one or several worker processes.

A job is pending while it has no result file. Each worker walks the plan in order, claims a job
(repro.runner.claims), executes it, and commits the result file atomically; a killed worker leaves at
most a claim that expires and a temp file that is never read. Failed jobs record their error in
failed/ and are retried only with `retry_failed`.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from repro.errors import InsufficientDiskError, ReproError, RunnerError
from repro.facts.config import LoadedConfig, load_config
from repro.plan import Job, JobKind, Plan, describe_job
from repro.results import ResultsStore
from repro.runner import job_executor
from repro.runner.claims import ClaimBoard, worker_identity
from repro.runner.gpus import worker_environment
from repro.runner.grid_merges import grid_key


@dataclass
class RunSummary:
    """What a run did: job ids done, failed, left to another worker, not ended (worker gone), and not
    started because the worker was asked to stop (`stopped`: SIGTERM of a preempted SLURM task)."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_claimed: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unfinished

    @classmethod
    def from_results(cls, store: ResultsStore, wanted: set[str]) -> RunSummary:
        """What `store`'s result files say about the jobs `wanted` (run elsewhere): done, failed, and
        unfinished (a worker that died leaves its claimed job for the next run)."""
        finished, failed = store.finished_ids(), store.failed_ids()
        return cls(done=sorted(wanted & finished), failed=sorted(wanted & failed),
                   unfinished=sorted(wanted - finished - failed))


def pending_jobs(plan: Plan, store: ResultsStore, *, retry_failed: bool, kinds: set[JobKind] | None = None) -> list[Job]:
    finished = store.finished_ids()
    failed = set() if retry_failed else store.failed_ids()
    return [
        job
        for job in plan.jobs
        if job.id not in finished and job.id not in failed and (kinds is None or job.kind in kinds)
    ]


def worker_shares(todo: list[Job], workers: int) -> list[list[Job]]:
    """`todo` split into `workers` shares of whole groups of jobs that merge in one pass
    (repro.runner.grid_merges.grid_key: same base, method and parameters; any other job is a group of its
    own), dealt in order to the share with the fewest jobs so far; each share keeps `todo`'s order."""
    groups: dict[object, list[Job]] = {}
    for job in todo:
        groups.setdefault(grid_key(job) or ("job", job.id), []).append(job)
    shares: list[list[Job]] = [[] for _ in range(max(1, workers))]
    for jobs in groups.values():
        min(shares, key=len).extend(jobs)
    position = {job.id: i for i, job in enumerate(todo)}
    return [sorted(share, key=lambda job: position[job.id]) for share in shares]


def worker_order(todo: list[Job], index: int, workers: int) -> list[Job]:
    """The order in which worker `index` of `workers` tries the jobs: its share (`worker_shares`) first,
    then the other shares, each from its end. So each worker computes its own groups' grid passes, and a
    worker that ends early takes the others' last jobs (the claims keep two workers off one job) rather
    than the ones their owners are on. A job's result does not depend on which worker runs it."""
    if workers <= 1:
        return list(todo)
    shares = worker_shares(todo, workers)
    return shares[index] + [job for i in range(1, workers) for job in reversed(shares[(index + i) % workers])]


def progress_bar(total: int, enabled: bool, desc: str):
    return tqdm(total=total, desc=desc, unit="job", disable=not enabled, dynamic_ncols=True, file=sys.stderr)


def watch_results(store: ResultsStore, wanted: set[str], still_running, desc: str, *, progress: bool,
                  poll_s: float = 0.5) -> None:
    """Show progress of jobs run elsewhere (worker processes, SLURM tasks) by reading result files only,
    until every wanted job has a result or a failure, or `still_running()` says nothing works on them."""
    watch_stores([(store, wanted)], still_running, desc, progress=progress, poll_s=poll_s)


def watch_stores(wanted: Sequence[tuple[ResultsStore, set[str]]], still_running, desc: str, *, progress: bool,
                 poll_s: float = 0.5) -> None:
    """`watch_results` over several stores, each with its wanted jobs, on one progress bar."""
    total = sum(len(ids) for _, ids in wanted)
    with progress_bar(total, progress, desc) as bar:
        seen = 0
        while True:
            ended = sum(len(ids & (store.finished_ids() | store.failed_ids())) for store, ids in wanted)
            bar.update(ended - seen)
            seen = ended
            if ended == total or not still_running():
                return
            time.sleep(poll_s)


def run_worker(
    loaded: LoadedConfig,
    plan: Plan,
    runs_dir: Path,
    *,
    retry_failed: bool = False,
    kinds: set[JobKind] | None = None,
    job_ids: set[str] | None = None,
    progress: bool = True,
    claim_ttl_s: float = 180.0,
    stop_requested: Callable[[], bool] | None = None,
    share: tuple[int, int] = (0, 1),
    eval_session=None,
    reuse: Callable[[Job], object] | None = None,
    defer: frozenset[str] = frozenset(),
) -> RunSummary:
    """One worker: run every pending job (optionally only `job_ids`) that no live worker holds. Once
    `stop_requested()` is true, no further job is started (the job running then is finished).
    `share=(i, n)`: worker i of n local workers starts with its share of the jobs (`worker_order`).
    `eval_session`: the process's EvaluationSession, kept across the configs one worker runs in turn
    (repro.runner.multi_run). `reuse(job)`: called for each claimed job before it runs (it may adopt the
    job's result from another store); the jobs in `defer` are tried last."""
    store = ResultsStore(runs_dir)
    board = ClaimBoard(runs_dir / "claims", ttl_s=claim_ttl_s)
    owner = worker_identity()
    todo = [j for j in pending_jobs(plan, store, retry_failed=retry_failed, kinds=kinds) if not job_ids or j.id in job_ids]
    todo = worker_order(todo, *share)
    todo = [j for j in todo if j.id not in defer] + [j for j in todo if j.id in defer]
    summary = RunSummary()
    executor = None

    def run_claimed(job: Job):
        if reuse is not None:
            reuse(job)
        return _run_claimed(job, loaded, runs_dir, store, owner, executor, summary, bar, todo, eval_session)

    with progress_bar(len(todo), progress, f"{loaded.name}") as bar:
        for position, job in enumerate(todo):
            if stop_requested is not None and stop_requested():
                summary.stopped.extend(j.id for j in todo[position:])
                return summary
            claim = board.try_claim(job.id, owner)
            if claim is None:
                summary.skipped_claimed.append(job.id)
                bar.update(1)
                continue
            with claim:
                executor = run_claimed(job)
            bar.update(1)
        # Jobs skipped because another worker held them: a holder that died meanwhile (kill -9) left a
        # claim that is taken over now, so its job is not left for the next run.
        for job_id in list(summary.skipped_claimed):
            job = next(j for j in todo if j.id == job_id)
            claim = None if store.has_result(job_id) else board.try_claim(job_id, owner)
            if claim is not None:
                with claim:
                    summary.skipped_claimed.remove(job_id)
                    executor = run_claimed(job)
    return summary


def _run_claimed(job: Job, loaded, runs_dir: Path, store: ResultsStore, owner: str, executor, summary, bar,
                 upcoming=(), eval_session=None):
    """Run one claimed job and commit its result (or its failure); returns the (lazily made) executor."""
    if store.has_result(job.id):  # finished by another worker since we listed the jobs
        return executor
    bar.set_postfix_str(describe_job(job), refresh=False)
    store.journal(job.id, owner, "start")
    try:
        if executor is None:
            executor = job_executor.JobExecutor(loaded, runs_dir, store)  # looked up here: replaceable in tests
            executor.upcoming = list(upcoming)  # the worker's jobs: in-memory merges of a group share a pass
            if eval_session is not None:  # tasks and tokenized requests kept from the worker's earlier config
                executor.eval_session = eval_session
        label = describe_job(job)
        executor.status = lambda text: bar.set_postfix_str(f"{label} · {text}")
        record = executor.run(job)
        store.write_result(replace(record, worker=owner))
    except InsufficientDiskError:
        store.journal(job.id, owner, "stopped")
        raise  # a machine problem, not the job's: stop the run, keep the job pending
    except Exception as exc:  # a failed job must not stop the others
        if disk_full(exc):  # nor is a full disk the job's fault: stop with one message, job stays pending
            store.journal(job.id, owner, "stopped")
            raise InsufficientDiskError(
                f"the disk filled up (or a file size limit was reached) during job {job.id} "
                f"({describe_job(job)}): {disk_full(exc)}; nothing partial was kept — free space in "
                f"{runs_dir} and run the same command again"
            ) from exc
        store.write_failure(job.to_json(), f"{type(exc).__name__}: {exc}", traceback.format_exc())
        store.journal(job.id, owner, "failed")
        summary.failed.append(job.id)
        bar.write(f"job {job.id} ({describe_job(job)}) failed: {exc}")
    else:
        store.journal(job.id, owner, "done")
        summary.done.append(job.id)
    return executor


def disk_full(exc: BaseException) -> str | None:
    """The OS error text if `exc` (or what caused it) is a full disk, quota or file size limit."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        # Rust and C++ writers (safetensors, torch) report the OS error in their message only.
        if any(f"os error {code})" in str(exc) for code in DISK_FULL_ERRNOS):
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        exc = exc.__cause__ or exc.__context__
    return None


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def run_parallel(
    config_path: Path,
    runs_dir: Path,
    plan: Plan,
    workers: int,
    *,
    retry_failed: bool,
    kinds: set[JobKind] | None,
    progress: bool = True,
    gpus: list[str] | None = None,
) -> RunSummary:
    """Run `plan` with `workers` worker processes and show their joint progress.

    With `gpus`, worker i sees only GPU gpus[i % len(gpus)] (its CUDA_VISIBLE_DEVICES, set before it
    imports torch), so each worker has its own GPU as `cuda:0`.

    Each worker is a spawned process that calls `run_worker` on this very plan (no command line is
    rebuilt; only its GPU, with `gpus`, is set in its environment); the claims keep them off each other's jobs.
    Returns what the result files say about the jobs that were pending: done, failed, and unfinished
    (a worker that died, e.g. killed, leaves its claimed job for the next run). A typed error of a
    worker (e.g. a full disk) is raised here, with the worker's message.
    """
    store = ResultsStore(runs_dir)
    todo = {j.id for j in pending_jobs(plan, store, retry_failed=retry_failed, kinds=kinds)}
    run_spawned_workers(
        _worker_process, (str(config_path), str(runs_dir), plan, retry_failed, kinds), workers, gpus,
        lambda still_running: watch_results(store, todo, still_running, f"{plan.config_name} ({workers} workers)",
                                            progress=progress))
    return RunSummary.from_results(store, todo)


def run_spawned_workers(target: Callable, args: tuple, workers: int, gpus: list[str] | None,
                        watch: Callable[[Callable[[], bool]], None]) -> None:
    """Run `workers` spawned processes (no fork of a process that may hold torch threads), process i
    calling target(*args, errors, its environment, (i, workers)) with its GPU, with `gpus`, in that
    environment; `watch(still_running)` shows their progress. Then raise, with the workers' messages, the
    typed errors they put in `errors` (a full disk as InsufficientDiskError, else RunnerError)."""
    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    procs = [context.Process(target=target, name=f"repro-worker-{i}",
                             args=(*args, errors, worker_environment(gpus, i), (i, workers)))
             for i in range(workers)]
    for proc in procs:
        proc.start()
    watch(lambda: any(p.is_alive() for p in procs))
    for proc in procs:
        proc.join()
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    if problems:
        kind = InsufficientDiskError if any(name == "InsufficientDiskError" for name, _ in problems) else RunnerError
        raise kind(problems=[(None, message) for _, message in problems])


def _worker_process(config_path: str, runs_dir: str, plan: Plan, retry_failed: bool, kinds, errors,
                    environment: dict[str, str] | None = None, share: tuple[int, int] = (0, 1)) -> None:
    """The body of one spawned worker: load the config, run the shared plan, report a typed error."""
    os.environ.update(environment or {})  # its GPU (CUDA_VISIBLE_DEVICES) before anything initializes CUDA
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        run_worker(load_config(config_path), plan, Path(runs_dir), retry_failed=retry_failed, kinds=kinds,
                   progress=False, share=share)
    except ReproError as error:
        errors.put((type(error).__name__, str(error)))
