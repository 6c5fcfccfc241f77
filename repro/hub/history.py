"""Which commit of a hub repository to pin: the newest, a pinned one, or the last at or before a date.

`parse_as_of("2025-09-30")` reads a `--as-of` value: a date means the end of that day in UTC (commits made
on that day count), a time needs its zone ("2025-09-30T12:00:00Z" or "+02:00"). `pick_commit` reads the
repository's commit history (`api.list_repo_commits`, newest first, like huggingface_hub.HfApi) and returns
the commit to pin and its date; a repository with no commit at or before the date raises RepoProblem.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from repro.errors import HubError
from repro.hub.errors import RepoProblem, hub_call


@dataclass(frozen=True)
class AsOf:
    """A cutoff: commits at or before `cutoff` (UTC) count; `text` is how the lockfile records it."""

    cutoff: datetime
    text: str


@dataclass(frozen=True)
class PinnedCommit:
    sha: str
    committed_at: str  # ISO 8601 UTC, seconds precision, "Z"


def parse_as_of(text: str) -> AsOf:
    """An `--as-of` value: YYYY-MM-DD (end of that day, UTC) or an ISO 8601 time with a zone."""
    value = str(text).strip()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is not None and len(value) == 10:
        return AsOf(datetime.combine(day, time.max, tzinfo=UTC), day.isoformat())
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise HubError(
            f"--as-of {text!r} is not a date: write YYYY-MM-DD (end of that day, UTC) "
            "or an ISO 8601 time with its zone, e.g. 2025-09-30T12:00:00Z"
        ) from error
    if moment.tzinfo is None:
        raise HubError(f"--as-of {text!r} has no time zone: add Z (UTC) or an offset such as +02:00")
    moment = moment.astimezone(UTC).replace(microsecond=0)
    return AsOf(moment, format_utc(moment))


def format_utc(moment: datetime) -> str:
    if moment.tzinfo is None:  # the hub answers in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pick_commit(api, repo_id: str, *, revision: str | None, as_of: AsOf | None, token=None) -> PinnedCommit:
    """The commit to pin: the last at or before `as_of`, else `revision` (kept), else the newest one."""
    wanted = revision if as_of is None and revision is not None else None
    commits = hub_call(repo_id, "list the commits of", api.list_repo_commits, repo_id, revision=wanted, token=token)
    if not commits:
        raise RepoProblem(f"{repo_id} has no commits on the hub: check its id in checkpoints.lock")
    if as_of is None:
        commit = commits[0]  # newest first: the head of main, or the pinned revision itself
        if wanted is not None and commit.commit_id != wanted:
            raise HubError(f"the hub answered commit {commit.commit_id} for pinned revision {wanted} of {repo_id}")
        return PinnedCommit(commit.commit_id, format_utc(commit.created_at))
    dated = sorted(commits, key=lambda c: _utc(c.created_at), reverse=True)
    for commit in dated:
        if _utc(commit.created_at) <= as_of.cutoff:
            return PinnedCommit(commit.commit_id, format_utc(commit.created_at))
    first = format_utc(dated[-1].created_at)
    raise RepoProblem(
        f"{repo_id} has no commit at or before {as_of.text} (its first commit is {first}): it did not exist yet "
        f"then; choose a later --as-of, or take it out of checkpoints.lock and the config"
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
