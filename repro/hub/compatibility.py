"""Will these checkpoints merge? Read only their small files (config.json, tokenizer_config.json) and compare.

`read_facts(...)` gets each pinned checkpoint's facts before any multi-GB download: from its downloaded
folder when present, else two small files from the hub at the pinned revision (`api.hf_hub_download`), plus
the file list and sizes (the lockfile's, else `api.model_info`). `compare(base, checkpoint, vocab_mismatch)`
names what would break the merge: architecture, hidden size, layer count, other shapes, vocabulary rows
(e.g. MergeBench's 128320 vs Llama 3.2's 128256: truncated or refused, per `merge.vocab_mismatch`), tied
embeddings, a remote-code requirement, pickle-only weights.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from repro.facts.lockfile import CheckpointEntry
from repro.hub.errors import RepoProblem, hub_call
from repro.hub.files import is_pickle_only, local_model_dir, select_files

SMALL_FILES = ("config.json", "tokenizer_config.json")
# config.json keys that fix tensor shapes: a checkpoint must match its base in each
SHAPE_KEYS = {
    "hidden_size": "hidden size",
    "num_hidden_layers": "layer count",
    "intermediate_size": "MLP size",
    "num_attention_heads": "attention heads",
    "num_key_value_heads": "key/value heads",
    "head_dim": "head size",
}


@dataclass(frozen=True)
class CheckpointFacts:
    """What config.json, tokenizer_config.json and the file list say about one checkpoint."""

    repo_id: str
    revision: str | None
    architecture: str | None
    model_type: str | None
    shapes: dict[str, int | None]
    vocab_rows: int | None
    tied_embeddings: bool | None
    remote_code: list[str]  # files asking for trust_remote_code (auto_map)
    pickle_only: bool
    download_bytes: int | None  # of the files `repro download` fetches; None = unknown
    present: bool  # already downloaded under the models folder


@dataclass(frozen=True)
class Finding:
    repo_id: str
    message: str
    blocking: bool = True  # False: the merge goes on, but the user should know (e.g. rows truncated)


@dataclass
class FactsRequest:
    """Where to read facts from: the models folder first, else the hub (api) with an optional token."""

    api: object
    models_dir: Path
    token: str | None = None
    downloaded: list[tuple[str, str]] = field(default_factory=list)  # (repo_id, filename) fetched


def read_facts(entry: CheckpointEntry, request: FactsRequest) -> CheckpointFacts:
    """The facts of one checkpoint; RepoProblem if the repo cannot be read, HubError if the hub is out of reach."""
    folder = local_model_dir(request.models_dir, entry.repo_id)
    if (folder / "config.json").is_file():
        files = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
        small = {name: _read_json(folder / name, entry.repo_id) for name in SMALL_FILES if name in files}
        return _facts(entry, small, files, present=True)
    listing = _listing(entry, request)
    small = {}
    with tempfile.TemporaryDirectory(prefix="repro-preflight-") as scratch:
        for name in SMALL_FILES:
            if name not in listing:
                continue
            local = hub_call(
                entry.repo_id, "download", request.api.hf_hub_download, repo_id=entry.repo_id,
                filename=name, revision=entry.revision or "main", local_dir=scratch, token=request.token,
            )
            request.downloaded.append((entry.repo_id, name))
            small[name] = _read_json(Path(local), entry.repo_id)
    if "config.json" not in small:
        raise RepoProblem(f"{entry.repo_id} has no config.json at its top level: it is not a transformers model")
    return _facts(entry, small, listing, present=False)


def _listing(entry: CheckpointEntry, request: FactsRequest) -> dict[str, int | None]:
    """path -> size of the repo's top-level files: the lockfile's (pinned) list, else the hub's."""
    if entry.files:
        return {f.path: f.size for f in entry.files}
    info = hub_call(
        entry.repo_id, "query", request.api.model_info, entry.repo_id,
        revision=entry.revision or "main", files_metadata=True, token=request.token,
    )
    return {s.rfilename: s.size for s in (getattr(info, "siblings", None) or []) if "/" not in s.rfilename}


