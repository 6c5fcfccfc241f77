"""Where a plan's input models live on disk: a generated offline world, or downloaded pinned checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

from repro.errors import RunnerError
from repro.facts.config import LoadedConfig
from repro.facts.suites import load_suites
from repro.hub import local_model_dir
from repro.merge.tensor_checks import inspect_checkpoint
from repro.worlds.kinds import BuiltWorld, WorldPlace, build_world


class ModelSources:
    def __init__(self, loaded: LoadedConfig, runs_root: Path):
        self.loaded = loaded
        self.runs_root = runs_root  # the folder holding runs/<config>/ (worlds are shared across configs)
        self._worlds: dict[str, BuiltWorld] = {}

    def _world(self, base: str) -> BuiltWorld:
        if base not in self._worlds:
            place = WorldPlace(self.runs_root, self.loaded.resolve, self._suite_folder,
                               log=lambda message: print(message, file=sys.stderr, flush=True))
            self._worlds[base] = build_world(self.loaded.config.world, base, place)
        return self._worlds[base]

    def _suite_folder(self) -> Path:
        """The folder the config's evaluation suite reads its local tasks from."""
        evaluation = self.loaded.config.evaluation
        return load_suites(self.loaded.resolve(evaluation.suites_file))[evaluation.suite].include_path

    def repo_dir(self, repo_id: str) -> Path:
        """A downloaded checkpoint by repo id (homogeneous experiments name checkpoints directly)."""
        return self._downloaded(repo_id)

    def _downloaded(self, repo_id: str) -> Path:
        models_dir = self.loaded.resolve(self.loaded.config.models_dir)
        path = local_model_dir(models_dir, repo_id)
        if not (path / "config.json").is_file():
            raise RunnerError(
                f"checkpoint {repo_id} is not downloaded to {path}; run `make download` "
                f"(or `repro download --out {models_dir}`) first"
            )
        return path

    def base_dir(self, base: str) -> Path:
        if self.loaded.config.world is not None:
            return self._world(base).base
        return self._downloaded(self.loaded.lock.bases[base].model)

    def checkpoint_dir(self, base: str, index: int) -> Path:
        if self.loaded.config.world is not None:
            return self._world(base).checkpoints[index - 1]
        return self._downloaded(self.loaded.lock.pool(base)[index - 1].repo_id)

    def prepare(self, bases: list[str]) -> None:
        """Make sure every input model exists (builds offline worlds; checks downloads).

        Downloaded checkpoints are also inspected from their headers (repro.merge.tensor_checks:
        no remote code, sound safetensors headers, float dtypes), so a hostile file stops the run
        before any job starts.
        """
        cfg = self.loaded.config
        dirs: list[Path] = []
        for base in bases if cfg.uses_pool else []:
            dirs.append(self.base_dir(base))
            for index in range(1, self.loaded.pool_size(base) + 1):
                dirs.append(self.checkpoint_dir(base, index))
        if cfg.homogeneous is not None and cfg.world is not None:  # expert groups of an offline world
            for base in cfg.homogeneous.bases:
                dirs.append(self.base_dir(base))
                for group in cfg.homogeneous.groups or {}:
                    dirs += [self.checkpoint_dir(base, i) for i in self.loaded.homogeneous_indices(base, group)]
        elif cfg.homogeneous is not None:
            for base in cfg.homogeneous.bases:
                dirs.append(self.base_dir(base))
                for experiment in cfg.homogeneous.experiments:
                    for group in experiment.groups:
                        for entry in self.loaded.lock.group(base, group):
                            dirs.append(self.repo_dir(entry.repo_id))
        if cfg.world is None:
            for path in dict.fromkeys(dirs):
                inspect_checkpoint(path)
