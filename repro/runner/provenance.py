"""Provenance attached to every result: package versions, host, date."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata

PACKAGES = ("repro", "torch", "transformers", "mergekit", "lm_eval", "safetensors", "accelerate", "numpy")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
