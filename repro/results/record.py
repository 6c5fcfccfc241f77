"""The result record of one finished job: what the runner returns, the store writes (results/<job_id>.json)
and the report reads. Torch-free, like everything the report layer imports.

The JSON form is the stored file's (written with sorted keys, repro.atomic_io): the same keys and values
as every record written before this type existed (a run resumes by these files and the gallery is rendered
from them), so a record read with `from_json` is written back byte for byte (tests/test_result_record.py).
Two layouts:

    evaluated job:  schema, job, config, models, merge, evaluation, scores, average, suite_averages,
                    items_file, packages, finished_at, elapsed_s
    geometry job:   schema, job, config, models, geometry, packages, finished_at, elapsed_s

followed by `worker` (which worker ran the job, when the runner wrote it), `reused_from` when the record was adopted from another experiment's store, and by any keys this
version does not know (kept as they were, after the known ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from repro.plan import Job

RESULT_SCHEMA = 1

_EVALUATED = ("schema", "job", "config", "models", "merge", "evaluation", "scores", "average", "suite_averages",
              "items_file", "packages", "finished_at", "elapsed_s")
_GEOMETRY = ("schema", "job", "config", "models", "geometry", "packages", "finished_at", "elapsed_s")


@dataclass(frozen=True)
class ResultRecord:
    job: Job
    config: dict[str, Any] = field(default_factory=dict)  # name, hash (content hash) and path of the config
    models: dict[str, Any] = field(default_factory=dict)  # the identity of the input models (repro.job_ids.job_models)
    packages: dict[str, Any] = field(default_factory=dict)  # versions of the packages that ran the job
    finished_at: str | None = None  # UTC, ISO 8601
    elapsed_s: float | None = None  # wall seconds of the job (merge included)
    merge: dict[str, Any] | None = None  # merge facts (repro.runner.job_executor); None: no merge
    evaluation: dict[str, Any] | None = None  # evaluation settings and what lm-eval used
    scores: list[dict[str, Any]] = field(default_factory=list)  # one row per (task, metric)
    average: float | None = None  # unweighted mean of the tasks' primary scores
    suite_averages: dict[str, float] = field(default_factory=dict)  # per suite of the job (Appendix E)
    items_file: str | None = None  # per-item correctness, relative to the runs folder
    geometry: dict[str, Any] | None = None  # a geometry job's Gram matrices (then no merge, no evaluation)
    worker: str | None = None  # the worker that ran the job (repro.runner.claims.worker_identity)
    reused_from: dict[str, Any] | None = None  # config and runs folder this record was adopted from
    schema: int = RESULT_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a later version, written back as read

    # -- the stored form -----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        layout = _GEOMETRY if self.geometry is not None else _EVALUATED
        data = {key: getattr(self, key) for key in layout}
        data["job"] = self.job.to_json()
        if self.worker is not None:
            data["worker"] = self.worker
        if self.reused_from is not None:
            data["reused_from"] = self.reused_from
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: dict) -> ResultRecord:
        """A stored record; missing optional keys take their defaults, unknown keys are kept in `extra`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {key: value for key, value in data.items() if key in known}
        values["job"] = Job.from_json(data["job"])
        for key in ("scores", "suite_averages"):
            if values.get(key) is None:
                values.pop(key, None)
        return cls(**values, extra={key: value for key, value in data.items() if key not in known})

    def adopted(self, config_name: str | None, runs_dir: str) -> ResultRecord:
        """This record as another experiment's store keeps it: with where it came from."""
        return replace(self, reused_from={"config": config_name, "runs_dir": runs_dir})

    # -- what readers ask ------------------------------------------------------------------------------------
    @property
    def config_name(self) -> str | None:
        return self.config.get("name")

    @property
    def config_hash(self) -> str:
        return self.config.get("hash") or ""

    @property
    def task_vector_l2(self) -> float | None:
        """‖θ_merged − θ_base‖₂ of a merge (None without a merge)."""
        return (self.merge or {}).get("task_vector_l2")

    @property
    def merge_elapsed_s(self) -> float:
        return float((self.merge or {}).get("elapsed_s") or 0.0)

    @property
    def subspace_boosting(self) -> dict | None:
        return (self.merge or {}).get("subspace_boosting")

    @property
    def eval_device(self) -> str | None:
        return (self.evaluation or {}).get("device")

    def primary_scores(self) -> dict[str, float]:
        """Task -> its primary metric value (what the suite average averages)."""
        return {row["task"]: row["value"] for row in self.scores if row.get("primary")}

    def primary_items(self) -> int:
        """Items evaluated over the primary rows (one per task)."""
        return sum(int(row.get("n_items") or 0) for row in self.scores if row.get("primary"))

    def task_parents(self) -> dict[str, str]:
        """Task -> its parent group, for the tasks that have one."""
        return {row["task"]: row["parent"] for row in self.scores if row.get("parent")}
