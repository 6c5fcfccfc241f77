"""The job plan: every model the study evaluates, as jobs with stable ids derived from their content.

Per base: one `base` job (evaluate the base model), one `single` job per checkpoint (n = 1), and one
`merge` job per (method, subset) for every merge size, using the subsets of `repro.facts.subset_sampler` (the
same subsets for every method). A config with `homogeneous` experiments (the paper's Appendix E) adds,
per base, a `base` evaluation on those experiments' suites and one `homogeneous` merge job per
(method, experiment), whose inputs are whole expert groups of the lockfile (`checkpoints`, repo ids) or,
for an offline world, of `homogeneous.groups` (`subset`, checkpoint indices). A job id is a hash of what determines its result (model identity, method
and parameters, subset, evaluation settings), so adding a method adds jobs and keeps every other id.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from repro.atomic_io import atomic_write_json
from repro.experiment_sections import sweep_points
from repro.facts.config import LoadedConfig
from repro.job_ids import content_id, entry_identity, job_content, model_identity
from repro.job_kinds import MERGING_KINDS, JobKind, Part, PartOf
from repro.method_catalog import METHODS, resolve_method_params

PLAN_VERSION = 1


# The stored `experiment` of the jobs that belong to no named experiment (plan.json, result records).
_HOMOGENEOUS_BASE_EXPERIMENT = "homogeneous"
_GEOMETRY_EXPERIMENT = "geometry"


@dataclass(frozen=True)
class Job:
    id: str
    kind: JobKind
    base: str
    n: int  # number of checkpoints in the model (0 for the base)
    subset: tuple[int, ...] = ()  # checkpoint indices, 1-based, as in the paper's figures
    method: str | None = None
    label: str | None = None  # display name of the method configuration
    params: dict[str, Any] = field(default_factory=dict)
    # The stored form of `part_of` (plan.json and result records keep this field, so ids and files stay
    # unchanged): None for the main grid; the sweep's name (MERGE); "geometry" (GEOMETRY); the experiment's
    # name (HOMOGENEOUS); "homogeneous" (BASE: the Appendix E base evaluation). Read it through `part_of`.
    experiment: str | None = None
    checkpoints: tuple[str, ...] = ()  # homogeneous: input repo ids (not pool indices)
    suites: tuple[str, ...] = ()  # suites to evaluate on; empty = the config's evaluation.suite

    def __post_init__(self):
        object.__setattr__(self, "kind", JobKind(self.kind))  # a plain string from JSON or a test
        self.part_of  # noqa: B018 -- a kind and experiment that do not fit together raise ValueError here

    @cached_property  # computed once, in __post_init__ (a frozen dataclass: the fields never change)
    def part_of(self) -> PartOf:
        """The part of the study this job belongs to, from its kind and stored `experiment`."""
        kind, experiment = self.kind, self.experiment
        if kind is JobKind.GEOMETRY:
            return PartOf(Part.GEOMETRY)
        if kind is JobKind.HOMOGENEOUS and experiment:
            return PartOf(Part.HOMOGENEOUS, experiment)
        if experiment is None and kind in (JobKind.BASE, JobKind.SINGLE, JobKind.MERGE):
            return PartOf(Part.GRID)
        if kind is JobKind.MERGE:
            return PartOf(Part.SWEEP, experiment)
        if kind is JobKind.BASE and experiment == _HOMOGENEOUS_BASE_EXPERIMENT:
            return PartOf(Part.HOMOGENEOUS)
        raise ValueError(f"a {kind} job cannot belong to experiment {experiment!r}")

    @property
    def in_main_grid(self) -> bool:
        """A job of the main grid (base, single or merge of Table 1 and Figures 3-4)."""
        return self.part_of.part is Part.GRID

    @property
    def is_reference(self) -> bool:
        """The base or a single checkpoint of the main grid: the references of every table and sweep."""
        return self.in_main_grid and self.kind in (JobKind.BASE, JobKind.SINGLE)

    @property
    def is_grid_merge(self) -> bool:
        return self.in_main_grid and self.kind is JobKind.MERGE

    @property
    def merges(self) -> bool:
        """Whether the job's model is a merge (a grid, sweep or homogeneous merge job)."""
        return self.kind in MERGING_KINDS

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("subset", "checkpoints", "suites"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict) -> Job:
        return cls(**{**data, **{k: tuple(data.get(k, ())) for k in ("subset", "checkpoints", "suites")}})


