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

Modules: files (what is downloaded, where; hashing is repro.file_digest), errors (one clear HubError), resolve, download,
pickle_convert (`--allow-pickle`).
"""

from repro.file_digest import sha256_file
from repro.hub.download import DownloadResult, download, is_downloaded
from repro.hub.errors import hub_error
from repro.hub.files import (
    MANIFEST_NAME,
    METADATA_FILES,
    default_models_dir,
    is_pickle_only,
    local_model_dir,
    select_files,
)
from repro.hub.resolve import resolve_entry, resolve_lockfile

__all__ = [
    "MANIFEST_NAME",
    "METADATA_FILES",
    "DownloadResult",
    "default_models_dir",
    "download",
    "hub_error",
    "is_downloaded",
    "is_pickle_only",
    "local_model_dir",
    "resolve_entry",
    "resolve_lockfile",
    "select_files",
    "sha256_file",
]
