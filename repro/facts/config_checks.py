"""Checks of a config against the other files it refers to: its lockfile (bases, pools, expert groups),
the suites file, the method catalog (names and parameters, sweep points) and its offline world's groups.

Each check returns every problem it finds as (field, message); repro.facts.config raises them as one ConfigError.
"""

from __future__ import annotations

from pathlib import Path

from repro.errors import LockError, ReproError
from repro.experiment_sections import DEFAULT_REPORT_TABLES, sweep_points
from repro.facts.config_schema import ExperimentConfig
from repro.facts.input_problems import field_path, suggest
from repro.facts.lockfile import Lockfile, load_lockfile
from repro.facts.suites import load_suites
from repro.method_catalog import METHODS, resolve_method_params

Problems = list[tuple[str, str]]


def read_config_lock(config: ExperimentConfig, lock_path: Path) -> tuple[Lockfile | None, Problems]:
    """The config's lockfile and the problems of the config's references into it (bases, pool sizes,
    homogeneous groups); no lockfile when it does not exist (a problem)."""
    try:
        lock = load_lockfile(lock_path)
    except LockError:
        if not lock_path.is_file():
            return None, [("lockfile", f"{lock_path} does not exist; point `lockfile` at checkpoints.lock")]
        raise
    problems: Problems = []
    known = ", ".join(lock.bases)
    for i, base in enumerate(config.bases):
        if base not in lock.bases:
            close = suggest(base, lock.bases)
            hint = f"did you mean {close!r}?" if close else f"known: {known}"
            problems.append((field_path("bases", i), f"base {base!r} is not in {lock_path.name} ({hint})"))
            continue
        pool = lock.pool(base)
        for n in config.merge.sizes:
            if n > len(pool):
                problems.append(("merge.sizes", f"merge size {n} exceeds the {len(pool)} checkpoints of base "
                                                f"{base!r}; use sizes up to {len(pool)}"))
    homogeneous = config.homogeneous
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
    return lock, problems


def world_group_problems(config: ExperimentConfig) -> Problems:
    """A world config's homogeneous experiments: bases of the world, groups defined, members that exist."""
    settings, world = config.homogeneous, config.world
    base_names = world.base_names()
    problems: list[tuple[str, str]] = []
    for i, base in enumerate(settings.bases):
        if base not in base_names:
            problems.append((f"homogeneous.bases[{i}]", f"base {base!r} is not a base of this world "
                                                        f"(known: {', '.join(base_names)})"))
    groups = settings.groups or {}
    for j, experiment in enumerate(settings.experiments):
        for k, group in enumerate(experiment.groups):
            if group not in groups:
                problems.append((f"homogeneous.experiments[{j}].groups[{k}]",
                                 f"no group {group!r} in homogeneous.groups (known: {', '.join(groups) or 'none'})"))
    names = world.finetune_names()
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


def method_problems(config: ExperimentConfig) -> Problems:
    """Merge sizes a world's pool can give, the config's methods and parameters, and every sweep point."""
    problems: list[tuple[str, str]] = []
    if config.world is not None:
        pool = config.world.checkpoints_per_base
        for n in config.merge.sizes:
            if n > pool:
                problems.append(("merge.sizes", f"merge size {n} exceeds world.checkpoints_per_base ({pool}); "
                                                f"use sizes up to {pool} or more checkpoints"))
    return problems + written_method_problems([m.model_dump() for m in config.methods]) + _sweep_problems(config)


def written_method_problems(methods: object) -> Problems:
    """Unknown method names and each bad parameter, one problem each (`methods` as written)."""
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


def _sweep_problems(config: ExperimentConfig) -> Problems:
    """Every grid point of every sweep is a valid parameter set of each method it sweeps."""
    problems: list[tuple[str, str]] = []
    for j, sweep in enumerate(config.sweeps):
        for method in config.methods_for(sweep.methods or [m.label or m.name for m in config.methods]):
            for point in sweep_points(sweep):
                try:
                    resolve_method_params(method.name, {**method.params, **point})
                except ReproError as exc:
                    where, message = exc.problems[0]
                    problems.append((field_path("sweeps", j, "grid"), f"{method.label or method.name}: {where}: {message}"))
                    break
    return problems


def report_problems(cfg: ExperimentConfig) -> Problems:
    """Every method a table names is a registry method or a label of `methods` (a registry method this
    config does not run is simply absent from the table); every method a sweep names is in `methods`."""
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


def suite_problems(config: ExperimentConfig, suites_path: Path) -> Problems:
    """Every suite the config names is in its suites file (`suites_path`); a world that writes its own
    tasks gets a suite of exactly those tasks."""
    suites = load_suites(suites_path)
    wanted = [("evaluation.suite", config.evaluation.suite)]
    if config.homogeneous is not None:
        for j, experiment in enumerate(config.homogeneous.experiments):
            wanted += [(field_path("homogeneous", "experiments", j, "suites", k), s) for k, s in enumerate(experiment.suites)]
    problems = [
        (field, f"unknown suite {name!r}; defined in {suites_path.name}: {', '.join(suites)}")
        for field, name in wanted
        if name not in suites
    ]
    world = config.world
    suite = suites.get(config.evaluation.suite)
    written = world.written_tasks() if world is not None else None
    if written is not None and suite is not None:
        if suite.kind != "local" or set(suite.task_names) != written:
            problems.append(("evaluation.suite", f"a {world.kind} world writes the tasks {', '.join(sorted(written))}; "
                                                 f"suite {suite.name!r} in {suites_path.name} must be a local "
                                                 "suite listing exactly those tasks"))
    return problems
