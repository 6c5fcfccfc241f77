"""A project folder for runner tests: the repository's suites and evaluation tasks, and configs/smoke.yaml's
data to change and write as the test's own config."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def smoke_project(project: Path) -> dict:
    """Make `project` (configs/suites.yaml and tasks/ copied from the repository); returns the data of
    configs/smoke.yaml for the caller to change and `write_config`."""
    (project / "configs").mkdir(parents=True)
    shutil.copy(ROOT / "configs/suites.yaml", project / "configs/suites.yaml")
    shutil.copytree(ROOT / "tasks", project / "tasks")
    return yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())


def write_config(project: Path, data: dict, name: str = "smoke.yaml") -> Path:
    """Write `data` as project/configs/`name`; returns its path."""
    path = project / "configs" / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
