"""Pin checkpoints.lock entries to commits and record their files' sha256 and size."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from repro.errors import HubError
from repro.hub.errors import hub_call
from repro.hub.files import select_files, sha256_file
from repro.lockfile import SHA1_PATTERN, CheckpointEntry, FileEntry, Lockfile


def resolve_entry(entry: CheckpointEntry, api, token: str | None = None) -> CheckpointEntry:
    """Pin `entry` (keep its revision, or take the current `main` commit) and record its files' hashes."""
    repo_id = entry.repo_id
    info = hub_call(
        repo_id,
        "query",
        api.model_info,
        repo_id,
        revision=entry.revision or "main",
        files_metadata=True,
        token=token,
    )
    sha = getattr(info, "sha", None)
    if not isinstance(sha, str) or not SHA1_PATTERN.match(sha):
        raise HubError(f"the hub returned no commit sha for {repo_id} (got {sha!r}); retry later")
    if entry.revision is not None and sha != entry.revision:
        raise HubError(f"the hub answered commit {sha} for pinned revision {entry.revision} of {repo_id}")
    siblings = {s.rfilename: s for s in (getattr(info, "siblings", None) or [])}
    wanted = select_files(list(siblings))
    if not any(p.endswith((".safetensors", ".bin")) for p in wanted):
        raise HubError(f"{repo_id}@{sha} has no safetensors or pytorch_model*.bin weights at its top level")
    files = []
    with tempfile.TemporaryDirectory(prefix="repro-resolve-") as scratch:
        for path in wanted:
            sibling = siblings[path]
            lfs = getattr(sibling, "lfs", None)
            if lfs is not None:
                sha256, size = _lfs_value(lfs, "sha256"), _lfs_value(lfs, "size")
            else:  # small git file: the hub has no sha256 for it, so download and hash it
                local = hub_call(
                    repo_id,
                    "download",
                    api.hf_hub_download,
                    repo_id=repo_id,
                    filename=path,
                    revision=sha,
                    local_dir=scratch,
                    token=token,
                )
                sha256, size = sha256_file(local), Path(local).stat().st_size
                if sibling.size is not None and sibling.size != size:
                    raise HubError(
                        f"{repo_id}@{sha}/{path}: hub lists {sibling.size} bytes, downloaded {size}"
                    )
            files.append(FileEntry(path=path, sha256=sha256, size=size))
    gated = getattr(info, "gated", None)
    return CheckpointEntry(
        repo_id=repo_id, revision=sha, gated=entry.gated if gated is None else bool(gated), files=files
    )


def _lfs_value(lfs, key: str):
    return lfs[key] if isinstance(lfs, dict) else getattr(lfs, key)


def resolve_lockfile(
    lock: Lockfile,
    api,
    token: str | None = None,
    repo_ids: list[str] | None = None,
    force: bool = False,
    on_resolved: Callable[[Lockfile], None] | None = None,
) -> Lockfile:
    """A copy of `lock` with every (selected) entry pinned and its files hashed.

    Entries already resolved (revision and files) are kept unless `force`. `on_resolved(lock)` is called
    after each entry, so a caller can save progress (a later run then skips what is done).
    """
    for repo_id in repo_ids if repo_ids is not None else lock.referenced_ids():
        entry = lock.entry(repo_id)
        if entry.resolved and not force:
            continue
        lock = lock.with_entry(resolve_entry(entry, api, token=token))
        if on_resolved is not None:
            on_resolved(lock)
    return lock
