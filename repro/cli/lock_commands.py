"""`repro lock check|resolve` and `repro download`: thin wrappers over repro.facts.lockfile and repro.hub."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from repro.cli import hidden_alias
from repro.errors import ConfigError, HubError, LockError
from repro.facts.config import load_config
from repro.facts.lockfile import DEFAULT_LOCKFILE, load_lockfile
from repro.facts.lockfile_writer import dump_lockfile


def register(subparsers) -> None:
    lock = subparsers.add_parser("lock", help="check or resolve checkpoints.lock")
    lock_sub = lock.add_subparsers(dest="lock_command", metavar="ACTION", required=True)

    check = lock_sub.add_parser("check", help="validate checkpoints.lock offline and print its counts")
    _add_source_arguments(check)
    check.add_argument(
        "--online", action="store_true",
        help="also ask the hub whether every pinned revision still resolves (one metadata request per "
        "repository, nothing downloaded; needs network, reads HF_TOKEN); exit 1 when one does not",
    )  # fmt: skip
    check.set_defaults(handler=check_command)

    resolve = lock_sub.add_parser(
        "resolve",
        help="pin every checkpoint to a commit and record file hashes (needs network; reads HF_TOKEN)",
    )
    _add_source_arguments(resolve)
    resolve.add_argument("--force", action="store_true", help="re-resolve entries that are already pinned")
    resolve.add_argument(
        "--as-of",
        default=None,
        metavar="DATE|config",
        help="pin each repo to its last commit at or before DATE (YYYY-MM-DD = end of that day, UTC, or an "
        "ISO time with zone); `config` = the config's checkpoints_as_of date. Default: the newest commit",
    )
    resolve.set_defaults(handler=resolve_command)

    dl = subparsers.add_parser(
        "download", help="download the pinned checkpoints, verifying every file's sha256"
    )
    _add_source_arguments(dl)
    dl.add_argument(
        "--repo", action="append", default=None, metavar="ORG/NAME", help="only this repo (repeatable)"
    )
    dl.add_argument(
        "--out",
        dest="dest",
        type=Path,
        default=None,
        metavar="DIR",
        help="models folder (default: the config's models_dir, else $REPRO_MODELS, else runs/models)",
    )
    hidden_alias(dl, "--dest", "dest", type=Path)
    dl.add_argument(
        "--mirror", type=Path, default=None, help="copy from DIR/<org>/<name>/ instead of the hub"
    )
    dl.add_argument(
        "--allow-unpinned", action="store_true", help="download unresolved entries (no pinned hashes)"
    )
    dl.add_argument("--allow-pickle", action="store_true", help="convert pickle-only weights to safetensors")
    dl.add_argument(
        "--verify", action="store_true", help="re-hash models already present instead of trusting size+mtime"
    )
    dl.set_defaults(handler=download_command)


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--lockfile", type=Path, default=None, help="lockfile path (default: checkpoints.lock)"
    )
    source.add_argument(
        "--config", type=Path, default=None, help="an experiment config: its lockfile and bases"
    )
    parser.add_argument(
        "--base", action="append", default=None, metavar="NAME", help="only this base (repeatable)"
    )


def _lockfile_and_bases(args) -> tuple[Path, list[str] | None, Path | None]:
    """(lockfile, selected bases or None = all, the config's models_dir or None) from the arguments.

    With --config, `args.used` is set to the repos the config uses for those bases (its bases, their pools
    and its homogeneous groups), so lock and download touch only those; else it is None."""
    # the library: loaded when the command runs, so that `repro --help` stays light
    from repro.reproduce import select_bases, used_repos

    bases = args.base
    args.used = None
    if args.config is None:
        return (args.lockfile or DEFAULT_LOCKFILE), bases, None
    loaded = load_config(args.config, check_methods=False, check_suite=False)
    if loaded.config.lockfile is None:
        raise LockError(
            "this config uses generated offline models (`world`), so it has no checkpoints to lock or download",
            path=str(args.config),
        )
    bases = select_bases(loaded, bases)
    args.used = used_repos(loaded, bases)
    models_dir = loaded.resolve(loaded.config.models_dir)
    return loaded.resolve(loaded.config.lockfile), bases, models_dir


def _selected_ids(lock, bases: list[str] | None, repos: list[str] | None = None,
                  used: list[str] | None = None) -> list[str] | None:
    if bases is None and not repos:
        return None
    if bases is not None and used is not None:
        ids = list(used)
    else:
        ids = lock.referenced_ids(bases) if bases is not None else []
    for repo_id in repos or []:
        lock.entry(repo_id)
        if repo_id not in ids:
            ids.append(repo_id)
    return ids


def check_command(args) -> int:
    path, bases, _ = _lockfile_and_bases(args)
    lock = load_lockfile(path)
    for name in bases or []:
        lock.base(name)
    print(f"{path}: {lock.summary().describe()}")
    if not args.online:
        return 0
    # huggingface_hub and the library: loaded when the command runs, so that `repro --help` stays light
    from huggingface_hub import HfApi

    from repro.hub.online_check import GONE, check_pinned_revisions, render

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    statuses = check_pinned_revisions(lock, api, _selected_ids(lock, bases), token=os.environ.get("HF_TOKEN"))
    print(render(statuses))
    return 1 if any(status.status == GONE for status in statuses) else 0


def resolve_command(args) -> int:
    # huggingface_hub and the library: loaded when the command runs, so that `repro --help` stays light
    from huggingface_hub import HfApi

    from repro.hub import resolve_lockfile

    path, bases, _ = _lockfile_and_bases(args)
    as_of = _as_of(args)
    lock = load_lockfile(path)
    token = os.environ.get("HF_TOKEN") or None
    done = []

    def save(progress) -> None:  # keep what is resolved even if a later entry fails
        dump_lockfile(progress, path)
        done.append(1)
        print(f"resolved {len(done)}", file=sys.stderr, end="\r")

    selected = _selected_ids(lock, bases, used=args.used)
    problems: dict[str, str] = {}
    failure = None
    try:
        lock = resolve_lockfile(lock, HfApi(), token=token, repo_ids=selected, force=args.force, on_resolved=save,
                                as_of=as_of, on_problem=problems.__setitem__)
        dump_lockfile(lock, path)
    except HubError as exc:  # what was pinned is saved (on_resolved); report it, then the problems
        failure = exc
        lock = load_lockfile(path)
    if done:
        print(file=sys.stderr)  # after the "resolved N" counter
    for line in lock_report(lock, selected if selected is not None else lock.referenced_ids(), problems, as_of):
        print(line)
    if failure is not None:
        raise failure
    return 0


def lock_report(lock, repo_ids: list[str], problems: dict[str, str], as_of) -> list[str]:
    """Per repo: the commit chosen and its date; the repos left unpinned, with why and what was done."""
    when = f" as of {as_of.text} (last commit at or before it)" if as_of is not None else " (newest commit)"
    lines = [f"{'commit':12}  {'committed at':20}  repo{when}"]
    for repo_id in repo_ids:
        entry = lock.entry(repo_id)
        if repo_id in problems or entry.revision is None:
            continue
        lines.append(f"{entry.revision[:12]}  {entry.committed_at or '?':20}  {repo_id}")
    left = [r for r in repo_ids if r in problems or lock.entry(r).revision is None]
    if problems:
        lines.append(f"not pinned ({len(problems)}): their entries were left unchanged in the lockfile")
        for repo_id in (r for r in repo_ids if r in problems):
            entry = lock.entry(repo_id)
            kept = f"kept pin {entry.revision[:12]}" if entry.revision else "still unpinned (revision null)"
            lines.append(f"  {repo_id}: {kept}; {problems[repo_id]}")
    untried = [r for r in left if r not in problems]
    if untried:
        lines.append(f"not pinned yet ({len(untried)}, e.g. {untried[0]}): not reached or stopped by the error "
                     "below; run the same command again to go on")
    lines.append(f"{len(repo_ids) - len(left)} of {len(repo_ids)} pinned; {lock.summary().describe()}")
    return lines


def _as_of(args):
    """The `--as-of` cutoff: a date/time, or `config` = the config's checkpoints_as_of; None = newest."""
    # loaded when the command runs, so that `repro --help` stays light
    from repro.hub.history import parse_as_of

    if args.as_of is None:
        return None
    if args.as_of != "config":
        return parse_as_of(args.as_of)
    if args.config is None:
        raise ConfigError("--as-of config reads the experiment date from a config: pass --config FILE too")
    loaded = load_config(args.config, check_methods=False, check_suite=False)
    as_of = loaded.config.checkpoints_as_of
    if as_of is None:
        raise ConfigError(
            "no experiment date: add `checkpoints_as_of: {date: YYYY-MM-DD, source: ...}` (where the date comes "
            "from), or pass --as-of YYYY-MM-DD",
            path=str(args.config),
            field="checkpoints_as_of",
        )
    print(f"pinning as of {as_of.date.isoformat()} ({args.config}: checkpoints_as_of)", file=sys.stderr)
    return parse_as_of(as_of.date.isoformat())


def download_command(args) -> int:
    # loaded when the command runs, so that `repro --help` stays light
    from repro.hub import default_models_dir, download

    path, bases, config_models_dir = _lockfile_and_bases(args)
    if args.repo and not args.base:  # --repo alone selects just those repos, not the config's bases
        bases = None
    lock = load_lockfile(path)
    dest = args.dest or config_models_dir or default_models_dir()
    results = download(
        lock,
        dest,
        repo_ids=_selected_ids(lock, bases, args.repo, used=None if args.repo else args.used),
        mirror=args.mirror,
        allow_unpinned=args.allow_unpinned,
        allow_pickle=args.allow_pickle,
        token=os.environ.get("HF_TOKEN") or None,
        progress=sys.stderr.isatty(),
        verify=args.verify,
    )
    for result in results:
        print(f"{result.status:10} {result.repo_id} -> {result.path}")
    counts = {s: sum(r.status == s for r in results) for s in ("downloaded", "converted", "present")}
    print(f"{len(results)} checkpoints in {dest}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0
