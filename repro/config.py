"""Experiment configs (configs/*.yaml): pydantic models and the only reader of those files.

A config states a whole experiment as data: where the models come from (a generated offline `world`, or
bases and pools in checkpoints.lock), which merge methods with which parameters, the merge sizes and number
of subsets per size, the subset seed, the evaluation suite and settings, and where outputs go.

`load_config(path)` validates everything it can without touching models: unknown keys, bad values,
unknown method names and parameters (against the merge registry), unknown suites, and references to
missing lockfile entries each raise one ConfigError naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from repro.errors import ConfigError, LockError, ReproError
from repro.worlds.recipe import TrainedWorldConfig

DEFAULT_SUITES_FILE = "configs/suites.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldConfig(_Strict):
    """A generated offline world: tiny random base models and "fine-tuned" variants (repro.worlds.tiny)."""

    kind: Literal["tiny"] = "tiny"
    families: list[Literal["llama", "qwen3"]] = Field(min_length=1)
    checkpoints_per_base: int = Field(ge=1, le=64)
    seed: int = 0


def _world_kind(value: Any) -> str:
    return (value.get("kind", "tiny") if isinstance(value, dict) else getattr(value, "kind", "tiny")) or "tiny"


# `kind: tiny` (random models, repro.worlds.tiny) or `kind: trained` (trained models, repro.worlds.trained)
AnyWorldConfig = Annotated[
    Annotated[WorldConfig, Tag("tiny")] | Annotated[TrainedWorldConfig, Tag("trained")],
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
    out_dtype: Literal["float32", "float16", "bfloat16"] = "bfloat16"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    keep_merged: bool = False
    min_free_disk_gb: float = Field(default=0.0, ge=0)

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        if any(n < 2 for n in sizes):
            raise ValueError("every merge size must be >= 2 (single checkpoints are always evaluated)")
        if len(set(sizes)) != len(sizes):
            raise ValueError("merge sizes must be distinct")
        return sorted(sizes)


class EvaluationSettings(_Strict):
    suite: str
    suites_file: str = DEFAULT_SUITES_FILE
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    batch_size: str | int = "auto"
    apply_chat_template: Literal[False] = False
    limit: int | None = Field(default=None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    in_memory: bool = False  # evaluate merged models from memory (no scratch write) when possible
    threads: int | None = Field(default=None, ge=1)  # torch CPU threads of a worker (None: torch's default)
    # lm-eval model: "shared" (HF with shared-context scoring, default), "hf" (stock HF path), "vllm" (GPU)
    backend: Literal["shared", "hf", "vllm"] = "shared"


class HomogeneousExperiment(_Strict):
    """Appendix E: merge whole expert groups of the lockfile, evaluate on domain suites."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    groups: list[str] = Field(min_length=1)  # homogeneous groups of checkpoints.lock (e.g. medical, math)
    suites: list[str] = Field(min_length=1)  # suites of configs/suites.yaml to evaluate on


class HomogeneousSettings(_Strict):
    bases: list[str] = Field(min_length=1)
    experiments: list[HomogeneousExperiment] = Field(min_length=1)


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
    models_dir: str = "runs/models"
    checkpoints_as_of: CheckpointsAsOf | None = None
    methods: list[MethodConfig] = Field(min_length=1)
    methods_from: str | None = None  # informational after loading: the config the methods were read from
    world_from: str | None = None  # informational after loading: the config the world was read from
    merge: MergeSettings
    evaluation: EvaluationSettings
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    homogeneous: HomogeneousSettings | None = None

    @model_validator(mode="after")
    def _source(self) -> ExperimentConfig:
        if (self.world is None) == (self.lockfile is None):
            raise ValueError("set exactly one of `world` (generated offline models) or `lockfile` (real checkpoints)")
        if self.lockfile is not None and self.merge.sizes and not self.bases:
            raise ValueError("`bases` must list at least one base of the lockfile")
        if self.world is not None and self.bases:
            raise ValueError("`bases` is derived from the world (`families` or `name`); remove it")
        if not self.merge.sizes and self.homogeneous is None:
            raise ValueError("nothing to run: set `merge.sizes` and/or `homogeneous`")
        if self.checkpoints_as_of is not None and self.lockfile is None:
            raise ValueError("`checkpoints_as_of` pins lockfile checkpoints; a `world` config has none")
        if self.homogeneous is not None and self.lockfile is None:
            raise ValueError("`homogeneous` experiments take their expert groups from `lockfile`")
        names = [m.name for m in self.methods]
        labels = [m.label or m.name for m in self.methods]
        if len(set(zip(names, map(_canonical, (m.params for m in self.methods)), strict=True))) != len(names):
            raise ValueError("the same method with the same parameters is listed twice")
        if len(set(labels)) != len(labels):
            raise ValueError("method labels must be distinct (set `label` to tell variants apart)")
        return self


