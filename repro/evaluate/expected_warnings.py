"""Silence the warnings lm-eval always prints when it is handed an in-memory model, and only those.

`HFLM(pretrained=<model object>)` is how the kit evaluates a merge without saving it; lm-eval then warns
twice per model ("`pretrained` model kwarg is not of type `str`...", "Passed an already-initialized model
through `pretrained`..."), which in a grid of a thousand models buries the progress and any real warning.
`in_memory_model_warnings_silenced()` drops exactly these two messages from lm-eval's HF logger while the
model is wrapped; the filter is removed afterwards, and every other record passes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

HF_LOGGER = "lm_eval.models.huggingface"
EXPECTED_FOR_IN_MEMORY_MODEL = (
    "`pretrained` model kwarg is not of type `str`",
    "Passed an already-initialized model through `pretrained`",
)


class _DropExpected(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith(self.prefixes):
            self.dropped += 1
            return False
        return True


@contextlib.contextmanager
def in_memory_model_warnings_silenced(logger_name: str = HF_LOGGER) -> Iterator[_DropExpected]:
    """Within the block, lm-eval's two expected warnings about an in-memory model are not emitted."""
    logger = logging.getLogger(logger_name)
    dropper = _DropExpected(EXPECTED_FOR_IN_MEMORY_MODEL)
    logger.addFilter(dropper)
    try:
        yield dropper
    finally:
        logger.removeFilter(dropper)
