"""`repro lock check --online`: do the pinned hub revisions still resolve?

A checkpoint pinned in checkpoints.lock can vanish from the hub (repository deleted, renamed or made
private, history rewritten so the commit is gone) or become gated. One metadata request per pinned
repository (`model_info` at the pinned commit: nothing is downloaded) tells which ones, before a long
download starts. A problem of the hub or the network itself (unreachable, offline mode) stops the check
with one clear error instead of reporting every repository as gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.facts.lockfile import Lockfile
from repro.hub.errors import RepoProblem, hub_error

RESOLVES, GONE, DENIED, UNPINNED = "resolves", "gone", "denied", "unpinned"


@dataclass(frozen=True)
class RevisionStatus:
    repo_id: str
    revision: str | None
    status: str  # RESOLVES, GONE (no such repository or revision), DENIED (gated / private), UNPINNED
    detail: str = ""


def check_revision(api, repo_id: str, revision: str, token: str | None = None) -> RevisionStatus:
    """One metadata request for `repo_id` at `revision`; a problem of that repository is a status, a
    problem of the hub or network raises HubError."""
    # huggingface_hub: deferred so that importing this module does not load it
    from huggingface_hub import errors as hf_errors

    try:
        info = api.model_info(repo_id, revision=revision, token=token)
    except Exception as exc:  # noqa: BLE001 - classified below; anything else becomes one HubError
        error = hub_error(exc, repo_id, "resolve the pinned revision of")
        if not isinstance(error, RepoProblem):
            raise error from exc
        if isinstance(exc, hf_errors.GatedRepoError):  # (a subclass of RepositoryNotFoundError)
            return RevisionStatus(repo_id, revision, DENIED, str(error))
        if isinstance(exc, hf_errors.RevisionNotFoundError):
            return RevisionStatus(repo_id, revision, GONE, f"{repo_id} has no commit {revision} (history rewritten "
                                  "or the commit removed); re-pin with `repro lock resolve --force`")  # fmt: skip
        if isinstance(exc, hf_errors.RepositoryNotFoundError):  # the hub answers 401 for it without a token
            return RevisionStatus(repo_id, revision, GONE, f"{repo_id} was not found on the hub (deleted, renamed "
                                  "or private; set HF_TOKEN if it is private)")  # fmt: skip
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return RevisionStatus(repo_id, revision, DENIED if status in (401, 403) else GONE, str(error))
    sha = getattr(info, "sha", None)
    if sha != revision:
        return RevisionStatus(repo_id, revision, GONE, f"the hub answered commit {sha!r} for the pinned {revision}")
    return RevisionStatus(repo_id, revision, RESOLVES)


def check_pinned_revisions(lock: Lockfile, api, ids: list[str] | None = None, token: str | None = None,
                           progress=None) -> list[RevisionStatus]:  # fmt: skip
    """The status of every checkpoint in `ids` (default: all of the lockfile), in lockfile order."""
    statuses = []
    for repo_id in ids if ids is not None else list(lock.checkpoints):
        entry = lock.checkpoints[repo_id]
        if entry.revision is None:
            statuses.append(RevisionStatus(repo_id, None, UNPINNED, "no revision yet: run `repro lock resolve`"))
            continue
        statuses.append(check_revision(api, repo_id, entry.revision, token))
        if progress is not None:
            progress(statuses[-1])
    return statuses


def render(statuses: list[RevisionStatus]) -> str:
    counts = {kind: sum(s.status == kind for s in statuses) for kind in (RESOLVES, GONE, DENIED, UNPINNED)}
    lines = [f"{s.status.upper()}: {s.repo_id}@{s.revision}: {s.detail}" for s in statuses
             if s.status in (GONE, DENIED)]  # fmt: skip
    lines.append(f"{len(statuses)} checkpoints: {counts[RESOLVES]} resolve, {counts[GONE]} no longer resolve, "
                 f"{counts[DENIED]} denied (gated or private: set HF_TOKEN), {counts[UNPINNED]} not pinned")
    return "\n".join(lines)
