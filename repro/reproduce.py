"""`repro reproduce`: one command per goal, doing only what is missing, in order, each step resumable.

The steps, for the bases selected (`--base`, default all of the config's):

    pin        lock resolve --as-of config  for the repos this config uses that are not pinned as of its date
    preflight  GPU and driver, HF_TOKEN for gated repos, disk, checkpoint compatibility (config.json only)
    download   the pinned checkpoints this config uses that are not complete on disk (sha256-verified)
    run        the jobs of the target (a table, or every job) without a stored result
    render     every table and figure the stored results support (repro report all)
    verify     the regenerated cells against the published ones (repro verify --run)

This module decides what each step has to do from the files on disk (lockfile, models folder, results);
it never runs a step itself. Each decision is made right before its step, from the state the previous
steps left, so an interrupted `repro reproduce` (even `kill -9`) picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from repro.budget import gpu_hours, settings_from_config
from repro.costs import load_costs
from repro.errors import ConfigError, ReproError
from repro.facts.config import LoadedConfig
from repro.hub import is_downloaded
from repro.hub.compatibility import human_bytes
from repro.plan import JobKind, build_plan
from repro.reproduce_targets import STEPS, TARGETS  # noqa: F401 (re-exported: repro.reproduce.STEPS, .TARGETS)
from repro.results import ResultsStore
from repro.runner.local_runner import pending_jobs
from repro.runner.preflight import config_repos


@dataclass(frozen=True)
class Todo:
    """What a step has to do: `reason` (one line) or None when there is nothing to do; `cost` lines."""

    reason: str | None
    cost: tuple[str, ...] = ()


def select_bases(loaded: LoadedConfig, wanted: list[str] | None) -> list[str]:
    """The config's bases restricted to `wanted` (None = all); an unknown name is a ConfigError naming them."""
    known = list(loaded.base_names)
    if not wanted:
        return known
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ConfigError(
            f"unknown base(s) {', '.join(unknown)}: {loaded.path} has {', '.join(known)}; pass one of them as "
            "BASE=... (make) or --base (repro)",
            path=str(loaded.path),
            field="bases",
        )
    return [name for name in known if name in wanted]


def restricted(loaded: LoadedConfig, bases: list[str]) -> LoadedConfig:
    """A view of `loaded` whose config has only `bases` (for the checks that walk the config's bases)."""
    cfg = loaded.config
    if cfg.lockfile is None or list(cfg.bases) == bases:
        return loaded
    update: dict = {"bases": list(bases)}
    if cfg.homogeneous is not None:
        update["homogeneous"] = cfg.homogeneous.model_copy(
            update={"bases": [b for b in cfg.homogeneous.bases if b in bases]})
    return dataclasses.replace(loaded, config=cfg.model_copy(update=update))


def used_repos(loaded: LoadedConfig, bases: list[str] | None = None) -> list[str]:
    """The lockfile repos the config uses for `bases` (bases, their pools, its homogeneous groups), in order."""
    if loaded.config.lockfile is None:
        return []
    view = restricted(loaded, bases if bases is not None else list(loaded.config.bases))
    return list(dict.fromkeys(r for repos in config_repos(view).values() for r in repos))


def plan_for(loaded: LoadedConfig, target: str, bases: list[str]):
    """The config's plan, restricted to what `target` needs and to `bases` (job ids are the full plan's)."""
    plan = build_plan(loaded)
    if target != "all":
        plan = plan_for_table(loaded, plan, target)
    return only_bases(plan, bases)


def plan_for_table(loaded: LoadedConfig, plan, table: str):
    """The part of the main grid a table needs: bases, singles and the merges of the table's methods."""
    labels = set(loaded.report_labels(table))
    return dataclasses.replace(plan, jobs=tuple(plan.table_jobs(labels)))


def only_bases(plan, bases: list[str]):
    keep = set(bases)
    return dataclasses.replace(plan, jobs=tuple(job for job in plan.jobs if job.base in keep))


