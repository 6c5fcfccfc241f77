"""Experiment configs (configs/*.yaml): the only reader of those files.

`load_config(path)` reads a config and the sections it includes from other configs (`methods_from`,
`world_from` with `world_override`), validates it against the schema (repro.facts.config_schema) and against the
files it refers to (repro.facts.config_checks: lockfile entries, suites, method names and parameters of the
method catalog, `repro.method_catalog`), and returns one immutable LoadedConfig. Every problem found raises
one ConfigError naming the file and each field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from repro.errors import ConfigError
from repro.experiment_sections import DEFAULT_REPORT_TABLES
from repro.facts.config_checks import (
    method_problems,
    read_config_lock,
    report_problems,
    suite_problems,
    world_group_problems,
    written_method_problems,
)
from repro.facts.config_schema import ExperimentConfig
from repro.facts.input_problems import (
    field_path,
    load_yaml,
    pydantic_message,
    pydantic_problems,
    shown_input,
    yaml_error_text,
)
from repro.facts.lockfile import Lockfile
from repro.method_catalog import METHODS


def resolve_path(project_root: Path, relative: str) -> Path:
    """A path as a config states it: absolute, or relative to the project root (the folder holding configs/)."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else project_root / path


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from and everything resolved relative to it (built once by
    `load_config`; a changed view is a new object: dataclasses.replace(loaded, config=...))."""

    path: Path
    config: ExperimentConfig
    project_root: Path
    config_hash: str  # sha256 of the config file's text
    lock: Lockfile | None = None  # the config's lockfile (lockfile-based configs)

    @property
    def name(self) -> str:
        return self.config.name

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the project root (the folder holding configs/)."""
        return resolve_path(self.project_root, relative)

    @property
    def base_names(self) -> list[str]:
        if self.config.world is not None:
            return self.config.world.base_names()
        return list(self.config.bases)

    @property
    def report_tables(self) -> dict[str, tuple[str, ...]]:
        """Table name ("table1", "table2", "table3") -> method names (registry names) it shows, in order.

        A table the `report:` section does not mention gets the paper's methods (DEFAULT_REPORT_TABLES)
        that this config runs; a table with no method of this config maps to ().
        """
        out = {}
        for table, default in DEFAULT_REPORT_TABLES.items():
            wanted = getattr(self.config.report, table)
            out[table] = tuple(dict.fromkeys(m.name for m in self.config.methods_for(default if wanted is None else wanted)))
        return out

    def report_labels(self, table: str) -> list[str]:
        """Display labels of the method configurations a table shows (variants of a method included)."""
        wanted = getattr(self.config.report, table)
        methods = self.config.methods_for(DEFAULT_REPORT_TABLES[table] if wanted is None else wanted)
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
        names = self.config.world.finetune_names()
        return tuple(m if isinstance(m, int) else names.index(m) + 1 for m in self.config.homogeneous.groups[group])

    def pool_size(self, base: str) -> int:
        if self.config.world is not None:
            return self.config.world.checkpoints_per_base
        return len(self.lock.pool(base))


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
            problems += [p for p in written_method_problems(data.get("methods")) if p[0] not in dict(problems)]
        raise ConfigError(path=str(path), problems=problems) from exc

    project_root = _project_root_for(path.resolve())
    problems: list[tuple[str, str]] = []
    lock = None
    if config.lockfile is not None:
        lock, problems = read_config_lock(config, resolve_path(project_root, config.lockfile))
    loaded = LoadedConfig(path, config, project_root, hashlib.sha256(raw_text.encode()).hexdigest(), lock)
    if config.lockfile is None and config.homogeneous is not None:
        problems += world_group_problems(config)
    if check_methods:
        problems += method_problems(config)
    problems += report_problems(config)
    if check_suite:
        problems += suite_problems(config, loaded.resolve(config.evaluation.suites_file))
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