@dataclass(frozen=True)
class SweepPoint:
    """One point of an Appendix C sweep: which merge job holds it (jobs are shared by content id)."""

    sweep: str
    base: str
    label: str
    values: dict[str, Any]  # the grid parameters of this point
    job_id: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class BaseCounts:
    """The jobs of one base, counted by what they are (`repro plan` prints these)."""

    base_evaluations: int = 0  # of the main grid (and sweeps)
    singles: int = 0
    merges: dict[str, int] = field(default_factory=dict)  # method label -> grid merges
    sweeps: dict[tuple[str, str], int] = field(default_factory=dict)  # (sweep, label) -> sweep points
    geometry: int = 0
    pool: int = 0  # checkpoints of the geometry job (its pool)
    homogeneous_bases: int = 0  # Appendix E base evaluations
    homogeneous: dict[tuple[str, str], int] = field(default_factory=dict)  # (experiment, label) -> merges


@dataclass(frozen=True)
class Plan:
    config_name: str
    config_hash: str
    seed: int
    subsets: dict[str, dict[int, list[tuple[int, ...]]]]  # base -> n -> subsets
    jobs: tuple[Job, ...]
    sweep_points: tuple[SweepPoint, ...] = ()

    # -- the queries of the plan's callers --------------------------------------------------------------
    def main_grid(self) -> list[Job]:
        """Every job of the main grid (base, single and merge jobs of Table 1 and Figures 3-4)."""
        return [job for job in self.jobs if job.in_main_grid]

    def references(self, base: str | None = None) -> list[Job]:
        """The base and single-checkpoint jobs of the main grid (of one base, if given)."""
        return [job for job in self.jobs if job.is_reference and base in (None, job.base)]

    def base_reference(self, base: str) -> Job | None:
        """The main grid's evaluation of `base` itself (None when the plan has none)."""
        return next((job for job in self.references(base) if job.kind is JobKind.BASE), None)

    def grid_merges(self, labels=None) -> list[Job]:
        """The merge jobs of the main grid (only those whose method label is in `labels`, if given)."""
        return [job for job in self.jobs if job.is_grid_merge and (labels is None or job.label in labels)]

    def grid_labels(self) -> list[str]:
        """The method labels of the main grid, in plan order."""
        return list(dict.fromkeys(job.label for job in self.grid_merges()))

    def table_jobs(self, labels) -> list[Job]:
        """What a table of the main grid with these method labels reads: the references and their merges."""
        return [job for job in self.jobs if job.is_reference or (job.is_grid_merge and job.label in labels)]

    def of_part(self, part: Part, name: str | None = None) -> list[Job]:
        """The jobs of one part of the study (of one sweep or homogeneous experiment, if `name` is given)."""
        return [job for job in self.jobs if job.part_of.part is part and name in (None, job.part_of.name)]

    def homogeneous_jobs(self) -> list[Job]:
        """Appendix E: the base evaluations and merge jobs of the homogeneous experiments."""
        return self.of_part(Part.HOMOGENEOUS)

    def of_kind(self, *kinds: JobKind) -> list[Job]:
        return [job for job in self.jobs if job.kind in kinds]

    def base_counts(self) -> dict[str, BaseCounts]:
        """Per base, in plan order: its jobs counted by kind and part of the study."""
        out: dict[str, BaseCounts] = {}
        for job in self.jobs:
            counts = out.setdefault(job.base, BaseCounts())
            part = job.part_of
            match job.kind:
                case JobKind.BASE if part.part is Part.HOMOGENEOUS:
                    counts.homogeneous_bases += 1
                case JobKind.BASE:
                    counts.base_evaluations += 1
                case JobKind.SINGLE:
                    counts.singles += 1
                case JobKind.MERGE if part.part is Part.SWEEP:
                    counts.sweeps[(part.name, job.label)] = counts.sweeps.get((part.name, job.label), 0) + 1
                case JobKind.MERGE:
                    counts.merges[job.label] = counts.merges.get(job.label, 0) + 1
                case JobKind.GEOMETRY:
                    counts.geometry += 1
                    counts.pool = max(counts.pool, len(job.subset))
                case JobKind.HOMOGENEOUS:
                    key = (part.name, job.label)
                    counts.homogeneous[key] = counts.homogeneous.get(key, 0) + 1
                case _:
                    raise AssertionError(f"unhandled job kind {job.kind!r}")
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Per base: number of jobs per kind/method label."""
        out: dict[str, Counter] = {}
        for job in self.jobs:
            match job.kind:
                case JobKind.MERGE if job.part_of.part is Part.SWEEP:
                    key = f"sweep:{job.experiment}:{job.label}"
                case JobKind.MERGE:
                    key = f"merge:{job.label}"
                case JobKind.GEOMETRY:
                    key = "geometry"
                case JobKind.HOMOGENEOUS:
                    key = f"homogeneous:{job.experiment}:{job.label}"
                case JobKind.BASE | JobKind.SINGLE:
                    key = f"{job.kind}:{job.experiment}" if job.experiment else str(job.kind)
                case _:
                    raise AssertionError(f"unhandled job kind {job.kind!r}")
            out.setdefault(job.base, Counter())[key] += 1
        return {base: dict(counter) for base, counter in out.items()}

    def to_json(self) -> dict:
        return {
            "version": PLAN_VERSION,
            "config": self.config_name,
            "config_hash": self.config_hash,
            "seed": self.seed,
            "subsets": {
                base: {str(n): [list(s) for s in subsets] for n, subsets in by_n.items()}
                for base, by_n in self.subsets.items()
            },
            "jobs": [job.to_json() for job in self.jobs],
            "sweep_points": [point.to_json() for point in self.sweep_points],
        }


def describe_job(job: Job) -> str:
    """One human line naming a job (progress bars, failure records)."""
    match job.kind:
        case JobKind.MERGE:
            where = f" ({job.experiment})" if job.experiment else ""
            return f"{job.base} {job.label} n={job.n} {list(job.subset)}{where}"
        case JobKind.HOMOGENEOUS:
            return f"{job.base} {job.label} homogeneous {job.experiment} ({job.n} checkpoints)"
        case JobKind.SINGLE:
            return f"{job.base} checkpoint {job.subset[0]}"
        case JobKind.GEOMETRY:
            return f"{job.base} task-vector geometry"
        case JobKind.BASE:
            return f"{job.base} base" + (f" ({job.experiment})" if job.experiment else "")
    raise AssertionError(f"unhandled job kind {job.kind!r}")


def build_plan(loaded: LoadedConfig) -> Plan:
    cfg = loaded.config
    evaluation = {"suite": cfg.evaluation.suite, "dtype": cfg.evaluation.dtype, "limit": cfg.evaluation.limit}
    if cfg.evaluation.item_sample is not None:  # only then: ids of existing configs stay unchanged
        evaluation["item_sample"] = cfg.evaluation.item_sample.model_dump()
    merge_settings = {"vocab_mismatch": cfg.merge.vocab_mismatch, "out_dtype": cfg.merge.out_dtype}
    jobs: dict[str, Job] = {}  # by id: a job several experiments need (e.g. the base model) is planned once
    subsets: dict[str, dict[int, list[tuple[int, ...]]]] = {}
    points: list[SweepPoint] = []
    methods = [
        (method.name, method.label or METHODS[method.name].title, resolve_method_params(method.name, method.params))
        for method in cfg.methods
    ]
    for base in loaded.base_names if cfg.uses_pool else []:
        pool_size = loaded.pool_size(base)

        def add(kind: JobKind, subset: tuple[int, ...], method=None, label=None, params=None, base=base,
                experiment=None) -> str:
            content = job_content(kind, model_identity(loaded, base, subset), evaluation=evaluation, method=method,
                                  params=params, merge=merge_settings)
            job = Job(content_id(content), kind, base, len(subset), subset, method, label, params or {}, experiment)
            jobs.setdefault(job.id, job)
            return job.id

        if cfg.merge.sizes or cfg.sweeps:
            add(JobKind.BASE, ())
            for index in range(1, pool_size + 1):
                add(JobKind.SINGLE, (index,))
        if cfg.merge.sizes:
            # numpy (through the subset sampler): deferred so that importing this module, and `repro --help`, does not load it
            from repro.facts.subset_sampler import sample_subsets

            by_n = {
                n: sample_subsets(pool_size, n, cfg.merge.subsets_per_size, seed=cfg.seed, base=base)
                for n in cfg.merge.sizes
            }
            subsets[base] = by_n
            for name, label, params in methods:
                for n in cfg.merge.sizes:
                    for subset in by_n[n]:
                        add(JobKind.MERGE, subset, name, label, params)
        everything = tuple(range(1, pool_size + 1))
        for sweep in cfg.sweeps:
            for method in cfg.methods_for(sweep.methods or [m.label or m.name for m in cfg.methods]):
                label = method.label or METHODS[method.name].title
                for values in sweep_points(sweep):
                    params = resolve_method_params(method.name, {**method.params, **values})
                    job_id = add(JobKind.MERGE, everything, method.name, label, params, experiment=sweep.name)
                    points.append(SweepPoint(sweep.name, base, label, values, job_id))
        if cfg.geometry is not None:
            add(JobKind.GEOMETRY, everything, experiment=_GEOMETRY_EXPERIMENT)
    planned = list(jobs.values())
    if cfg.homogeneous is not None:
        planned += [job for job in _homogeneous_jobs(loaded, methods, evaluation, merge_settings) if job.id not in jobs]
    ids = [job.id for job in planned]
    if len(set(ids)) != len(ids):  # only possible if two identical jobs were configured
        raise ValueError("duplicate jobs in plan")
    return Plan(cfg.name, loaded.config_hash, cfg.seed, subsets, tuple(planned), tuple(points))


def _homogeneous_jobs(loaded: LoadedConfig, methods, evaluation: dict, merge_settings: dict) -> list[Job]:
    if loaded.config.world is not None:
        return _world_homogeneous_jobs(loaded, methods, evaluation, merge_settings)
    lock, settings = loaded.lock, loaded.config.homogeneous
    jobs = []
    all_suites = tuple(dict.fromkeys(s for e in settings.experiments for s in e.suites))
    for base in settings.bases:
        base_identity = entry_identity(lock, lock.bases[base].model)
        content = job_content(JobKind.BASE, {"base": base_identity}, evaluation={**evaluation, "suites": all_suites},
                              part=Part.HOMOGENEOUS)
        jobs.append(Job(content_id(content), JobKind.BASE, base, 0, suites=all_suites,
                        experiment=_HOMOGENEOUS_BASE_EXPERIMENT))
        for experiment in settings.experiments:
            repo_ids = tuple(dict.fromkeys(e.repo_id for g in experiment.groups for e in lock.group(base, g)))
            suites = tuple(experiment.suites)
            for name, label, params in methods:
                models = {"base": base_identity, "checkpoints": [entry_identity(lock, r) for r in repo_ids]}
                content = job_content(JobKind.HOMOGENEOUS, models, evaluation={**evaluation, "suites": suites},
                                      method=name, params=params, merge=merge_settings, part=Part.HOMOGENEOUS)
                jobs.append(Job(content_id(content), JobKind.HOMOGENEOUS, base, len(repo_ids), (), name, label, params,
                                experiment.name, repo_ids, suites))
    return jobs


def _world_homogeneous_jobs(loaded: LoadedConfig, methods, evaluation: dict, merge_settings: dict) -> list[Job]:
    """Appendix E on an offline world: the groups of `homogeneous.groups` are checkpoint indices of the world,
    so a merge job's inputs are a `subset`, identified like every other world job (model_identity)."""
    settings = loaded.config.homogeneous
    jobs = []
    all_suites = tuple(dict.fromkeys(s for e in settings.experiments for s in e.suites))
    for base in settings.bases:
        content = job_content(JobKind.BASE, model_identity(loaded, base, ()),
                              evaluation={**evaluation, "suites": all_suites}, part=Part.HOMOGENEOUS)
        jobs.append(Job(content_id(content), JobKind.BASE, base, 0, suites=all_suites,
                        experiment=_HOMOGENEOUS_BASE_EXPERIMENT))
        for experiment in settings.experiments:
            subset = tuple(dict.fromkeys(i for g in experiment.groups for i in loaded.homogeneous_indices(base, g)))
            suites = tuple(experiment.suites)
            for name, label, params in methods:
                content = job_content(JobKind.HOMOGENEOUS, model_identity(loaded, base, subset),
                                      evaluation={**evaluation, "suites": suites}, method=name, params=params,
                                      merge=merge_settings, part=Part.HOMOGENEOUS)
                jobs.append(Job(content_id(content), JobKind.HOMOGENEOUS, base, len(subset), subset, name, label, params,
                                experiment.name, (), suites))
    return jobs


def write_plan(plan: Plan, runs_dir: Path) -> Path:
    """Write runs_dir/plan.json atomically; an identical plan already there is left untouched."""
    path = runs_dir / "plan.json"
    try:
        if json.loads(path.read_text(encoding="utf-8")) == plan.to_json():
            return path
    except (OSError, ValueError):
        pass
    return atomic_write_json(path, plan.to_json())
