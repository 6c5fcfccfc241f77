"""One clear HubError for whatever huggingface_hub or the network raised."""

from __future__ import annotations

import os

from repro.errors import HubError
from repro.hub.files import OFFLINE_HINT


class RepoProblem(HubError):
    """A problem of one repository (gone, gated, no such revision or commit), not of the hub or network:
    `repro lock resolve` reports it by name and goes on with the other repositories."""


def hub_error(exc: BaseException, repo_id: str, action: str = "query") -> HubError:
    """One clear HubError for an exception raised by huggingface_hub (or a network library)."""
    # huggingface_hub: deferred so that importing this module does not load it
    from huggingface_hub import errors as hf_errors

    status = getattr(getattr(exc, "response", None), "status_code", None)
    page = f"{hub_endpoint()}/{repo_id}"
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return HubError(
            f"cannot {action} {repo_id}: HF_HUB_OFFLINE is set, so the Hugging Face hub cannot be reached; "
            f"unset HF_HUB_OFFLINE and {OFFLINE_HINT}"
        )
    if isinstance(exc, hf_errors.GatedRepoError) or status in (401, 403):
        return RepoProblem(
            f"access to {repo_id} was denied (HTTP {status or 'gated'}): set HF_TOKEN and accept the license of "
            f"{repo_id} on its model page {page}"
        )
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return RepoProblem(
            f"{repo_id} has no such revision: {first_line(exc)}; fix `revision` in checkpoints.lock"
        )
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return HubError(
            f"a file of {repo_id} is missing at the pinned revision ({first_line(exc)}); re-run `repro lock resolve`"
        )
    if isinstance(exc, hf_errors.RepositoryNotFoundError) or status == 404:
        return RepoProblem(
            f"{repo_id} was not found on the hub (deleted, renamed or private): check its id in checkpoints.lock"
            ", or set HF_TOKEN if it is private"
        )
    if isinstance(exc, hf_errors.HfHubHTTPError):
        return HubError(
            f"the hub refused to {action} {repo_id} (HTTP {status}): {first_line(exc)}; retry later"
        )
    if _is_network_error(exc):
        return HubError(
            f"cannot reach the Hugging Face hub to {action} {repo_id} ({first_line(exc)}); {OFFLINE_HINT}"
        )
    return HubError(f"cannot {action} {repo_id}: {type(exc).__name__}: {first_line(exc)}")


def hub_endpoint() -> str:
    """The hub the client talks to: HF_ENDPOINT (a mirror or a local server) if set, else huggingface.co."""
    # huggingface_hub: deferred so that importing this module does not load it
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT or "https://huggingface.co").rstrip("/")


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        # optional: used only when installed
        import httpx2
    except ImportError:  # pragma: no cover - huggingface_hub always brings its HTTP client
        return False
    return isinstance(exc, (httpx2.TransportError, httpx2.TimeoutException))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def hub_call(repo_id: str, action: str, func, /, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except HubError:
        raise
    except Exception as exc:  # huggingface_hub / httpx / OS errors -> one clear line; bugs propagate
        if not (isinstance(exc, OSError) or _is_network_error(exc) or hasattr(exc, "response")):
            raise
        raise hub_error(exc, repo_id, action) from exc
