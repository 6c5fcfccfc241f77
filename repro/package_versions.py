"""Installed package versions, read one way for every record (job provenance, merge records, worlds).

Versions come from the installed distributions' metadata (`importlib.metadata`), never from a module's
`__version__`: reading metadata imports nothing, so a record can list torch or lm-eval without loading
them, and two records of one environment always agree.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

NOT_INSTALLED = "not installed"

# What a job's provenance lists (plus the Python version).
PROVENANCE_PACKAGES = ("repro", "torch", "transformers", "mergekit", "lm_eval", "safetensors", "accelerate",
                       "numpy")


def package_version(name: str) -> str:
    """The installed version of distribution `name`, or "not installed"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def package_versions(names: Iterable[str] = PROVENANCE_PACKAGES, *, python: bool = True) -> dict[str, str]:
    """{name: version} for `names` (and "python" unless `python=False`)."""
    out = {name: package_version(name) for name in names}
    if python:
        out["python"] = platform.python_version()
    return out
