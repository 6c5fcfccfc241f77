"""An offline stand-in for huggingface_hub.HfApi that serves model dirs from a local folder.

`FakeHubApi(root)` answers `model_info` and `hf_hub_download` for repos stored as root/<org>/<name>/,
with the same shapes as the real client (RepoSibling, BlobLfsInfo; LFS metadata only for weight files,
like the hub). Failures are injected per repo with real huggingface_hub / httpx exception types.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import httpx2
from huggingface_hub import errors as hf_errors
from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

LFS_SUFFIXES = (".safetensors", ".bin")


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

    def _repo(self, repo_id: str) -> Path:
        path = self.root / repo_id
        if not path.is_dir():
            raise http_error(404, repo_id, hf_errors.RepositoryNotFoundError)
        return path

    def _files(self, repo_id: str) -> dict[str, bytes]:
        repo = self._repo(repo_id)
        return {
            p.relative_to(repo).as_posix(): p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file()
        }

    def _check_revision(self, repo_id: str, revision: str | None) -> str:
        sha = fake_commit(self._files(repo_id))
        if revision not in (None, "main", sha):
            raise http_error(404, repo_id, hf_errors.RevisionNotFoundError)
        return sha

    def model_info(self, repo_id, *, revision=None, files_metadata=False, token=None, **_):
        self.calls.append(("model_info", repo_id, None))
        if repo_id in self.failures:
            raise self.failures[repo_id]
        sha = self._check_revision(repo_id, revision)
        siblings = []
        for name, data in self._files(repo_id).items():
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
        self._check_revision(repo_id, revision)
        source = self._repo(repo_id) / filename
        if not source.is_file():
            raise http_error(404, repo_id, hf_errors.RemoteEntryNotFoundError)
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return str(target)
