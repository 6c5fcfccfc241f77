"""Experiment configs (configs/*.yaml): pydantic models and the only reader of those files.

A config states a whole experiment as data: where the models come from (a generated offline `world`, or
bases and pools in checkpoints.lock), which merge methods with which parameters, the merge sizes and number
of subsets per size, the subset seed, the evaluation suite and settings, and where outputs go.

`load_config(path)` validates everything it can without touching models: unknown keys, bad values,
unknown method names and parameters (against the method catalog, `repro.method_catalog`), unknown suites, and references to
missing lockfile entries each raise one ConfigError naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
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

from repro.choices import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_EVAL_DTYPE,
    DEFAULT_MERGE_OUT_DTYPE,
    DEVICES,
    EVAL_DTYPES,
    MERGE_OUT_DTYPES,
)
from repro.errors import ConfigError, LockError, ReproError
from repro.experiment_sections import (  # noqa: F401 (sweep_points is part of this module's API)
    DEFAULT_REPORT_TABLES,
    GeometrySettings,
    ReportSettings,
    SweepSettings,
    sweep_points,
)
from repro.input_problems import (
    ProblemList,
    field_path,
    load_yaml,
    pydantic_message,
    pydantic_problems,
    shown_input,
    suggest,
    yaml_error_text,
)
from repro.paths import MODELS_DIR, SUITES_FILE
from repro.worlds.recipe import TrainedWorldConfig
from repro.worlds.smollm2_recipe import SmolLM2WorldConfig

DEFAULT_SUITES_FILE = SUITES_FILE


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


# `kind: tiny` (random models, repro.worlds.tiny), `kind: trained` (trained models, repro.worlds.trained) or
# `kind: smollm2` (SmolLM2-135M-Instruct and fine-tunes on real offline text, repro.worlds.smollm2_world)
AnyWorldConfig = Annotated[
    Annotated[WorldConfig, Tag("tiny")] | Annotated[TrainedWorldConfig, Tag("trained")]
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
    suites_file: str = DEFAULT_SUITES_FILE
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
        if isinstance(self.config.world, (TrainedWorldConfig, SmolLM2WorldConfig)):
            return [self.config.world.name]
        if self.config.world is not None:
            return [f"tiny-{family}" for family in self.config.world.families]
        return list(self.config.bases)

    def methods_for(self, wanted: list[str] | tuple[str, ...]) -> list[MethodConfig]:
        """The config's methods named (registry name or label) in `wanted`, in `wanted`'s order."""
        out: list[MethodConfig] = []
        for key in wanted:
            for method in self.config.methods:
                if key in (method.name, method.label) and method not in out:
                    out.append(method)
        return out

    @property
    def report_tables(self) -> dict[str, tuple[str, ...]]:
        """Table name ("table1", "table2", "table3") -> method names (registry names) it shows, in order.

        A table the `report:` section does not mention gets the paper's methods (DEFAULT_REPORT_TABLES)
        that this config runs; a table with no method of this config maps to ().
        """
        out = {}
        for table, default in DEFAULT_REPORT_TABLES.items():
            wanted = getattr(self.config.report, table)
            out[table] = tuple(dict.fromkeys(m.name for m in self.methods_for(default if wanted is None else wanted)))
        return out

    def report_labels(self, table: str) -> list[str]:
        """Display labels of the method configurations a table shows (variants of a method included)."""
        from repro.method_catalog import METHODS

        wanted = getattr(self.config.report, table)
        methods = self.methods_for(DEFAULT_REPORT_TABLES[table] if wanted is None else wanted)
        return [m.label or METHODS[m.name].title for m in methods]

    def appendix_config_paths(self) -> list[Path]:
        """The `report.appendix_configs` (relative to this config's folder); checked when asked for, so a
        copy of a config elsewhere still loads."""
        paths = [self.path.parent / p for p in self.config.report.appendix_configs]
        for i, path in enumerate(paths):
            if not path.is_file():
                raise ConfigError(f"appendix config {path} does not exist", path=str(self.path),
                                  field=field_path("report", "appendix_configs", i))
        return paths

    def homogeneous_indices(self, base: str, group: str) -> tuple[int, ...]:
        """A world config's expert group as 1-based checkpoint indices of the world (`homogeneous.groups`)."""
        names = [f.name for f in getattr(self.config.world, "finetunes", [])]
        return tuple(m if isinstance(m, int) else names.index(m) + 1 for m in self.config.homogeneous.groups[group])

    def pool_size(self, base: str) -> int:
        if self.config.world is not None:
            return self.config.world.checkpoints_per_base
        return len(self.lock.pool(base))


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _project_root_for(path: Path) -> Path:
    """configs/x.yaml lives in <root>/configs; otherwise the config's own folder is the root."""
    return path.parent.parent if path.parent.name == "configs" else path.parent


def load_config(path: str | Path, *, check_methods: bool = True, check_suite: bool = True) -> LoadedConfig:
    """Read and validate an experiment config. Raises ConfigError (file + field) on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found; pass an existing configs/*.yaml", path=str(path))
    try:
        raw_text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config ({exc}); pass a UTF-8 YAML file", path=str(path)) from exc
    try:
        data = load_yaml(raw_text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_text(exc), path=str(path)) from exc
    except RecursionError as error:
        raise ConfigError("YAML nested too deeply to be a config", path=str(path)) from error
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of settings at the top level", path=str(path))
    if "methods_from" in data:
        data = {**data, "methods": _methods_from(path, data)}
    if "world_from" in data:
        data = {**data, "world": _section_from(path, data, "world")}
    if "world_override" in data:  # world_from's world with some top-level keys replaced (e.g. other fine-tunes)
        override = data.pop("world_override")
        if "world_from" not in data or not isinstance(override, dict) or not isinstance(data.get("world"), dict):
            raise ConfigError("`world_override` replaces keys of the world read by `world_from`; set `world_from` "
                              "and give `world_override` as a mapping (e.g. {name: ..., finetunes: [...]})",
                              path=str(path), field="world_override")
        data = {**data, "world": {**data["world"], **override}}
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = pydantic_problems(exc, ExperimentConfig, _describe)
        if check_methods:  # also the methods' problems, which the schema cannot see
            problems += [p for p in _method_problems(data.get("methods")) if p[0] not in dict(problems)]
        raise ConfigError(path=str(path), problems=problems) from exc

    loaded = LoadedConfig(path, config, raw_text, _project_root_for(path.resolve()))
    problems: list[tuple[str, str]] = []
    if config.lockfile is not None:
        problems += _check_lock_references(loaded)
    elif config.homogeneous is not None:
        problems += _check_world_groups(loaded)
    if check_methods:
        problems += _check_methods(loaded)
    problems += _check_report(loaded)
    if check_suite:
        problems += _check_suite(loaded)
    if problems:
        raise ConfigError(path=str(path), problems=problems)
    return loaded


def _describe(err: dict, field: str) -> str:
    """One config problem with its fix (pydantic's wording plus what was given)."""
    message = pydantic_message(err)
    if err["type"] not in ("value_error", "assertion_error"):
        message += f" (got {shown_input(err.get('input'))})"
    return message


def _section_from(path: Path, data: dict, section: str):
    """`<section>_from: other.yaml` (relative to this config's folder) reuses that config's `<section>`."""
    key = f"{section}_from"
    if section in data:
        raise ConfigError(f"set either `{section}` or `{key}`, not both", path=str(path), field=key)
    source = path.parent / str(data[key])
    try:
        return load_yaml(source.read_text(encoding="utf-8"))[section]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError, RecursionError) as error:
        raise ConfigError(
            f"cannot read a `{section}` section from {source}; point {key} at a config that has one",
            path=str(path), field=key,
        ) from error


def _methods_from(path: Path, data: dict) -> list:
    """`methods_from: other.yaml` (relative to this config's folder) reuses that config's method list."""
    if "methods" in data:
        raise ConfigError("set either `methods` or `methods_from`, not both", path=str(path), field="methods_from")
    source = path.parent / str(data["methods_from"])
    try:
        other = load_yaml(source.read_text(encoding="utf-8"))
        return other["methods"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError, RecursionError) as error:
        raise ConfigError(
            f"cannot read a `methods` list from {source}; point methods_from at a config that has one",
            path=str(path), field="methods_from",
        ) from error


def _check_lock_references(loaded: LoadedConfig) -> list[tuple[str, str]]:
    """Problems of the config's references into its lockfile (bases, pool sizes, homogeneous groups)."""
    from repro.lockfile import load_lockfile

    lock_path = loaded.resolve(loaded.config.lockfile)
    try:
        lock = load_lockfile(lock_path)
    except LockError:
        if not lock_path.is_file():
            return [("lockfile", f"{lock_path} does not exist; point `lockfile` at checkpoints.lock")]
        raise
    problems: list[tuple[str, str]] = []
    known = ", ".join(lock.bases)
    for i, base in enumerate(loaded.config.bases):
        if base not in lock.bases:
            close = suggest(base, lock.bases)
            hint = f"did you mean {close!r}?" if close else f"known: {known}"
            problems.append((field_path("bases", i), f"base {base!r} is not in {lock_path.name} ({hint})"))
            continue
        pool = lock.pool(base)
        for n in loaded.config.merge.sizes:
            if n > len(pool):
                problems.append(("merge.sizes", f"merge size {n} exceeds the {len(pool)} checkpoints of base "
                                                f"{base!r}; use sizes up to {len(pool)}"))
    homogeneous = loaded.config.homogeneous
    if homogeneous is not None:
        for i, base in enumerate(homogeneous.bases):
            if base not in lock.bases:
                problems.append((field_path("homogeneous", "bases", i), f"base {base!r} is not in {lock_path.name} "
                                                            f"(known: {known})"))
                continue
            for j, experiment in enumerate(homogeneous.experiments):
                for k, group in enumerate(experiment.groups):
                    if group not in lock.bases[base].homogeneous:
                        groups = ", ".join(lock.bases[base].homogeneous) or "none"
                        problems.append((
                            field_path("homogeneous", "experiments", j, "groups", k),
                            f"base {base!r} has no homogeneous group {group!r} in {lock_path.name} "
                            f"(known: {groups})",
                        ))
    loaded.lock = lock
    return problems


def _check_world_groups(loaded: LoadedConfig) -> list[tuple[str, str]]:
    """A world config's homogeneous experiments: bases of the world, groups defined, members that exist."""
    settings, world = loaded.config.homogeneous, loaded.config.world
    problems: list[tuple[str, str]] = []
    for i, base in enumerate(settings.bases):
        if base not in loaded.base_names:
            problems.append((f"homogeneous.bases[{i}]", f"base {base!r} is not a base of this world "
                                                        f"(known: {', '.join(loaded.base_names)})"))
    groups = settings.groups or {}
    for j, experiment in enumerate(settings.experiments):
        for k, group in enumerate(experiment.groups):
            if group not in groups:
                problems.append((f"homogeneous.experiments[{j}].groups[{k}]",
                                 f"no group {group!r} in homogeneous.groups (known: {', '.join(groups) or 'none'})"))
    names = [f.name for f in getattr(world, "finetunes", [])]
    for group, members in groups.items():
        seen: set[int] = set()
        for k, member in enumerate(members):
            where = f"homogeneous.groups.{group}[{k}]"
            index = member if isinstance(member, int) else (names.index(member) + 1 if member in names else None)
            if isinstance(member, int) and not 1 <= member <= world.checkpoints_per_base:
                problems.append((where, f"checkpoint index {member} is outside 1..{world.checkpoints_per_base}"))
            elif index is None:
                known = f"fine-tunes: {', '.join(names)}" if names else "this world's checkpoints have no names; use 1-based indices"
                problems.append((where, f"no fine-tune named {member!r} ({known})"))
            elif index in seen:
                problems.append((where, f"checkpoint {member!r} is listed twice in the group"))
            seen.add(index)
    return problems


def _check_methods(loaded: LoadedConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if loaded.config.world is not None:
        pool = loaded.config.world.checkpoints_per_base
        for n in loaded.config.merge.sizes:
            if n > pool:
                problems.append(("merge.sizes", f"merge size {n} exceeds world.checkpoints_per_base ({pool}); "
                                                f"use sizes up to {pool} or more checkpoints"))
    return problems + _method_problems([m.model_dump() for m in loaded.config.methods]) + _sweep_problems(loaded)


def _method_problems(methods: object) -> list[tuple[str, str]]:
    """Unknown method names and each bad parameter, one problem each (`methods` as written)."""
    from repro.method_catalog import resolve_method_params

    problems: list[tuple[str, str]] = []
    for i, method in enumerate(methods if isinstance(methods, list) else []):
        if not isinstance(method, dict) or not isinstance(method.get("name"), str):
            continue  # the schema reports it
        try:
            resolve_method_params(method["name"])
        except ReproError as exc:
            problems.append((field_path("methods", i, "name"), exc.problems[0][1]))
            continue
        params = method.get("params")
        for key, value in (params.items() if isinstance(params, dict) else []):  # each bad parameter apart
            try:
                resolve_method_params(method["name"], {key: value})
            except ReproError as exc:
                problems.append((field_path("methods", i, "params", str(key)), exc.problems[0][1]))
    return problems


def _sweep_problems(loaded: LoadedConfig) -> list[tuple[str, str]]:
    """Every grid point of every sweep is a valid parameter set of each method it sweeps."""
    from repro.method_catalog import resolve_method_params

    problems: list[tuple[str, str]] = []
    for j, sweep in enumerate(loaded.config.sweeps):
        for method in loaded.methods_for(sweep.methods or [m.label or m.name for m in loaded.config.methods]):
            for point in sweep_points(sweep):
                try:
                    resolve_method_params(method.name, {**method.params, **point})
                except ReproError as exc:
                    where, message = exc.problems[0]
                    problems.append((field_path("sweeps", j, "grid"), f"{method.label or method.name}: {where}: {message}"))
                    break
    return problems


def _check_report(loaded: LoadedConfig) -> list[tuple[str, str]]:
    """Every method a table names is a registry method or a label of `methods` (a registry method this
    config does not run is simply absent from the table); every method a sweep names is in `methods`."""
    from repro.method_catalog import METHODS

    cfg = loaded.config
    in_config = {key for m in cfg.methods for key in (m.name, m.label) if key}
    known = ", ".join(sorted(set(METHODS) | in_config))
    problems = []
    for table in DEFAULT_REPORT_TABLES:
        for i, key in enumerate(getattr(cfg.report, table) or []):
            if key not in in_config and key not in METHODS:
                problems.append((field_path("report", table, i), f"method {key!r} is not a merge method name or a label "
                                                         f"of `methods` (known: {known})"))
    for j, sweep in enumerate(cfg.sweeps):
        for i, key in enumerate(sweep.methods):
            if key not in in_config:
                problems.append((field_path("sweeps", j, "methods", i), f"method {key!r} is not in `methods` "
                                                              f"(names or labels: {', '.join(sorted(in_config))})"))
    return problems


def _check_suite(loaded: LoadedConfig) -> list[tuple[str, str]]:
    from repro.suites import load_suites

    suites_path = loaded.resolve(loaded.config.evaluation.suites_file)
    suites = load_suites(suites_path)
    wanted = [("evaluation.suite", loaded.config.evaluation.suite)]
    if loaded.config.homogeneous is not None:
        for j, experiment in enumerate(loaded.config.homogeneous.experiments):
            wanted += [(field_path("homogeneous", "experiments", j, "suites", k), s) for k, s in enumerate(experiment.suites)]
    problems = [
        (field, f"unknown suite {name!r}; defined in {suites_path.name}: {', '.join(suites)}")
        for field, name in wanted
        if name not in suites
    ]
    world = loaded.config.world
    suite = suites.get(loaded.config.evaluation.suite)
    if isinstance(world, TrainedWorldConfig) and suite is not None:
        written = {f"{world.tasks.prefix}_{skill}" for skill in world.tasks.skills}
        if suite.kind != "local" or set(suite.task_names) != written:
            problems.append(("evaluation.suite", f"a trained world writes the tasks {', '.join(sorted(written))}; "
                                                 f"suite {suite.name!r} in {suites_path.name} must be a local "
                                                 "suite listing exactly those tasks"))
    return problems
