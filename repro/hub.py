"""Resolve checkpoints.lock against the Hugging Face hub, and download (or copy from a mirror) verified files.

- `resolve_lockfile(lock, api)` pins every entry to a commit sha and records the sha256 and size of the
  files we download. LFS files (weights, large tokenizers) carry their sha256 in the hub's metadata; small
  non-LFS files (config.json, tokenizer_config.json, ...) have none, so they are downloaded and hashed.
- `download(lock, dest_root)` fetches those files into `dest_root/<org>/<name>/` (a normal HF model dir),
  checking every file's size and sha256. Files land in a hidden staging dir `.<name>.partial` first
  (a re-run resumes from the verified files there); the model dir appears only once complete.
  A repo with only pickle weights (`pytorch_model*.bin`) is refused unless `allow_pickle`, which converts
  them to safetensors with `torch.load(weights_only=True)`.

`api` is anything shaped like `huggingface_hub.HfApi` (`model_info(repo_id, revision=, files_metadata=True,
token=)` with `.sha`, `.gated`, `.siblings[i].rfilename/.size/.lfs.sha256`, and `hf_hub_download(repo_id=,
filename=, revision=, local_dir=, token=)`), so tests pass an offline fake.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repro.atomic_io import atomic_write_json
from repro.errors import HubError
from repro.lockfile import REPO_ID_PATTERN, SHA1_PATTERN, CheckpointEntry, FileEntry, Lockfile

METADATA_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "chat_template.jinja",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
    }
)
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"
_MODEL_SAFETENSORS = re.compile(r"^model(-\d+-of-\d+)?\.safetensors$")
_PICKLE_WEIGHTS = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
MANIFEST_NAME = "repro_download.json"
_CHUNK = 8 * 1024 * 1024
OFFLINE_HINT = (
    "run `repro lock resolve` on a machine with network (download there too, or copy the models "
    "with `repro download --mirror DIR`)"
)


def default_models_dir() -> Path:
    """Where `repro download` puts models: $REPRO_MODELS, else runs/models."""
    return Path(os.environ.get("REPRO_MODELS") or "runs/models")


def local_model_dir(dest_root: str | Path, repo_id: str) -> Path:
    """The model dir of `repo_id` under `dest_root`: dest_root/<org>/<name>."""
    if not REPO_ID_PATTERN.match(repo_id) or ".." in repo_id:
        raise HubError(f"{repo_id!r} is not a Hugging Face repo id of the form <org>/<name>")
    org, name = repo_id.split("/")
    return Path(dest_root) / org / name


def select_files(paths: list[str]) -> list[str]:
    """The files of a repo that we download: config, tokenizer, and one set of weights (sorted).

    Weights: `model*.safetensors` (+ index), else any top-level `*.safetensors`, else the pickle
    weights `pytorch_model*.bin` (+ index). Files in sub-folders (e.g. `original/`) are never used.
    """
    top = [p for p in paths if "/" not in p]
    chosen = [p for p in top if p in METADATA_FILES]
    weights = [p for p in top if _MODEL_SAFETENSORS.match(p)] or [
        p for p in top if p.endswith(".safetensors")
    ]
    if weights:
        chosen += weights + [p for p in top if p == SAFETENSORS_INDEX]
    else:
        chosen += [p for p in top if _PICKLE_WEIGHTS.match(p) or p == PICKLE_INDEX]
    return sorted(set(chosen))


def is_pickle_only(paths: list[str]) -> bool:
    return any(_PICKLE_WEIGHTS.match(p) for p in paths) and not any(p.endswith(".safetensors") for p in paths)


def sha256_file(path: str | Path, on_chunk: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if on_chunk:
                on_chunk(len(chunk))
    return digest.hexdigest()


# ----- hub errors ----------------------------------------------------------------------------------------


def hub_error(exc: BaseException, repo_id: str, action: str = "query") -> HubError:
    """One clear HubError for an exception raised by huggingface_hub (or a network library)."""
    from huggingface_hub import errors as hf_errors

    status = getattr(getattr(exc, "response", None), "status_code", None)
    page = f"https://huggingface.co/{repo_id}"
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return HubError(
            f"cannot {action} {repo_id}: HF_HUB_OFFLINE is set, so the Hugging Face hub cannot be reached; "
            f"unset HF_HUB_OFFLINE and {OFFLINE_HINT}"
        )
    if isinstance(exc, hf_errors.GatedRepoError) or status in (401, 403):
        return HubError(
            f"access to {repo_id} was denied (HTTP {status or 'gated'}): set HF_TOKEN and accept the license of "
            f"{repo_id} on its model page {page}"
        )
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return HubError(
            f"{repo_id} has no such revision: {_first_line(exc)}; fix `revision` in checkpoints.lock"
        )
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return HubError(
            f"a file of {repo_id} is missing at the pinned revision ({_first_line(exc)}); re-run `repro lock resolve`"
        )
    if isinstance(exc, hf_errors.RepositoryNotFoundError) or status == 404:
        return HubError(
            f"{repo_id} was not found on the hub (deleted, renamed or private): check its id in checkpoints.lock"
            ", or set HF_TOKEN if it is private"
        )
    if isinstance(exc, hf_errors.HfHubHTTPError):
        return HubError(
            f"the hub refused to {action} {repo_id} (HTTP {status}): {_first_line(exc)}; retry later"
        )
    if _is_network_error(exc):
        return HubError(
            f"cannot reach the Hugging Face hub to {action} {repo_id} ({_first_line(exc)}); {OFFLINE_HINT}"
        )
    return HubError(f"cannot {action} {repo_id}: {type(exc).__name__}: {_first_line(exc)}")


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import httpx2
    except ImportError:  # pragma: no cover - huggingface_hub always brings its HTTP client
        return False
    return isinstance(exc, (httpx2.TransportError, httpx2.TimeoutException))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _hub_call(repo_id: str, action: str, func, /, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except HubError:
        raise
    except Exception as exc:  # huggingface_hub / httpx / OS errors -> one clear line; bugs propagate
        if not (isinstance(exc, OSError) or _is_network_error(exc) or hasattr(exc, "response")):
            raise
        raise hub_error(exc, repo_id, action) from exc


# ----- resolve -------------------------------------------------------------------------------------------


def resolve_entry(entry: CheckpointEntry, api, token: str | None = None) -> CheckpointEntry:
    """Pin `entry` (keep its revision, or take the current `main` commit) and record its files' hashes."""
    repo_id = entry.repo_id
    info = _hub_call(
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
                local = _hub_call(
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


# ----- download ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadResult:
    repo_id: str
    path: Path
    revision: str | None
    status: str  # "present" | "downloaded" | "converted"


class _MirrorSource:
    """Files of one repo under a local mirror: DIR/<org>/<name>/<path>."""

    def __init__(self, mirror: Path, repo_id: str):
        self.repo_id = repo_id
        self.root = local_model_dir(mirror, repo_id)
        if not self.root.is_dir():
            raise HubError(f"{repo_id} is not in the mirror: {self.root} does not exist")

    def list_files(self) -> list[str]:
        return [p.name for p in sorted(self.root.iterdir()) if p.is_file()]

    def fetch(self, path: str, dest: Path, on_chunk) -> None:
        source = self.root / path
        if not source.is_file():
            raise HubError(f"{path} of {self.repo_id} is missing from the mirror ({source})")
        with open(source, "rb") as reader, open(dest, "wb") as writer:
            while chunk := reader.read(_CHUNK):
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
        local = _hub_call(
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
    from tqdm.auto import tqdm

    final = local_model_dir(dest_root, entry.repo_id)
    if is_downloaded(entry, dest_root, rehash=verify):
        return DownloadResult(entry.repo_id, final, _read_manifest(final).get("revision"), "present")
    source = _MirrorSource(Path(mirror), entry.repo_id) if mirror is not None else None
    if not entry.resolved:
        if source is None:  # unpinned from the hub: pin to the current main commit now, then verify as usual
            entry = resolve_entry(entry, api, token=token)
        else:  # unpinned from a mirror: nothing to verify against; record what we copy
            paths = select_files(source.list_files())
            entry = entry.model_copy(update={"files": [_entry_for(source.root / p, p) for p in paths]})
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
        files = _convert_pickles(stage, entry.files, entry.repo_id)
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
    _swap_into_place(stage, final)
    return DownloadResult(entry.repo_id, final, entry.revision, "converted" if pickle_only else "downloaded")


def _entry_for(path: Path, rel: str) -> FileEntry:
    return FileEntry(path=rel, sha256=sha256_file(path), size=path.stat().st_size)


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
            "free space or pass another --dest"
        )


def _swap_into_place(stage: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, final)


def _convert_pickles(stage: Path, source_files: list[FileEntry], repo_id: str) -> list[FileEntry]:
    """Convert verified pytorch_model*.bin in `stage` to safetensors; returns the dir's file list."""
    import pickle

    import torch
    from safetensors.torch import save_file

    renamed: dict[str, str] = {}
    for f in source_files:
        if not _PICKLE_WEIGHTS.match(f.path):
            continue
        out_name = "model" + f.path.removeprefix("pytorch_model").removesuffix(".bin") + ".safetensors"
        try:
            state = torch.load(stage / f.path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise HubError(
                f"{repo_id}/{f.path} cannot be read as plain tensors (torch.load weights_only=True refused: "
                f"{_first_line(exc)}); this checkpoint is not usable safely"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise HubError(
                f"{repo_id}/{f.path} is not a state dict of tensors; cannot convert it to safetensors"
            )
        save_file(_unshared(state), stage / out_name, metadata={"format": "pt"})
        renamed[f.path] = out_name
    index = stage / PICKLE_INDEX
    if index.is_file():
        data = json.loads(index.read_text())
        weight_map = {k: renamed.get(v, v) for k, v in data.get("weight_map", {}).items()}
        atomic_write_json(
            stage / SAFETENSORS_INDEX, {"metadata": data.get("metadata", {}), "weight_map": weight_map}
        )
        index.unlink()
    for name in renamed:
        (stage / name).unlink()
    kept = [f.path for f in source_files if f.path not in renamed and f.path != PICKLE_INDEX]
    produced = kept + list(renamed.values())
    if (stage / SAFETENSORS_INDEX).is_file():
        produced.append(SAFETENSORS_INDEX)
    return [_entry_for(stage / p, p) for p in sorted(set(produced))]


def _unshared(state: dict) -> dict:
    """Contiguous tensors with no shared storage (safetensors refuses aliases, e.g. tied embeddings)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        tensor = tensor.contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            tensor = tensor.clone()
        seen.add(pointer)
        out[name] = tensor
    return out
