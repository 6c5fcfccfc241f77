"""Typed errors. Library code raises these; only the CLI turns them into one line + exit code 2."""

from __future__ import annotations


class ReproError(Exception):
    """Base class: a user-facing problem with one clear message (file/field and the fix)."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None):
        self.path = path
        self.field = field
        where = ""
        if path and field:
            where = f"{path}: {field}: "
        elif path:
            where = f"{path}: "
        elif field:
            where = f"{field}: "
        super().__init__(f"{where}{message}")


class ConfigError(ReproError):
    """A malformed experiment config (configs/*.yaml)."""


class LockError(ReproError):
    """A malformed or unresolved checkpoints.lock."""


class HubError(ReproError):
    """Resolving or downloading from the Hugging Face hub (or a mirror) failed."""


class MergeError(ReproError):
    """A merge cannot be done: unknown method, bad parameter, mismatched tensors, NaN input."""


class EvaluationError(ReproError):
    """An evaluation cannot be done: unknown task, gated dataset, hub task offline."""


class RunnerError(ReproError):
    """The experiment runner cannot proceed (disk space, missing GPU, corrupt plan)."""


class InsufficientDiskError(RunnerError):
    """Not enough free disk to merge: the whole run stops (no job is marked failed)."""
