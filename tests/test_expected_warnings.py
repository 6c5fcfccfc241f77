"""lm-eval's two expected warnings for an in-memory model are silenced where the kit passes one; other
warnings still show, and nothing stays installed on lm-eval's logger afterwards."""

from __future__ import annotations

import logging

from repro.evaluate.expected_warnings import HF_LOGGER, in_memory_model_warnings_silenced


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _collecting(logger):
    handler = _Collect()
    logger.addHandler(handler)
    return handler


def test_only_the_expected_messages_are_dropped_and_only_inside_the_block():
    logger = logging.getLogger(HF_LOGGER)
    handler = _collecting(logger)
    filters_before = list(logger.filters)
    try:
        with in_memory_model_warnings_silenced() as dropper:
            logger.warning("`pretrained` model kwarg is not of type `str`. Many other model arguments may be ignored.")
            logger.warning("Passed an already-initialized model through `pretrained`, assuming single-process call")
            logger.warning("a real problem: the tokenizer has no pad token")
        logger.warning("Passed an already-initialized model through `pretrained`, outside the block")
    finally:
        logger.removeHandler(handler)
    assert dropper.dropped == 2
    assert handler.messages == ["a real problem: the tokenizer has no pad token",
                                "Passed an already-initialized model through `pretrained`, outside the block"]
    assert logger.filters == filters_before


def test_building_an_in_memory_model_prints_neither_warning(tiny_llama_world):
    from transformers import AutoModelForCausalLM

    from repro.evaluate.harness import build_lm

    logger = logging.getLogger(HF_LOGGER)
    handler = _collecting(logger)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_world.base))
        lm = build_lm(model, tokenizer=tiny_llama_world.base, dtype="float32", batch_size=2, device="cpu",
                      backend="hf")
    finally:
        logger.removeHandler(handler)
    assert lm is not None
    assert not [m for m in handler.messages if "pretrained" in m], handler.messages
    # without the kit's filter, lm-eval does print them (so the test above is not vacuous)
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    handler = _collecting(logger)
    try:
        HFLM(pretrained=model, tokenizer=AutoTokenizer.from_pretrained(str(tiny_llama_world.base)), batch_size=2)
    finally:
        logger.removeHandler(handler)
    assert len([m for m in handler.messages if "pretrained" in m]) == 2, handler.messages
    assert not [f for f in logger.filters if type(f).__name__ == "_DropExpected"]
