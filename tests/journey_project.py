"""A fresh project laid out like a clone of the kit, with a tiny config shaped like configs/paper.yaml whose
checkpoints live on a LocalHub (tests/hub_server.py) with dated commits, for the reviewer's-journey tests.

`build_project(root, hub)`: root/ gets the Makefile, configs/suites.yaml, tasks/, configs/journey.yaml
(two bases, their pools, Table 1's methods, checkpoints_as_of) and checkpoints.lock with every revision
null (nothing pinned, nothing downloaded, no runs). Each repo on the hub has three commits: one before the
config's date, the right one (RIGHT_DATE) and a newer one; only the right one holds the world's files.
Base `tiny-qwen3` is gated (HF_TOKEN = hub.token). Base `tiny-late` is in the lockfile only: its checkpoint
was first committed after the date (the config never uses it).
REPRO_JOURNEY_DEVICE=auto (on a GPU machine) sets the config's merge and evaluation device to auto: the
preflight then checks the GPU and its driver, and the jobs run on the GPU.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import yaml
from hub_server import LocalHub, model_files

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2025-09-30"
OLD_DATE = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
RIGHT_DATE = datetime(2025, 9, 30, 23, 59, 30, tzinfo=UTC)  # the last second of the day still counts
NEW_DATE = datetime(2025, 10, 1, 0, 0, 5, tzinfo=UTC)
BASES = {"tiny-llama": ("llama", "tiny-org/llama-base", False), "tiny-qwen3": ("qwen3", "gated-org/qwen3-base", True)}
POOL = 3
DEVICE = os.environ.get("REPRO_JOURNEY_DEVICE", "cpu")


def _worlds(cache: Path):
    from repro.worlds.tiny import build_tiny_world

    return {name: build_tiny_world(cache / family, family, n_checkpoints=POOL + 1, seed=31 + i)
            for i, (name, (family, _, _)) in enumerate(BASES.items())}


def build_project(root: Path, hub: LocalHub, cache: Path) -> dict:
    """Lay out the project and publish its repos on `hub`; returns {repo_id: right commit sha}."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Makefile", root / "Makefile")
    (root / "configs").mkdir(exist_ok=True)
    shutil.copy(ROOT / "configs/suites.yaml", root / "configs/suites.yaml")
    shutil.copytree(ROOT / "tasks", root / "tasks", dirs_exist_ok=True)
    worlds = _worlds(cache)
    right: dict[str, str] = {}
    lock_bases, checkpoints = {}, {}
    for name, (family, base_repo, gated) in BASES.items():
        world = worlds[name]
        org = base_repo.split("/")[0]
        pool = [f"{org}/{family}-ft-{i}" for i in range(1, POOL + 1)]
        for repo_id, folder in zip([base_repo, *pool], [world.base, *world.checkpoints[:POOL]], strict=True):
            files = model_files(folder)
            other = model_files(world.checkpoints[POOL])  # a different model: the wrong commits hold it
            wrong = {**files, "model.safetensors": other["model.safetensors"]}
            shas = hub.add_repo(repo_id, [(OLD_DATE, wrong), (RIGHT_DATE, files), (NEW_DATE, wrong)], gated=gated)
            right[repo_id] = shas[1]
            checkpoints[repo_id] = {"revision": None, "gated": gated, "files": []}
        lock_bases[name] = {"model": base_repo, "in_the_wild": pool, "homogeneous": {}}
    late = "late-org/llama-late"
    hub.add_repo(late, [(NEW_DATE, model_files(worlds["tiny-llama"].base))])
    checkpoints[late] = {"revision": None, "gated": False, "files": []}
    lock_bases["tiny-late"] = {"model": "tiny-org/llama-base", "in_the_wild": [late], "homogeneous": {}}
    lock = {"version": 1, "checkpoints": checkpoints, "bases": lock_bases}
    (root / "checkpoints.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    config = {
        "name": "journey",
        "description": "Tiny paper-shaped config: 2 bases x 3 checkpoints, Table 1's methods, served by a local hub.",
        "seed": 2026,
        "lockfile": "checkpoints.lock",
        "bases": list(BASES),
        "pool": "in_the_wild",
        "models_dir": "runs/models",
        "checkpoints_as_of": {"date": AS_OF, "source": "test fixture"},
        "methods": [
            {"name": "task_arithmetic", "label": "TA", "params": {"weight": 1.0, "normalize": True, "lambda": 1.0}},
            {"name": "ties", "label": "TIES", "params": {"weight": 1.0, "density": 0.5, "normalize": True,
                                                        "lambda": 1.0}},
            {"name": "model_stock", "label": "Model Stock", "params": {"filter_wise": False}},
        ],
        "merge": {"sizes": [2, 3], "subsets_per_size": 1, "out_dtype": "float32", "device": DEVICE,
                  "min_free_disk_gb": 0},
        "evaluation": {"suite": "smoke", "dtype": "float32", "device": DEVICE, "limit": 8},
        "report": {"table1": ["task_arithmetic", "model_stock", "ties"], "table2": ["task_arithmetic"],
                   "table3": []},
    }
    (root / "configs/journey.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return right