class LoadedConfig:
    """A validated config plus where it came from and everything resolved relative to it."""

    def __init__(self, path: Path, config: ExperimentConfig, raw_text: str, project_root: Path):
        self.path = path
        self.config = config
        self.project_root = project_root
        self.config_hash = hashlib.sha256(raw_text.encode()).hexdigest()
        self.lock = None  # repro.lockfile.Lockfile for lockfile-based configs

    @property
    def name(self) -> str:
        return self.config.name

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the project root (the folder holding configs/)."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.project_root / path

    @property
    def base_names(self) -> list[str]:
        if isinstance(self.config.world, TrainedWorldConfig):
            return [self.config.world.name]
        if self.config.world is not None:
            return [f"tiny-{family}" for family in self.config.world.families]
        return list(self.config.bases)

    def pool_size(self, base: str) -> int:
        if self.config.world is not None:
            return self.config.world.checkpoints_per_base
        return len(self.lock.pool(base))


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _project_root_for(path: Path) -> Path:
    """configs/x.yaml lives in <root>/configs; otherwise the config's own folder is the root."""
    return path.parent.parent if path.parent.name == "configs" else path.parent


def load_config(path: str | Path, *, check_methods: bool = True, check_suite: bool = True) -> LoadedConfig:
    """Read and validate an experiment config. Raises ConfigError (file + field) on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found; pass an existing configs/*.yaml", path=str(path))
    raw_text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", path=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of settings at the top level", path=str(path))
    if "methods_from" in data:
        data = {**data, "methods": _methods_from(path, data)}
    if "world_from" in data:
        data = {**data, "world": _section_from(path, data, "world")}
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling against configs/README or paper.yaml"
        elif err["type"] == "missing":
            message = "required setting is missing"
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{message}{more}", path=str(path), field=field) from None

    loaded = LoadedConfig(path, config, raw_text, _project_root_for(path.resolve()))
    if config.lockfile is not None:
        _check_lock_references(loaded)
    if check_methods:
        _check_methods(loaded)
    if check_suite:
        _check_suite(loaded)
    return loaded


def _section_from(path: Path, data: dict, section: str):
    """`<section>_from: other.yaml` (relative to this config's folder) reuses that config's `<section>`."""
    key = f"{section}_from"
    if section in data:
        raise ConfigError(f"set either `{section}` or `{key}`, not both", path=str(path), field=key)
    source = path.parent / str(data[key])
    try:
        return yaml.safe_load(source.read_text(encoding="utf-8"))[section]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise ConfigError(
            f"cannot read a `{section}` section from {source}; point {key} at a config that has one",
            path=str(path), field=key,
        ) from None


def _methods_from(path: Path, data: dict) -> list:
    """`methods_from: other.yaml` (relative to this config's folder) reuses that config's method list."""
    if "methods" in data:
        raise ConfigError("set either `methods` or `methods_from`, not both", path=str(path), field="methods_from")
    source = path.parent / str(data["methods_from"])
    try:
        other = yaml.safe_load(source.read_text(encoding="utf-8"))
        return other["methods"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise ConfigError(
            f"cannot read a `methods` list from {source}; point methods_from at a config that has one",
            path=str(path), field="methods_from",
        ) from None


def _check_lock_references(loaded: LoadedConfig) -> None:
    from repro.lockfile import load_lockfile

    lock_path = loaded.resolve(loaded.config.lockfile)
    try:
        lock = load_lockfile(lock_path)
    except LockError:
        raise
    for i, base in enumerate(loaded.config.bases):
        if base not in lock.bases:
            known = ", ".join(lock.bases)
            raise ConfigError(
                f"base {base!r} is not in {lock_path.name} (known: {known})",
                path=str(loaded.path),
                field=f"bases[{i}]",
            )
        pool = lock.pool(base)
        too_big = [n for n in loaded.config.merge.sizes if n > len(pool)]
        if too_big:
            raise ConfigError(
                f"merge size {too_big[0]} exceeds the {len(pool)} checkpoints of base {base!r}",
                path=str(loaded.path),
                field="merge.sizes",
            )
    homogeneous = loaded.config.homogeneous
    if homogeneous is not None:
        for i, base in enumerate(homogeneous.bases):
            if base not in lock.bases:
                raise ConfigError(f"base {base!r} is not in {lock_path.name}", path=str(loaded.path),
                                  field=f"homogeneous.bases[{i}]")
            for j, experiment in enumerate(homogeneous.experiments):
                for k, group in enumerate(experiment.groups):
                    if group not in lock.bases[base].homogeneous:
                        known = ", ".join(lock.bases[base].homogeneous) or "none"
                        raise ConfigError(
                            f"base {base!r} has no homogeneous group {group!r} in {lock_path.name} (known: {known})",
                            path=str(loaded.path), field=f"homogeneous.experiments[{j}].groups[{k}]",
                        )
    loaded.lock = lock


def _check_methods(loaded: LoadedConfig) -> None:
    from repro.merge.registry import resolve_method_params

    if loaded.config.world is not None:
        too_big = [n for n in loaded.config.merge.sizes if n > loaded.config.world.checkpoints_per_base]
        if too_big:
            raise ConfigError(
                f"merge size {too_big[0]} exceeds the world's {loaded.config.world.checkpoints_per_base} checkpoints",
                path=str(loaded.path),
                field="merge.sizes",
            )
    for i, method in enumerate(loaded.config.methods):
        try:
            resolve_method_params(method.name, method.params)
        except ReproError as exc:
            raise ConfigError(str(exc), path=str(loaded.path), field=f"methods[{i}]") from None


def _check_suite(loaded: LoadedConfig) -> None:
    from repro.evaluate.suites import load_suites

    suites_path = loaded.resolve(loaded.config.evaluation.suites_file)
    suites = load_suites(suites_path)
    wanted = [("evaluation.suite", loaded.config.evaluation.suite)]
    if loaded.config.homogeneous is not None:
        for j, experiment in enumerate(loaded.config.homogeneous.experiments):
            wanted += [(f"homogeneous.experiments[{j}].suites[{k}]", s) for k, s in enumerate(experiment.suites)]
    for field, name in wanted:
        if name not in suites:
            raise ConfigError(
                f"unknown suite {name!r}; defined in {suites_path.name}: {', '.join(suites)}",
                path=str(loaded.path),
                field=field,
            )
    world = loaded.config.world
    if isinstance(world, TrainedWorldConfig):
        suite = suites[loaded.config.evaluation.suite]
        written = {f"{world.tasks.prefix}_{skill}" for skill in world.tasks.skills}
        if suite.kind != "local" or set(suite.task_names) != written:
            raise ConfigError(
                f"a trained world writes the tasks {', '.join(sorted(written))}; suite {suite.name!r} in "
                f"{suites_path.name} must be a local suite listing exactly those tasks",
                path=str(loaded.path), field="evaluation.suite",
            )
