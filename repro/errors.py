"""Typed errors. Library code raises these; only the CLI turns them into one line + exit code 2."""

from __future__ import annotations


class ReproError(Exception):
    """Base class: a user-facing problem with one clear message (file/field and the fix)."""

    def __init__(
        self,
        message: str = "",
        *,
        path: str | None = None,
        field: str | None = None,
        problems: list[tuple[str | None, str]] | None = None,
    ):
        """One problem (`message` at `field` of `path`), or several: `problems` = [(field, message), ...],
        rendered one line each ("path: field: message"), in the order given."""
        self.path = path
        self.problems = list(problems) if problems else [(field, message)]
        self.field = self.problems[0][0]
        super().__init__("\n".join(_locate(path, where, text) for where, text in self.problems))


def _locate(path: str | None, field: str | None, message: str) -> str:
    if path and field:
        return f"{path}: {field}: {message}"
    if path:
        return f"{path}: {message}"
    if field:
        return f"{field}: {message}"
    return message


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


class OutputFolderError(ReproError):
    """An output folder holds files the kit did not write (or its own output without --overwrite)."""
