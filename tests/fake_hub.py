"""An offline stand-in for huggingface_hub.HfApi that serves model dirs from a local folder.

`FakeHubApi(root)` answers `model_info`, `hf_hub_download` and `list_repo_commits` for repos stored as
root/<org>/<name>/, with the same shapes as the real client (RepoSibling, BlobLfsInfo, GitCommitInfo; LFS
metadata only for weight files, like the hub). Failures are injected per repo with real huggingface_hub /
httpx exception types.

Commit histories: by default a repo has one commit (its folder, dated DEFAULT_COMMIT_DATE). `set_history(
repo_id, [(date, folder), ...])` gives it several, oldest first; the last one is the head of `main`.
Every commit's sha is `fake_commit` of its files, and every call answers for the revision it is given.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx2
from huggingface_hub import errors as hf_errors
from huggingface_hub.hf_api import BlobLfsInfo, GitCommitInfo, RepoSibling

LFS_SUFFIXES = (".safetensors", ".bin")
DEFAULT_COMMIT_DATE = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def http_error(status: int, repo_id: str, cls=hf_errors.HfHubHTTPError) -> Exception:
    """A real huggingface_hub HTTP error carrying a response with `status`."""
    request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
    response = httpx2.Response(status, request=request)
    return cls(f"{status} Client Error for url {request.url}", response=response)


def connect_error() -> Exception:
    return httpx2.ConnectError("[Errno -2] Name or service not known")


def fake_commit(files: dict[str, bytes]) -> str:
    digest = hashlib.sha1()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


class FakeHubApi:
    def __init__(self, root: Path, gated: dict[str, bool] | None = None):
        self.root = Path(root)
        self.gated = gated or {}
        self.failures: dict[str, Exception] = {}  # repo_id -> raised by every call for that repo
        self.download_failures: dict[str, Exception] = {}  # repo_id -> raised by hf_hub_download only
        self.calls: list[tuple[str, str, str | None]] = []  # (method, repo_id, filename)
        self.histories: dict[str, list[tuple[datetime, Path]]] = {}  # repo_id -> commits, oldest first

    def set_history(self, repo_id: str, commits: list[tuple[datetime, Path]]) -> list[str]:
        """Give `repo_id` these commits (date, folder with its files), oldest first; returns their shas."""
        self.histories[repo_id] = [(date, Path(folder)) for date, folder in commits]
        return [fake_commit(_read_files(folder)) for _, folder in commits]

    def _commits(self, repo_id: str) -> list[tuple[str, datetime, Path]]:
        """(sha, date, folder) of every commit of `repo_id`, oldest first."""
        history = self.histories.get(repo_id)
        if history is None:
            repo = self.root / repo_id
            if not repo.is_dir():
                raise http_error(404, repo_id, hf_errors.RepositoryNotFoundError)
            history = [(DEFAULT_COMMIT_DATE, repo)]
        return [(fake_commit(_read_files(folder)), date, folder) for date, folder in history]

    def _snapshot(self, repo_id: str, revision: str | None) -> tuple[str, Path]:
        """(sha, folder) of `revision` (None or "main" = the head)."""
        commits = self._commits(repo_id)
        if revision in (None, "main"):
            return commits[-1][0], commits[-1][2]
        for sha, _, folder in commits:
            if sha == revision:
                return sha, folder
        raise http_error(404, repo_id, hf_errors.RevisionNotFoundError)

    def _repo(self, repo_id: str) -> Path:
        return self._snapshot(repo_id, None)[1]

    def _files(self, repo_id: str) -> dict[str, bytes]:
        return _read_files(self._repo(repo_id))

    def _check_revision(self, repo_id: str, revision: str | None) -> str:
        return self._snapshot(repo_id, revision)[0]

    def list_repo_commits(self, repo_id, *, revision=None, token=None, **_):
        """Like HfApi.list_repo_commits: the history of `revision` (default main), newest first."""
        self.calls.append(("list_repo_commits", repo_id, None))
        if repo_id in self.failures:
            raise self.failures[repo_id]
        sha, _ = self._snapshot(repo_id, revision)
        commits = self._commits(repo_id)
        upto = [i for i, (s, _, _) in enumerate(commits) if s == sha][-1]
        return [
            GitCommitInfo(
                commit_id=s, authors=["fake"], created_at=date, title=f"commit {i}", message="",
                formatted_title=None, formatted_message=None,
            )
            for i, (s, date, _) in reversed(list(enumerate(commits[: upto + 1])))
        ]

    def model_info(self, repo_id, *, revision=None, files_metadata=False, token=None, **_):
        self.calls.append(("model_info", repo_id, None))
        if repo_id in self.failures:
            raise self.failures[repo_id]
        sha, folder = self._snapshot(repo_id, revision)
        siblings = []
        for name, data in _read_files(folder).items():
            lfs = None
            if name.endswith(LFS_SUFFIXES):
                lfs = BlobLfsInfo(size=len(data), sha256=hashlib.sha256(data).hexdigest(), pointer_size=134)
            siblings.append(RepoSibling(rfilename=name, size=len(data) if files_metadata else None, lfs=lfs))
        return SimpleNamespace(id=repo_id, sha=sha, gated=self.gated.get(repo_id, False), siblings=siblings)

    def hf_hub_download(self, repo_id, filename, *, revision=None, local_dir=None, token=None, **_):
        self.calls.append(("hf_hub_download", repo_id, filename))
        for table in (self.failures, self.download_failures):
            if repo_id in table:
                raise table[repo_id]
        _, folder = self._snapshot(repo_id, revision)
        source = folder / filename
        if not source.is_file():
            raise http_error(404, repo_id, hf_errors.RemoteEntryNotFoundError)
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return str(target)


def _read_files(folder: Path) -> dict[str, bytes]:
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
