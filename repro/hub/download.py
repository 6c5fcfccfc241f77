"""Download (or copy from a mirror) the pinned files of lockfile entries, verifying every file."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from repro.atomic_io import atomic_write_json, replace_directory
from repro.errors import HubError
from repro.facts.lockfile import CheckpointEntry, FileEntry, Lockfile
from repro.file_digest import sha256_file
from repro.hub.errors import hub_call
from repro.hub.files import (
    HASH_CHUNK_BYTES,
    MANIFEST_NAME,
    file_entry_for,
    is_pickle_only,
    local_model_dir,
    select_files,
)
from repro.hub.pickle_convert import convert_pickles
from repro.hub.resolve import resolve_entry


@dataclass(frozen=True)
class DownloadResult:
    repo_id: str
    path: Path
    revision: str | None
    status: str  # "present" | "downloaded" | "converted"


class _MirrorSource:
    """Files of one repo under a local mirror: DIR/<org>/<name>/<path>. Nothing outside DIR is ever read:
    a symlink (of the repo folder or a file) that resolves outside the mirror is refused."""

    def __init__(self, mirror: Path, repo_id: str):
        self.repo_id = repo_id
        self.mirror = Path(mirror).resolve()
        self.root = local_model_dir(mirror, repo_id)
        if not self.root.is_dir():
            raise HubError(f"{repo_id} is not in the mirror: {self.root} does not exist")
        self._inside(self.root)

    def _inside(self, path: Path) -> Path:
        real = path.resolve()
        if not real.is_relative_to(self.mirror):
            raise HubError(
                f"{path} is a symlink that points outside the mirror (to {real}); refused — a mirror must hold "
                f"real copies of the files under {self.mirror}"
            )
        return real

    def list_files(self) -> list[str]:
        return [p.name for p in sorted(self.root.iterdir()) if p.is_file() and self._inside(p)]

    def fetch(self, path: str, dest: Path, on_chunk) -> None:
        source = self.root / path
        if not source.is_file():
            raise HubError(f"{path} of {self.repo_id} is missing from the mirror ({source})")
        with open(self._inside(source), "rb") as reader, open(dest, "wb") as writer:
            while chunk := reader.read(HASH_CHUNK_BYTES):
                writer.write(chunk)
                on_chunk(len(chunk))


class _HubSource:
    def __init__(self, api, repo_id: str, revision: str, token: str | None, scratch: Path):
        self.api, self.repo_id, self.revision, self.token, self.scratch = (
            api,
            repo_id,
            revision,
            token,
            scratch,
        )

    def fetch(self, path: str, dest: Path, on_chunk) -> None:
        local = hub_call(
            self.repo_id,
            "download",
            self.api.hf_hub_download,
            repo_id=self.repo_id,
            filename=path,
            revision=self.revision,
            local_dir=self.scratch,
            token=self.token,
        )
        os.replace(local, dest)
        on_chunk(dest.stat().st_size)


def _verified(path: Path, expected: FileEntry) -> bool:
    return path.is_file() and path.stat().st_size == expected.size and sha256_file(path) == expected.sha256


def _read_manifest(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_downloaded(entry: CheckpointEntry, dest_root: str | Path, rehash: bool = False) -> bool:
    """Whether `dest_root/<org>/<name>` holds a complete download of `entry`'s pinned revision.

    A file whose size and mtime still match the manifest written at download time counts as verified;
    others (and all files, with `rehash`) are hashed again.
    """
    model_dir = local_model_dir(dest_root, entry.repo_id)
    manifest = _read_manifest(model_dir)
    if manifest is None or (entry.revision is not None and manifest.get("revision") != entry.revision):
        return False
    if entry.files and manifest.get("source_files") != [f.model_dump() for f in entry.files]:
        return False
    try:
        files = [FileEntry.model_validate(f) for f in manifest.get("files", [])]
    except ValueError:
        return False
    stats = manifest.get("stats", {})
    for f in files:
        target = model_dir / f.path
        unchanged = target.is_file() and stats.get(f.path) == _stat(target)
        if not (unchanged and not rehash) and not _verified(target, f):
            return False
    return bool(files)


def _stat(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def download(
    lock: Lockfile,
    dest_root: str | Path,
    repo_ids: list[str] | None = None,
    mirror: str | Path | None = None,
    allow_unpinned: bool = False,
    allow_pickle: bool = False,
    token: str | None = None,
    api=None,
    progress: bool = True,
    verify: bool = False,
) -> list[DownloadResult]:
    """Fetch the pinned files of the selected entries (default: all) into dest_root/<org>/<name>/.

    Every file's size and sha256 are checked against the lockfile. Unresolved entries are refused
    unless `allow_unpinned` (hub: take the current main commit; mirror: copy what is there unverified).
    Complete model dirs are skipped ("present"); `verify` re-hashes their files instead of trusting
    size + mtime.
    """
    ids = list(repo_ids) if repo_ids is not None else lock.referenced_ids()
    entries = [lock.entry(r) for r in ids]
    unresolved = [e.repo_id for e in entries if not e.resolved]
    if unresolved and not allow_unpinned:
        shown = ", ".join(unresolved[:3]) + (
            f" and {len(unresolved) - 3} more" if len(unresolved) > 3 else ""
        )
        raise HubError(
            f"{len(unresolved)} checkpoint(s) are unresolved (revision null): {shown}; run `repro lock resolve` "
            "first, or pass --allow-unpinned to take whatever is current (no pinned hashes)"
        )
    pickled = [e.repo_id for e in entries if e.resolved and is_pickle_only([f.path for f in e.files])]
    if pickled and not allow_pickle:
        raise HubError(_pickle_refusal(pickled[0]))
    if mirror is None and api is None:
        # huggingface_hub: deferred so that importing this module does not load it
        from huggingface_hub import HfApi

        api = HfApi()
    return [
        _download_entry(e, Path(dest_root), mirror, allow_pickle, token, api, progress, verify)
        for e in entries
    ]


def _pickle_refusal(repo_id: str) -> str:
    return (
        f"{repo_id} has only pickle weights (pytorch_model*.bin), which can run code when loaded; "
        "pass --allow-pickle to convert them to safetensors (read with torch.load(weights_only=True))"
    )


def _download_entry(
    entry, dest_root: Path, mirror, allow_pickle, token, api, progress, verify
) -> DownloadResult:
    final = local_model_dir(dest_root, entry.repo_id)
    if is_downloaded(entry, dest_root, rehash=verify):
        return DownloadResult(entry.repo_id, final, _read_manifest(final).get("revision"), "present")
    if final.is_dir() and any(final.iterdir()) and not (final / MANIFEST_NAME).is_file():
        raise HubError(
            f"{final} exists and was not written by `repro download` (no {MANIFEST_NAME}): move it away or "
            "pass another --out; nothing was changed"
        )
    source = _MirrorSource(Path(mirror), entry.repo_id) if mirror is not None else None
    if not entry.resolved:
        if source is None:  # unpinned from the hub: pin to the current main commit now, then verify as usual
            entry = resolve_entry(entry, api, token=token)
        else:  # unpinned from a mirror: nothing to verify against; record what we copy
            paths = select_files(source.list_files())
            entry = entry.model_copy(update={"files": [file_entry_for(source.root / p, p) for p in paths]})
    paths = [f.path for f in entry.files]
    pickle_only = is_pickle_only(paths)
    if pickle_only and not allow_pickle:
        raise HubError(_pickle_refusal(entry.repo_id))
    stage = final.parent / f".{final.name}.partial"
    stage.mkdir(parents=True, exist_ok=True)
    incoming = stage / ".incoming"
    if source is None:
        source = _HubSource(api, entry.repo_id, entry.revision, token, incoming)
    missing = [f for f in entry.files if not _verified(stage / f.path, f)]
    _check_disk_space(stage, sum(f.size for f in missing), entry.repo_id)
    with tqdm(
        total=sum(f.size for f in missing),
        unit="B",
        unit_scale=True,
        desc=entry.repo_id,
        disable=not progress,
    ) as bar:
        for f in missing:
            _fetch_verified(source, f, stage, entry.repo_id, bar.update)
    shutil.rmtree(incoming, ignore_errors=True)
    files = list(entry.files)
    if pickle_only:
        files = convert_pickles(stage, entry.files, entry.repo_id)
    atomic_write_json(
        stage / MANIFEST_NAME,
        {
            "repo_id": entry.repo_id,
            "revision": entry.revision,
            "source_files": [f.model_dump() for f in entry.files],
            "files": [f.model_dump() for f in files],
            "stats": {f.path: _stat(stage / f.path) for f in files},
            "converted_from_pickle": pickle_only,
        },
    )
    replace_directory(stage, final)
    return DownloadResult(entry.repo_id, final, entry.revision, "converted" if pickle_only else "downloaded")


def _fetch_verified(source, expected: FileEntry, stage: Path, repo_id: str, on_chunk) -> None:
    """Fetch one file to a temp name in `stage`, check size + sha256, then rename; remove it if bad."""
    target = stage / expected.path
    tmp = stage / f".{expected.path}.download"
    try:
        source.fetch(expected.path, tmp, on_chunk)
        size = tmp.stat().st_size
        actual = sha256_file(tmp)
        if size != expected.size or actual != expected.sha256:
            raise HubError(
                f"{repo_id}/{expected.path} failed verification: expected sha256 {expected.sha256} "
                f"({expected.size} bytes), got {actual} ({size} bytes); the file was removed — the source is "
                "corrupt or the lockfile is stale (re-run `repro lock resolve`)"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _check_disk_space(where: Path, needed: int, repo_id: str) -> None:
    free = shutil.disk_usage(where).free
    if needed > free:
        raise HubError(
            f"{repo_id} needs {needed / 1e9:.1f} GB but only {free / 1e9:.1f} GB are free at {where.parent}; "
            "free space or pass another --out"
        )


