"""The schema of an experiment config (configs/*.yaml): pydantic models, one per section.

A config states a whole experiment as data: where the models come from (a generated offline `world`, or
bases and pools in checkpoints.lock), which merge methods with which parameters, the merge sizes and number
of subsets per size, the subset seed, the evaluation suite and settings, and where outputs go. The schema
checks what one file can show on its own; repro.facts.config reads the file (and the files it includes),
repro.facts.config_checks checks it against the other files (lockfile, suites, method catalog).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from repro.experiment_sections import GeometrySettings, ReportSettings, SweepSettings
from repro.facts.choices import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_EVAL_DTYPE,
    DEFAULT_MERGE_OUT_DTYPE,
    DEVICES,
    EVAL_DTYPES,
    MERGE_OUT_DTYPES,
)
from repro.facts.input_problems import ProblemList
from repro.facts.paths import MODELS_DIR, SUITES_FILE
from repro.worlds.recipe import TrainedWorldConfig
from repro.worlds.smollm2_recipe import SmolLM2WorldConfig
from repro.worlds.tiny_recipe import TinyWorldConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _world_kind(value: Any) -> str:
    return (value.get("kind", "tiny") if isinstance(value, dict) else getattr(value, "kind", "tiny")) or "tiny"


# `kind: tiny` (random models, repro.worlds.tiny), `kind: trained` (trained models, repro.worlds.trained) or
# `kind: smollm2` (SmolLM2-135M-Instruct and fine-tunes on real offline text, repro.worlds.smollm2_world);
# each answers the queries of repro.worlds.kinds.OfflineWorld
AnyWorldConfig = Annotated[
    Annotated[TinyWorldConfig, Tag("tiny")] | Annotated[TrainedWorldConfig, Tag("trained")]
    | Annotated[SmolLM2WorldConfig, Tag("smollm2")],
    Discriminator(_world_kind),
]


class MethodConfig(_Strict):
    """One merge configuration: a registered method name and its parameters (every one stated)."""

    name: str
    label: str | None = None  # display name in tables; defaults to the registry title
    params: dict[str, Any] = Field(default_factory=dict)


class MergeSettings(_Strict):
    sizes: list[int] = Field(default_factory=list)  # empty: no in-the-wild grid (e.g. homogeneous only)
    subsets_per_size: int = Field(default=15, ge=1)
    vocab_mismatch: Literal["truncate", "error"] = "truncate"
    out_dtype: Literal[MERGE_OUT_DTYPES] = DEFAULT_MERGE_OUT_DTYPE
    device: Literal[DEVICES] = "auto"
    keep_merged: bool = False
    min_free_disk_gb: float = Field(default=0.0, ge=0)
    # in-memory runs: merged models of one (base, method, params) computed ahead in one pass, up to this
    # much memory (repro.runner.grid_merges); 0 merges every job alone
    grid_memory_gb: float = Field(default=2.0, ge=0)

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        if any(n < 2 for n in sizes):
            raise ValueError("every merge size must be >= 2 (single checkpoints are always evaluated)")
        if len(set(sizes)) != len(sizes):
            raise ValueError("merge sizes must be distinct")
        return sorted(sizes)


class ItemSample(_Strict):
    """A fixed, seeded sample of each task's items, identical for every model (reduced reproductions)."""

    per_task: int = Field(ge=1)  # items per task (all of a task's items when it has fewer)
    seed: int = 0


class EvaluationSettings(_Strict):
    suite: str
    suites_file: str = SUITES_FILE
    dtype: Literal[EVAL_DTYPES] = DEFAULT_EVAL_DTYPE
    batch_size: str | int = "auto"
    apply_chat_template: Literal[False] = False
    limit: int | None = Field(default=None, ge=1)
    device: Literal[DEVICES] = "auto"
    in_memory: bool = False  # evaluate merged models from memory (no scratch write) when possible
    # lm-eval model: "shared" (HF with shared-context scoring, default), "hf" (stock HF path), "vllm" (GPU)
    backend: Literal[BACKENDS] = DEFAULT_BACKEND
    threads: int | None = Field(default=None, ge=1)  # torch CPU threads of a worker (None: torch's default)
    item_sample: ItemSample | None = None  # evaluate a seeded per-task item sample (same for every model)

    @model_validator(mode="after")
    def _one_subsampling(self) -> EvaluationSettings:
        if self.limit is not None and self.item_sample is not None:
            raise ValueError("set either `limit` (first N items) or `item_sample` (seeded sample), not both")
        return self