def _read_json(path: Path, repo_id: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepoProblem(f"{repo_id}: {path.name} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RepoProblem(f"{repo_id}: {path.name} is not a JSON object")
    return data


def _facts(entry: CheckpointEntry, small: dict[str, dict], files: dict[str, int | None], present: bool):
    config = small.get("config.json", {})
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}

    def value(key):
        return config.get(key, text.get(key))

    architectures = config.get("architectures") or []
    remote = [name for name, data in small.items() if data.get("auto_map")]
    wanted = select_files(list(files))
    sizes = [files[p] for p in wanted]
    return CheckpointFacts(
        repo_id=entry.repo_id,
        revision=entry.revision,
        architecture=architectures[0] if architectures else None,
        model_type=config.get("model_type"),
        shapes={key: value(key) for key in SHAPE_KEYS},
        vocab_rows=value("vocab_size"),
        tied_embeddings=value("tie_word_embeddings"),
        remote_code=remote,
        pickle_only=is_pickle_only(wanted),
        download_bytes=None if any(s is None for s in sizes) else sum(sizes),
        present=present,
    )


def compare(base: CheckpointFacts, ckpt: CheckpointFacts, vocab_mismatch: str) -> list[Finding]:
    """What would break merging `ckpt` into `base` (blocking), and what the merge will change (not)."""
    out: list[Finding] = []
    repo = ckpt.repo_id

    def problem(message: str, blocking: bool = True) -> None:
        out.append(Finding(repo, message, blocking))

    if ckpt is not base:
        if ckpt.architecture != base.architecture or ckpt.model_type != base.model_type:
            problem(
                f"architecture {ckpt.architecture} ({ckpt.model_type}) differs from the base's "
                f"{base.architecture} ({base.model_type}): not a fine-tune of this base, remove it"
            )
        for key, label in SHAPE_KEYS.items():
            mine, theirs = ckpt.shapes.get(key), base.shapes.get(key)
            required = key in ("hidden_size", "num_hidden_layers")  # optional keys: compared when both state them
            if mine != theirs and (required or None not in (mine, theirs)):
                problem(f"{label} {mine} ({key}) differs from the base's {theirs}: tensor shapes cannot match")
        if ckpt.vocab_rows != base.vocab_rows and None not in (ckpt.vocab_rows, base.vocab_rows):
            rows, base_rows = ckpt.vocab_rows, base.vocab_rows
            if rows > base_rows and vocab_mismatch == "truncate":
                problem(
                    f"{rows} vocabulary rows vs the base's {base_rows}: the merge keeps the first {base_rows} "
                    "(merge.vocab_mismatch: truncate)",
                    blocking=False,
                )
            elif rows > base_rows:
                problem(
                    f"{rows} vocabulary rows vs the base's {base_rows}: refused by merge.vocab_mismatch: error; "
                    "set it to truncate to merge the base's rows only"
                )
            else:
                problem(f"{rows} vocabulary rows, fewer than the base's {base_rows}: the embeddings cannot be merged")
        base_tied, tied = base.tied_embeddings, ckpt.tied_embeddings  # None: the config does not say
        if None in (base_tied, tied):
            pass
        elif tied and not base_tied:
            problem("tied embeddings (no lm_head) but the base has its own lm_head: that tensor is missing")
        elif base_tied and not tied:
            problem(
                "its own lm_head but the base ties it to the embeddings: its lm_head is not merged",
                blocking=False,
            )
    if ckpt.remote_code:
        problem(
            f"asks for trust_remote_code (auto_map in {', '.join(ckpt.remote_code)}): the kit never runs a "
            "repository's code; it loads the standard transformers class, which may not match",
            blocking=False,
        )
    if ckpt.pickle_only and not ckpt.present:
        problem(
            "pickle-only weights (pytorch_model*.bin, no safetensors): `repro download --allow-pickle` converts "
            "them with torch.load(weights_only=True); without it the download is refused"
        )
    return out


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


__all__ = ["CheckpointFacts", "FactsRequest", "Finding", "compare", "human_bytes", "read_facts"]
