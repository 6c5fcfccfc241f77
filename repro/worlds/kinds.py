"""Offline worlds behind one protocol: a world config (`world:` of a config, picked by its `kind`) answers
every question the rest of the kit asks about its world, so no caller branches on the kind.

    tiny     repro.worlds.tiny_recipe.TinyWorldConfig        random tiny models (repro.worlds.tiny)
    trained  repro.worlds.recipe.TrainedWorldConfig          trained synthetic skills (repro.worlds.trained)
    smollm2  repro.worlds.smollm2_recipe.SmolLM2WorldConfig  SmolLM2-135M fine-tunes (repro.worlds.smollm2_world)

Building a world trains or generates models (torch): `build_world` imports a kind's builder only when it
is called, so reading a config stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from repro.worlds.smollm2_world import build_smollm2_world
from repro.worlds.tiny import build_tiny_world
from repro.worlds.tiny_recipe import tiny_family
from repro.worlds.trained import build_trained_world, world_folder
from repro.worlds.world_tasks import write_world_tasks


@dataclass(frozen=True)
class WorldPlace:
    """Where a world is built and what its builder may need from the experiment around it."""

    runs_root: Path  # worlds live in runs_root/worlds/ (shared by every config of the project)
    resolve: Callable[[str], Path]  # a path as a config states it -> the file (relative to the project root)
    suite_folder: Callable[[], Path]  # the folder the config's evaluation suite reads local tasks from
    log: Callable[[str], None]


class BuiltWorld(Protocol):
    """A world on disk: the base model folder and its checkpoints (1-based index i -> checkpoints[i - 1])."""

    base: Path
    checkpoints: Sequence[Path]


@runtime_checkable
class OfflineWorld(Protocol):
    """What every world config answers."""

    kind: str

    @property
    def checkpoints_per_base(self) -> int: ...

    def base_names(self) -> list[str]:
        """The bases of this world, as plans and tables name them."""
        ...

    def finetune_names(self) -> list[str]:
        """Names of the checkpoints in index order ([] when the world's checkpoints have no names)."""
        ...

    def written_tasks(self) -> frozenset[str] | None:
        """The evaluation tasks the world writes itself (its suite must list exactly these), else None."""
        ...


def build_world(world: OfflineWorld, base: str, place: WorldPlace) -> BuiltWorld:
    """Build (or reuse) the models of `base` of `world` under place.runs_root/worlds/."""
    return _BUILDERS[world.kind](world, base, place)


def _build_tiny(world, base: str, place: WorldPlace) -> BuiltWorld:
    folder = place.runs_root / "worlds" / f"{base}-seed{world.seed}-n{world.checkpoints_per_base}"
    return build_tiny_world(folder, tiny_family(base), n_checkpoints=world.checkpoints_per_base, seed=world.seed)


def _build_trained(world, base: str, place: WorldPlace) -> BuiltWorld:
    """Write the world's evaluation tasks where the config's suite reads them, then build (or reuse) it."""
    write_world_tasks(world.tasks, place.suite_folder())
    return build_trained_world(world, world_folder(place.runs_root, world), log=place.log)


def _build_smollm2(world, base: str, place: WorldPlace) -> BuiltWorld:
    """SmolLM2-135M-Instruct from the wheel pinned in the world's lockfile, and its fine-tunes."""
    return build_smollm2_world(world, place.resolve(world.lockfile), place.runs_root, log=place.log)


_BUILDERS: Mapping[str, Callable[[OfflineWorld, str, WorldPlace], BuiltWorld]] = MappingProxyType(
    {"tiny": _build_tiny, "trained": _build_trained, "smollm2": _build_smollm2})
