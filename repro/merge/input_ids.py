"""The ids a mergekit method sees for its inputs: by path (as stock mergekit names them) or by content."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from repro.merge.svd_cache import ContentKey


def content_ids(paths: Sequence[Any], svd_cache) -> list:
    """Input ids keyed by content (`ContentKey`: position + the cache's content key of the directory)."""
    return [ContentKey(position, svd_cache.checkpoint_key(path)) for position, path in enumerate(paths)]


def model_ids(paths: Sequence[Any]) -> list:
    """mergekit input ids for the base and checkpoints (ModelReferences, as stock mergekit names them)."""
    from mergekit.common import ModelReference  # mergekit is imported when a merge runs

    return [ModelReference.model_validate({"model": {"path": str(path)}}) for path in paths]

