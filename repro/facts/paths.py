"""Where the kit's files live: the repository root and the default folders under it (one home each).

Config paths (`models_dir`, `suites_file`, ...) are relative to a project root, the folder holding
configs/; the defaults below are written relative to that root, as a config states them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]  # the folder holding repro/, configs/, checkpoints.lock

RUNS_DIR: Final = "runs"
MODELS_DIR: Final = "runs/models"  # downloaded checkpoints (`models_dir`, `repro download`)
EVALUATE_DIR: Final = "runs/evaluate"  # standalone `repro evaluate` results

SUITES_FILE: Final = "configs/suites.yaml"
COSTS_FILE: Final = "configs/costs.yaml"
LOCKFILE: Final = "checkpoints.lock"
PAPER_ARTIFACTS_DIR: Final = "paper_artifacts"


def repo_path(relative: str) -> Path:
    """A file or folder of this repository, e.g. repo_path(SUITES_FILE)."""
    return REPO_ROOT / relative


def default_runs_root() -> Path:
    """The repository's runs/ folder (shared by every config: worlds, downloads)."""
    return REPO_ROOT / RUNS_DIR