# -- what each step has to do ---------------------------------------------------------------------------

def pin_todo(loaded: LoadedConfig, bases: list[str]) -> Todo:
    cfg = loaded.config
    if cfg.lockfile is None:
        return Todo(None)
    as_of = cfg.checkpoints_as_of
    entries = [loaded.lock.entry(r) for r in used_repos(loaded, bases)]
    unresolved = [e.repo_id for e in entries if not e.resolved]
    if as_of is None:
        if unresolved:
            raise ConfigError(
                f"{len(unresolved)} checkpoint(s) are not pinned (e.g. {unresolved[0]}) and the config states no "
                "experiment date: add `checkpoints_as_of: {date: YYYY-MM-DD, source: ...}`, or pin them with "
                "`repro lock resolve --as-of YYYY-MM-DD`",
                path=str(loaded.path),
                field="checkpoints_as_of",
            )
        return Todo(None)
    date = as_of.date.isoformat()
    stale = [e.repo_id for e in entries if not e.resolved or e.as_of != date]
    if not stale:
        return Todo(None)
    return Todo(f"pin {len(stale)} of {len(entries)} checkpoint(s) to their last commit at or before {date} "
                f"(e.g. {stale[0]}); reads HF_TOKEN for gated repos")


def download_todo(loaded: LoadedConfig, bases: list[str]) -> Todo:
    if loaded.config.lockfile is None:
        return Todo(None)
    models_dir = loaded.resolve(loaded.config.models_dir)
    entries = [loaded.lock.entry(r) for r in used_repos(loaded, bases)]
    missing = [e for e in entries if not is_downloaded(e, models_dir)]
    if not missing:
        return Todo(None)
    size = sum(f.size for e in missing for f in e.files)
    need = size + int(loaded.config.merge.min_free_disk_gb * 1e9)
    cost = (f"download: {human_bytes(size)} for {len(missing)} of {len(entries)} checkpoint(s) into {models_dir}",
            f"disk: {human_bytes(need)} needed there (downloads + merge.min_free_disk_gb "
            f"{loaded.config.merge.min_free_disk_gb:g} GB for merged models); {human_bytes(_free(models_dir))} free")
    return Todo(f"download {len(missing)} checkpoint(s) (e.g. {missing[0].repo_id}), verifying every file", cost)


def run_todo(loaded: LoadedConfig, plan, runs_dir: Path, costs_path: Path | None = None, *,
             retry_failed: bool = False) -> Todo:
    pending = pending_jobs(plan, ResultsStore(runs_dir), retry_failed=retry_failed)
    if not pending:
        return Todo(None)
    bases = sorted({job.base for job in plan.jobs})
    methods = sorted({job.method for job in plan.of_kind(JobKind.MERGE) if job.method})
    cost = (gpu_hours_line(loaded, bases, len(pending), len(plan.jobs), costs_path, methods=methods),)
    return Todo(f"run {len(pending)} of {len(plan.jobs)} job(s) without a result into {runs_dir}", cost)


def gpu_hours_line(loaded: LoadedConfig, bases: list[str], pending: int, total: int, costs_path: Path | None,
                   methods: list[str] | None = None) -> str:
    """Estimated GPU-hours of the pending jobs: their share of the estimate (configs/costs.yaml) for these
    bases and merge methods (default: the config's)."""
    try:
        costs = load_costs(costs_path)
        settings = dataclasses.replace(settings_from_config(loaded), bases=tuple(bases))
        if methods is not None:
            settings = dataclasses.replace(settings, methods=tuple(methods))
        hours = sum(gpu_hours(costs, settings).values())
    except ReproError as exc:
        return f"GPU-hours: no estimate ({str(exc).splitlines()[0]})"
    share = hours * pending / max(total, 1)
    return (f"GPU-hours: ~{share:.1f} for these {pending} job(s) (~{hours:.1f} for all {total}; {costs.gpu}, "
            f"from {costs.path})")


def _free(path: Path) -> int:
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free