class HomogeneousExperiment(_Strict):
    """Appendix E: merge whole expert groups of the lockfile, evaluate on domain suites."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    groups: list[str] = Field(min_length=1)  # homogeneous groups of checkpoints.lock (e.g. medical, math)
    suites: list[str] = Field(min_length=1)  # suites of configs/suites.yaml to evaluate on


class HomogeneousSettings(_Strict):
    bases: list[str] = Field(min_length=1)
    experiments: list[HomogeneousExperiment] = Field(min_length=1)
    # Offline worlds only (a lockfile config takes its groups from checkpoints.lock): group name -> its
    # experts, as fine-tune names of a trained world or 1-based checkpoint indices of any world.
    groups: dict[str, list[str | int]] | None = None


class SlurmSettings(_Strict):
    """SLURM array settings for `repro run --executor slurm` (override with --slurm-option KEY=VALUE)."""

    partition: str | None = None
    gpus_per_node: int = Field(default=0, ge=0)
    cpus_per_task: int = Field(default=1, ge=1)
    mem_gb: int = Field(default=4, ge=1)
    time_min: int = Field(default=60, ge=1)
    jobs_per_task: int = Field(default=4, ge=1)  # several merges + evaluations per allocation
    array_parallelism: int = Field(default=64, ge=1)
    max_requeues: int = Field(default=3, ge=0)  # requeues after preemption / timeout
    signal_delay_s: int = Field(default=90, ge=1)
    claim_ttl_s: float = Field(default=600.0, gt=0)
    # How each array task starts Python (default: this Python). A container image as the job's command
    # prefix, e.g. "apptainer exec --nv repro.sif /repro/.venv/bin/python": sbatch stays on the login node.
    python: str | None = Field(default=None, min_length=1)


class CheckpointsAsOf(_Strict):
    """The experiment date the checkpoints are pinned to (`repro lock resolve --as-of config`) and where that
    date comes from: in-the-wild checkpoints change after a study, so the lockfile takes the last commit of
    each repository at or before this day (UTC, inclusive)."""

    date: dt.date
    source: str = Field(min_length=1)


class ExperimentConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int
    world: AnyWorldConfig | None = None
    lockfile: str | None = None
    bases: list[str] = Field(default_factory=list)
    pool: Literal["in_the_wild"] = "in_the_wild"
    models_dir: str = MODELS_DIR
    checkpoints_as_of: CheckpointsAsOf | None = None
    methods: list[MethodConfig] = Field(default_factory=list)  # required unless the config only computes geometry
    methods_from: str | None = None  # informational after loading: the config the methods were read from
    world_from: str | None = None  # informational after loading: the config the world was read from
    merge: MergeSettings
    evaluation: EvaluationSettings
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    homogeneous: HomogeneousSettings | None = None
    sweeps: list[SweepSettings] = Field(default_factory=list)
    geometry: GeometrySettings | None = None
    report: ReportSettings = Field(default_factory=ReportSettings)
    # Other experiments (config names: runs/<name>/ beside this run's folder) whose finished jobs with the
    # same content id are reused instead of rerun (e.g. the sweeps reuse the main run's base evaluations).
    reuse_results_from: list[str] = Field(default_factory=list)

    def methods_for(self, wanted: list[str] | tuple[str, ...]) -> list[MethodConfig]:
        """The config's methods named (registry name or label) in `wanted`, in `wanted`'s order."""
        out: list[MethodConfig] = []
        for key in wanted:
            for method in self.methods:
                if key in (method.name, method.label) and method not in out:
                    out.append(method)
        return out

    @property
    def uses_pool(self) -> bool:
        """Whether jobs read the in-the-wild pools of `bases` (grid, sweeps or geometry)."""
        return bool(self.merge.sizes or self.sweeps or self.geometry is not None)

    @model_validator(mode="after")
    def _source(self) -> ExperimentConfig:
        problems: list[tuple[str, str]] = []
        if (self.world is None) == (self.lockfile is None):
            problems.append(("world", "set exactly one of `world` (generated offline models) or `lockfile` "
                                      "(real checkpoints)"))
        if self.lockfile is not None and self.uses_pool and not self.bases:
            problems.append(("bases", "`bases` must list at least one base of the lockfile"))
        if self.world is not None and self.bases:
            problems.append(("bases", "`bases` is derived from the world (`families` or `name`); remove it"))
        if not self.uses_pool and self.homogeneous is None:
            problems.append(("merge.sizes", "nothing to run: set `merge.sizes`, `sweeps`, `geometry` and/or "
                                            "`homogeneous`"))
        if not self.methods and (self.merge.sizes or self.sweeps or self.homogeneous is not None):
            problems.append(("methods", "`methods` must list at least one merge method"))
        if self.checkpoints_as_of is not None and self.lockfile is None:
            problems.append(("checkpoints_as_of", "`checkpoints_as_of` pins lockfile checkpoints; a `world` config "
                                                  "has none"))
        bad = [name for name in self.reuse_results_from if not re.fullmatch(r"[A-Za-z0-9_.-]+", name)]
        if bad:
            problems.append(("reuse_results_from", f"takes config names (runs/<name>/), not {bad[0]!r}"))
        sweep_names = [sweep.name for sweep in self.sweeps]
        if len(set(sweep_names)) != len(sweep_names):
            problems.append(("sweeps", "sweep names must be distinct"))
        if self.homogeneous is not None and self.lockfile is not None and self.homogeneous.groups is not None:
            problems.append(("homogeneous.groups", "a lockfile config takes its expert groups from the lockfile's "
                                                   "`homogeneous` entries; remove `homogeneous.groups`"))
        if self.homogeneous is not None and self.world is not None and not self.homogeneous.groups:
            problems.append(("homogeneous.groups", "a `world` config names its expert groups here: group name -> "
                                                   "fine-tune names (trained world) or 1-based checkpoint indices"))
        names = [m.name for m in self.methods]
        labels = [m.label or m.name for m in self.methods]
        if len(set(zip(names, map(_canonical, (m.params for m in self.methods)), strict=True))) != len(names):
            problems.append(("methods", "the same method with the same parameters is listed twice; remove one"))
        if len(set(labels)) != len(labels):
            problems.append(("methods", "method labels must be distinct (set `label` to tell variants apart)"))
        if problems:
            raise ProblemList(problems)
        return self


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
