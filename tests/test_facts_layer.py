"""The facts layer (repro/facts/) and the offline worlds' protocol: a loaded config is built once and never
changes, the facts layer reaches no code of the layers above it, and every world kind answers the same
queries, so no caller outside repro/worlds/ branches on a world's kind."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import pytest
from test_import_graph import GRAPH, MODULES, _reachable

from repro.facts.config import LoadedConfig, load_config
from repro.facts.config_schema import AnyWorldConfig
from repro.worlds.kinds import OfflineWorld, build_world

ROOT = Path(__file__).resolve().parents[1]
WORLD_CONFIGS = {"tiny": "smoke.yaml", "trained": "demo.yaml", "smollm2": "smollm2.yaml"}


def _world_classes() -> dict[str, type]:
    union = typing.get_args(AnyWorldConfig)[0]
    classes = [typing.get_args(member)[0] for member in typing.get_args(union)]
    return {typing.get_args(cls.model_fields["kind"].annotation)[0]: cls for cls in classes}


def test_a_loaded_config_cannot_be_changed_after_loading():
    loaded = load_config(ROOT / "configs" / "paper.yaml")
    assert loaded.lock is not None and loaded.lock.bases  # the lockfile is read while loading
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.lock = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.config = loaded.config
    view = dataclasses.replace(loaded, config=loaded.config.model_copy(update={"bases": loaded.config.bases[:1]}))
    assert view.base_names == loaded.config.bases[:1] and loaded.base_names == loaded.config.bases


def test_the_facts_layer_reaches_no_code_of_the_layers_above_it():
    above = ("repro.merge", "repro.evaluate", "repro.runner", "repro.report", "repro.results", "repro.cli",
             "repro.hub", "repro.plan")
    offenders = []
    for module in (m for m in MODULES if m.startswith("repro.facts")):
        for reached, via in _reachable(module).items():
            if reached.startswith(above):
                offenders.append(f"{module} -> ... {via} -> {reached}")
            if GRAPH[reached][1] & {"torch", "transformers", "mergekit", "lm_eval"}:
                offenders.append(f"{module} -> ... {reached} imports torch-side libraries")
    assert offenders == []


@pytest.mark.parametrize("kind", sorted(WORLD_CONFIGS))
def test_every_world_kind_answers_the_world_queries(kind):
    loaded = load_config(ROOT / "configs" / WORLD_CONFIGS[kind])
    world = loaded.config.world
    assert world.kind == kind and isinstance(world, _world_classes()[kind])
    assert isinstance(world, OfflineWorld)  # typing.Protocol members are present
    assert loaded.base_names == world.base_names() and world.base_names()
    assert loaded.pool_size(world.base_names()[0]) == world.checkpoints_per_base
    names = world.finetune_names()
    assert names == [] or len(names) == world.checkpoints_per_base
    written = world.written_tasks()
    assert written is None or all(isinstance(task, str) for task in written)


def test_the_tiny_world_names_its_bases_after_its_families():
    world = load_config(ROOT / "configs" / "smoke.yaml").config.world
    assert world.base_names() == [f"tiny-{family}" for family in world.families]


def test_every_world_kind_of_the_schema_has_a_builder(tmp_path):
    from repro.worlds.kinds import _BUILDERS

    assert set(_BUILDERS) == set(_world_classes())
    with pytest.raises(TypeError):
        _BUILDERS["other"] = build_world  # read-only


def test_no_caller_outside_worlds_branches_on_a_world_kind():
    kinds = set(_world_classes())
    offenders = []
    for path in (ROOT / "repro").rglob("*.py"):
        if path.parent.name == "worlds":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                parts = [node.left, *node.comparators]
                if any(isinstance(p, ast.Constant) and p.value in kinds for p in parts) and any(
                        "kind" in ast.unparse(p) for p in parts):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "isinstance" and any(
                    cls.__name__ in ast.unparse(node.args[1]) for cls in _world_classes().values()):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_loaded_config_is_a_frozen_dataclass():
    assert dataclasses.is_dataclass(LoadedConfig) and LoadedConfig.__dataclass_params__.frozen


def test_the_worlds_reach_no_evaluation_code():
    """Building an offline world needs no evaluation harness (pinned archives come from repro.archives)."""
    offenders = [f"{module} -> ... {via} -> {reached}" for module in MODULES if module.startswith("repro.worlds")
                 for reached, via in _reachable(module).items() if reached.startswith("repro.evaluate")]
    assert offenders == []
