"""Turn lm-eval / datasets failures while loading tasks into one clear EvaluationError each.

Cases: an unknown task name (with close-name suggestions), a hub dataset while offline, a gated
dataset (e.g. leaderboard_gpqa's Idavidrein/gpqa) without an accepted licence / HF_TOKEN.
"""

from __future__ import annotations

import difflib
import os

from repro.errors import EvaluationError

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# Hub datasets behind a licence click-through (known, so the message is right even when offline).
NETWORK_ERRORS = frozenset(
    {"OfflineModeIsEnabled", "ConnectionError", "ConnectTimeout", "ReadTimeout", "LocalEntryNotFoundError"}
)
KNOWN_GATED_DATASETS = frozenset({"Idavidrein/gpqa"})
KNOWN_GATED_TASK_PREFIXES = ("leaderboard_gpqa", "gpqa")


def is_known_gated(name: str, dataset: str | None) -> bool:
    return dataset in KNOWN_GATED_DATASETS or name.startswith(KNOWN_GATED_TASK_PREFIXES)


def unknown_task_error(name: str, known: list[str], include_paths: list[str]) -> EvaluationError:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    if not close:
        close = sorted(task for task in known if name.lower() in task.lower())[:5]
    hint = f"did you mean: {', '.join(close)}?" if close else "list lm-eval's tasks with `lm_eval ls tasks`"
    where = (
        f" (searched lm-eval's built-in tasks{' and ' + ', '.join(include_paths) if include_paths else ''})"
    )
    return EvaluationError(f"unknown lm-eval task {name!r}{where}; {hint}", field="tasks")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in OFFLINE_VARIABLES
    )


def has_token() -> bool:
    if any(os.environ.get(var) for var in TOKEN_VARIABLES):
        return True
    try:
        # huggingface_hub: deferred so that importing this module does not load it
        from huggingface_hub import get_token

        return bool(get_token())
    except Exception:  # noqa: BLE001 - no token store is the same as no token
        return False


def task_load_error(name: str, dataset: str | None, exc: BaseException, *, gated: bool) -> EvaluationError:
    """The one-line error for a task whose dataset could not be loaded."""
    chain = list(_chain(exc))
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain).lower()
    dataset_txt = f" (dataset {dataset})" if dataset else ""
    access_denied = any(
        word in text for word in ("gated", "unauthorized", "forbidden", "401 client", "403 client")
    )
    if (gated or is_known_gated(name, dataset) or access_denied) and not has_token():
        return EvaluationError(
            f"task {name!r}{dataset_txt} uses a gated dataset: accept its licence on the Hugging Face hub "
            "and set HF_TOKEN (or `huggingface-cli login`), or drop the task from the suite",
            field="tasks",
        )
    network_failure = any(type(e).__name__ in NETWORK_ERRORS for e in chain) or "couldn't reach" in text
    if network_failure or (is_offline() and "offline" in text):
        return EvaluationError(
            f"task {name!r}{dataset_txt} needs its dataset from the Hugging Face hub, which is not reachable "
            "(offline mode or no network) and it is not in the local datasets cache; cache it once with network "
            "access (`repro data fetch --suite NAME`), or use an offline suite (`repro data prepare`)",
            field="tasks",
        )
    first = chain[0]
    detail = str(first).splitlines()[0] if str(first) else ""
    return EvaluationError(
        f"task {name!r}{dataset_txt} could not be loaded: {type(first).__name__}: {detail}", field="tasks"
    )
