"""Pin checkpoints.lock entries to commits and record their files' sha256 and size.

Which commit: the last one at or before `as_of` (`repro lock resolve --as-of DATE`), else the pinned
revision (kept), else the newest commit of `main`; each pinned commit's date is recorded (`committed_at`).
A problem of one repository (gone, gated, no commit before the date) does not stop the others: they are all
reported together at the end, and the failing entries stay as they were.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from repro.errors import HubError
from repro.facts.lockfile import SHA1_PATTERN, CheckpointEntry, FileEntry, Lockfile
from repro.file_digest import sha256_file
from repro.hub.errors import RepoProblem, hub_call
from repro.hub.files import select_files
from repro.hub.history import AsOf, pick_commit


def resolve_entry(
    entry: CheckpointEntry, api, token: str | None = None, as_of: AsOf | None = None
) -> CheckpointEntry:
    """Pin `entry` (see the module docstring for which commit), record its commit date and files' hashes."""
    repo_id = entry.repo_id
    commit = pick_commit(api, repo_id, revision=entry.revision, as_of=as_of, token=token)
    info = hub_call(
        repo_id,
        "query",
        api.model_info,
        repo_id,
        revision=commit.sha,
        files_metadata=True,
        token=token,
    )
    sha = getattr(info, "sha", None)
    if not isinstance(sha, str) or not SHA1_PATTERN.match(sha):
        raise HubError(f"the hub returned no commit sha for {repo_id} (got {sha!r}); retry later")
    if sha != commit.sha:
        raise HubError(f"the hub answered commit {sha} for revision {commit.sha} of {repo_id}")
    siblings = {s.rfilename: s for s in (getattr(info, "siblings", None) or [])}
    wanted = select_files(list(siblings))
    if not any(p.endswith((".safetensors", ".bin")) for p in wanted):
        raise RepoProblem(f"{repo_id}@{sha} has no safetensors or pytorch_model*.bin weights at its top level")
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
        repo_id=repo_id,
        revision=sha,
        committed_at=commit.committed_at,
        as_of=as_of.text if as_of is not None else None,
        gated=entry.gated if gated is None else bool(gated),
        files=files,
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
    as_of: AsOf | None = None,
    on_problem: Callable[[str, str], None] | None = None,
) -> Lockfile:
    """A copy of `lock` with every (selected) entry pinned and its files hashed.

    Entries already resolved (revision and files; with `as_of`, as of that same date) are kept unless
    `force`. `on_resolved(lock)` is called after each entry, so a caller can save progress (a later run
    then skips what is done). Repositories that cannot be pinned (RepoProblem: gone, gated, no commit
    before `as_of`) keep their entries; `on_problem(repo_id, message)` is called for each, and after all others
    are done, one HubError names each of them. A hub or network failure stops at once.
    """
    problems: list[str] = []
    for repo_id in repo_ids if repo_ids is not None else lock.referenced_ids():
        entry = lock.entry(repo_id)
        current = as_of is None or entry.as_of == as_of.text
        if entry.resolved and current and not force:
            continue
        try:
            pinned = resolve_entry(entry, api, token=token, as_of=as_of)
        except RepoProblem as exc:
            problems.append(str(exc))
            if on_problem is not None:
                on_problem(repo_id, str(exc))
            continue
        lock = lock.with_entry(pinned)
        if on_resolved is not None:
            on_resolved(lock)
    if len(problems) == 1:
        raise HubError(f"{problems[0]} (its entry in the lockfile is unchanged)")
    if problems:
        raise HubError(
            f"{len(problems)} checkpoints could not be pinned (their entries in the lockfile are unchanged; "
            "the others are pinned): " + " | ".join(problems)
        )
    return lock
