"""Provenance attached to every result: package versions, host, date."""

from __future__ import annotations

import datetime as _dt

from repro.package_versions import PROVENANCE_PACKAGES as PACKAGES  # noqa: F401 (re-exported)
from repro.package_versions import package_versions  # noqa: F401 (re-exported: the one collector)


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
